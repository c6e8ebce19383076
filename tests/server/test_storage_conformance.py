"""One conformance suite for every BlobStore backend: filesystem and S3 (moto server).

Each test gets a fresh store (a new folder or a new bucket) driven by a fake
clock, plus raw access to the backend underneath, used only to look for stray
bytes (temp files, partial uploads) and to tamper with stored objects.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from server.storage.base import (
    KINDS,
    BlobStore,
    ObjectCorrupt,
    ObjectInfo,
    ObjectNotFound,
    StorageError,
)
from server.storage.filesystem import FilesystemBlobStore
from server.storage.s3 import S3BlobStore

NS = "0123456789abcdef0123456789abcdef"
OTHER_NS = "fedcba9876543210fedcba9876543210"
DAY = 86400.0
REPO_ROOT = Path(__file__).resolve().parents[2]


def blob(seed: int, size: int = 1000) -> tuple[str, bytes]:
    """Deterministic bytes of a given size and their SHA-256 name."""
    data = hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1)
    data = data[:size]
    return hashlib.sha256(data).hexdigest(), data


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Backend:
    store: BlobStore
    clock: FakeClock
    tamper: Callable[[str, str, str, bytes], None]  # replace an object's bytes behind the store
    strays: Callable[[], list[str]]  # anything that is neither a live nor a trashed object


LAYOUT_FS = re.compile(r"objects/[0-9a-f]{32}/(?:[a-z]+/[0-9a-f]{2}/[0-9a-f]{64}|"
                       r"trash/[a-z]+/[0-9a-f]{64}\.\d+)")
LAYOUT_S3 = re.compile(r"pfx/[0-9a-f]{32}/(?:trash/)?[a-z]+/[0-9a-f]{64}")


def filesystem_backend(root: Path) -> Backend:
    clock = FakeClock()

    def tamper(namespace: str, kind: str, name: str, data: bytes) -> None:
        (root / "objects" / namespace / kind / name[:2] / name).write_bytes(data)

    def strays() -> list[str]:
        files = [p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir()]
        return [f for f in files if not LAYOUT_FS.fullmatch(f)]

    return Backend(FilesystemBlobStore(root, clock=clock), clock, tamper, strays)


def s3_backend(endpoint: str) -> Backend:
    client = boto3.client("s3", endpoint_url=endpoint)
    bucket = f"conformance-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=bucket)
    clock = FakeClock()

    def tamper(namespace: str, kind: str, name: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=f"pfx/{namespace}/{kind}/{name}", Body=data)

    def strays() -> list[str]:
        keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket) for o in page.get("Contents", [])]
        uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        return [k for k in keys if not LAYOUT_S3.fullmatch(k)] + [u["Key"] for u in uploads]

    store = S3BlobStore(bucket, "/pfx/", endpoint_url=endpoint, clock=clock, page_size=7)
    return Backend(store, clock, tamper, strays)


@pytest.fixture(params=["filesystem", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "filesystem":
        made = filesystem_backend(tmp_path / "store")
    else:
        made = s3_backend(request.getfixturevalue("s3_endpoint"))
    yield made
    assert made.strays() == [], "the backend left stray bytes behind"


def put(store: BlobStore, kind: str, seed: int, size: int = 1000,
        ns: str = NS) -> tuple[str, bytes]:
    name, data = blob(seed, size)
    assert store.put(ns, kind, name, io.BytesIO(data)) == size
    return name, data


def names(store: BlobStore, kind: str, ns: str = NS) -> set[str]:
    return {info.name for info in store.list(ns, kind)}


# --- round trip and reads -------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 1000, (1 << 20) + 17])
def test_round_trip(backend: Backend, size: int) -> None:
    store = backend.store
    name, data = put(store, "data", 1, size)
    assert store.get(NS, "data", name) == data
    assert store.size(NS, "data", name) == size
    assert list(store.list(NS, "data")) == [ObjectInfo("data", name, size)]
    assert store.namespace_bytes(NS) == size


def test_range_reads_follow_slice_semantics(backend: Backend) -> None:
    name, data = put(backend.store, "data", 2, 1000)
    ranges = [(0, None), (0, 1000), (10, 20), (999, 1), (990, 100), (0, 5000),
              (999, None), (1000, None), (1000, 5), (5000, None), (5000, 10), (0, 0), (500, 0)]
    for offset, length in ranges:
        end = None if length is None else offset + length
        got = backend.store.get(NS, "data", name, offset, length)
        assert got == data[offset:end], f"range offset={offset} length={length}"


def test_missing_object_is_not_found(backend: Backend) -> None:
    store = backend.store
    name, _ = blob(3)
    for read in (lambda: store.get(NS, "data", name), lambda: store.get(NS, "data", name, 5, 5),
                 lambda: store.get(NS, "data", name, 0, 0),
                 lambda: store.get(NS, "data", name, 10**9),
                 lambda: store.size(NS, "data", name)):
        with pytest.raises(ObjectNotFound):
            read()
    assert list(store.list(NS, "data")) == []
    assert store.namespace_bytes(NS) == 0


@pytest.mark.parametrize(("offset", "length"), [(-1, None), (0, -1), (-5, 3), (1.5, None)])
def test_invalid_range_is_a_value_error(backend: Backend, offset: Any, length: Any) -> None:
    name, _ = put(backend.store, "data", 4)
    with pytest.raises(ValueError):
        backend.store.get(NS, "data", name, offset, length)


# --- writes ---------------------------------------------------------------------


def test_wrong_hash_is_rejected_and_leaves_nothing(backend: Backend) -> None:
    name, _ = blob(5)
    with pytest.raises(ObjectCorrupt, match=name):
        backend.store.put(NS, "data", name, io.BytesIO(b"not the bytes that hash to the name"))
    with pytest.raises(ObjectNotFound):
        backend.store.get(NS, "data", name)
    assert list(backend.store.list(NS, "data")) == []
    assert backend.store.namespace_bytes(NS) == 0


def test_upload_interrupted_mid_stream_leaves_nothing(backend: Backend) -> None:
    name, data = blob(6, 3 << 20)

    class Dropped(io.RawIOBase):
        def __init__(self) -> None:
            self.sent = 0

        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            if self.sent >= len(data) // 2:
                raise ConnectionResetError("client went away")
            chunk = data[self.sent:self.sent + min(n, 1 << 20)]
            self.sent += len(chunk)
            return chunk

    with pytest.raises((ConnectionResetError, StorageError)):
        backend.store.put(NS, "data", name, Dropped())  # type: ignore[arg-type]
    with pytest.raises(ObjectNotFound):
        backend.store.get(NS, "data", name)
    assert backend.store.put(NS, "data", name, io.BytesIO(data)) == len(data)


def test_put_again_is_idempotent(backend: Backend) -> None:
    name, data = put(backend.store, "index", 7)
    assert backend.store.put(NS, "index", name, io.BytesIO(data)) == len(data)
    assert list(backend.store.list(NS, "index")) == [ObjectInfo("index", name, len(data))]


def test_put_never_overwrites(backend: Backend) -> None:
    name, data = put(backend.store, "data", 8)
    backend.tamper(NS, "data", name, b"damaged on disk")
    assert backend.store.put(NS, "data", name, io.BytesIO(data)) == len(b"damaged on disk")
    assert backend.store.get(NS, "data", name) == b"damaged on disk"


def test_put_over_existing_still_verifies_the_body(backend: Backend) -> None:
    name, data = put(backend.store, "data", 9)
    with pytest.raises(ObjectCorrupt):
        backend.store.put(NS, "data", name, io.BytesIO(b"wrong"))
    assert backend.store.get(NS, "data", name) == data


def test_concurrent_puts_of_one_object_store_it_once(backend: Backend) -> None:
    name, data = blob(10, 2 << 20)
    results: list[Any] = []

    def upload() -> None:
        try:
            results.append(backend.store.put(NS, "data", name, io.BytesIO(data)))
        except Exception as exc:  # collected and asserted below
            results.append(exc)

    threads = [threading.Thread(target=upload) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [len(data)] * 6
    assert backend.store.get(NS, "data", name) == data
    assert list(backend.store.list(NS, "data")) == [ObjectInfo("data", name, len(data))]


# --- listing and namespaces -------------------------------------------------------


def test_listing_is_per_kind_and_complete(backend: Backend) -> None:
    store = backend.store
    expected: dict[str, set[ObjectInfo]] = {kind: set() for kind in KINDS}
    for seed in range(20):
        kind = sorted(KINDS)[seed % len(KINDS)] if seed < 10 else "data"
        name, data = put(store, kind, seed, 100 + seed)
        expected[kind].add(ObjectInfo(kind, name, len(data)))
    for kind in KINDS:
        assert set(store.list(NS, kind)) == expected[kind]
    assert store.namespace_bytes(NS) == sum(100 + seed for seed in range(20))


def test_namespaces_are_isolated(backend: Backend) -> None:
    store = backend.store
    shared, data = put(store, "data", 11)
    put(store, "data", 11, ns=OTHER_NS)
    only_here, _ = put(store, "keys", 12)
    with pytest.raises(ObjectNotFound):
        store.get(OTHER_NS, "keys", only_here)
    store.trash(NS, "data", shared)
    assert store.get(OTHER_NS, "data", shared) == data
    assert store.purge_trash(OTHER_NS, 0) == 0
    store.delete_namespace(NS)
    assert store.get(OTHER_NS, "data", shared) == data
    assert store.namespace_bytes(OTHER_NS) == len(data)
    assert list(store.list(OTHER_NS, "keys")) == []


def test_delete_namespace_removes_everything_at_once(backend: Backend) -> None:
    store = backend.store
    for seed in range(12):
        put(store, sorted(KINDS)[seed % len(KINDS)], seed)
    trashed, _ = put(store, "data", 99)
    store.trash(NS, "data", trashed)
    store.delete_namespace(NS)
    assert all(list(store.list(NS, kind)) == [] for kind in KINDS)
    assert store.namespace_bytes(NS) == 0
    with pytest.raises(ObjectNotFound):
        store.restore_from_trash(NS, "data", trashed)
    assert store.purge_trash(NS, 0) == 0
    store.delete_namespace(NS)  # again: no-op
    name, data = put(store, "data", 1)  # the namespace can be used again
    assert store.get(NS, "data", name) == data


# --- trash, restore, purge --------------------------------------------------------


def test_trash_hides_and_restore_brings_back(backend: Backend) -> None:
    store = backend.store
    a, data_a = put(store, "snapshots", 20)
    b, data_b = put(store, "snapshots", 21)
    store.trash(NS, "snapshots", a)
    assert names(store, "snapshots") == {b}
    assert store.namespace_bytes(NS) == len(data_b)
    with pytest.raises(ObjectNotFound):
        store.get(NS, "snapshots", a)
    with pytest.raises(ObjectNotFound):
        store.size(NS, "snapshots", a)
    store.restore_from_trash(NS, "snapshots", a)
    assert store.get(NS, "snapshots", a) == data_a
    assert names(store, "snapshots") == {a, b}
    store.restore_from_trash(NS, "snapshots", a)  # live already: no change
    assert store.purge_trash(NS, 0) == 0


def test_trash_of_missing_object_is_a_no_op(backend: Backend) -> None:
    name, _ = blob(22)
    backend.store.trash(NS, "data", name)
    assert backend.store.purge_trash(NS, 0) == 0
    with pytest.raises(ObjectNotFound):
        backend.store.restore_from_trash(NS, "data", name)


def test_purge_respects_the_grace_period(backend: Backend) -> None:
    store, clock = backend.store, backend.clock
    early, _ = put(store, "data", 23)
    late, data_late = put(store, "data", 24)
    store.trash(NS, "data", early)
    clock.now += 5 * DAY
    store.trash(NS, "data", late)
    clock.now += 10 * DAY
    assert store.purge_trash(NS, 14 * DAY) == 1
    with pytest.raises(ObjectNotFound):
        store.restore_from_trash(NS, "data", early)
    clock.now += 4 * DAY - 1
    assert store.purge_trash(NS, 14 * DAY) == 0
    store.restore_from_trash(NS, "data", late)
    assert store.get(NS, "data", late) == data_late


def test_purge_with_zero_age_empties_the_trash(backend: Backend) -> None:
    store = backend.store
    trashed = [put(store, kind, seed)[0] for seed, kind in enumerate(sorted(KINDS))]
    keep, data = put(store, "data", 30)
    for name, kind in zip(trashed, sorted(KINDS), strict=True):
        store.trash(NS, kind, name)
    assert store.purge_trash(NS, 0) == len(KINDS)
    assert store.purge_trash(NS, 0) == 0
    assert store.get(NS, "data", keep) == data
    assert store.namespace_bytes(NS) == len(data)


def test_upload_again_after_trash(backend: Backend) -> None:
    store = backend.store
    name, data = put(store, "data", 31)
    store.trash(NS, "data", name)
    put(store, "data", 31)
    assert names(store, "data") == {name}
    assert store.purge_trash(NS, 0) >= 1
    assert store.get(NS, "data", name) == data


@pytest.mark.parametrize("age", [-1, float("nan"), "1"])
def test_invalid_purge_age_is_a_value_error(backend: Backend, age: Any) -> None:
    with pytest.raises(ValueError):
        backend.store.purge_trash(NS, age)


# --- hostile addresses ------------------------------------------------------------

GOOD_NAME = blob(40)[0]
BAD_NAMESPACES = ["", "..", "../" + NS[3:], NS.upper(), NS + "0", NS[:-1], NS + "\n",
                  NS[:31] + "\x00", NS[:16] + "/" + NS[17:], None, NS.encode()]
BAD_KINDS = ["", "..", "trash", "tmp", "Data", "data/../keys", "data\x00", "data/", None]
BAD_NAMES = ["", "..", "../../etc/passwd", GOOD_NAME.upper(), GOOD_NAME + "0", GOOD_NAME[:-1],
             GOOD_NAME + "\n", GOOD_NAME[:63] + "\x00", GOOD_NAME[:30] + "/" + GOOD_NAME[31:],
             "%2e%2e%2f" + GOOD_NAME[9:], "a" * 4096, None, 7]
HOSTILE = ([(ns, "data", GOOD_NAME) for ns in BAD_NAMESPACES]
           + [(NS, kind, GOOD_NAME) for kind in BAD_KINDS]
           + [(NS, "data", name) for name in BAD_NAMES])


def object_calls(store: BlobStore, ns: Any, kind: Any, name: Any) -> list[Callable[[], Any]]:
    """Every call taking this address; list() too when the bad part is ns or kind."""
    data = blob(40)[1]
    calls = [lambda: store.put(ns, kind, name, io.BytesIO(data)), lambda: store.get(ns, kind, name),
             lambda: store.size(ns, kind, name), lambda: store.trash(ns, kind, name),
             lambda: store.restore_from_trash(ns, kind, name)]
    if name == GOOD_NAME:
        calls.append(lambda: store.list(ns, kind))
    return calls


@pytest.mark.parametrize(("ns", "kind", "name"), HOSTILE, ids=repr)
def test_hostile_addresses_are_rejected(backend: Backend, ns: Any, kind: Any, name: Any) -> None:
    calls = object_calls(backend.store, ns, kind, name)
    if kind == "data" and name == GOOD_NAME:  # a bad namespace: namespace-level calls too
        calls += [lambda: backend.store.purge_trash(ns, 0),
                  lambda: backend.store.delete_namespace(ns),
                  lambda: backend.store.namespace_bytes(ns)]
    for call in calls:
        with pytest.raises(ValueError):
            call()
    assert backend.store.namespace_bytes(NS) == 0


def test_hostile_addresses_write_nothing_outside_the_root(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "store")
    for ns, kind, name in HOSTILE:
        for call in object_calls(store, ns, kind, name):
            with pytest.raises(ValueError):
                call()
    assert [p.name for p in tmp_path.iterdir()] == ["store"]
    assert [p for p in (tmp_path / "store").rglob("*") if not p.is_dir()] == []


# --- filesystem: crash safety -------------------------------------------------------

PUT_FROM_STDIN = """
import sys
from pathlib import Path
from server.storage.filesystem import FilesystemBlobStore
FilesystemBlobStore(Path(sys.argv[1])).put(sys.argv[2], "data", sys.argv[3], sys.stdin.buffer)
"""


def wait_for(condition: Callable[[], bool], what: str, deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL is POSIX")
def test_process_killed_mid_put_leaves_no_object(tmp_path: Path) -> None:
    root = tmp_path / "store"
    name, data = blob(50, 8 << 20)
    proc = subprocess.Popen([sys.executable, "-c", PUT_FROM_STDIN, str(root), NS, name],
                            stdin=subprocess.PIPE, cwd=REPO_ROOT)
    assert proc.stdin is not None
    proc.stdin.write(data[: 3 << 20])
    proc.stdin.flush()
    files = lambda: [p for p in root.rglob("*") if p.is_file()] if root.exists() else []  # noqa: E731
    wait_for(lambda: any(p.stat().st_size >= 1 << 20 for p in files()), "a partial upload")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdin.close()
    assert files(), "the kill should have interrupted the put"
    store = FilesystemBlobStore(root)  # opening the store cleans up after the dead process
    assert files() == []
    with pytest.raises(ObjectNotFound):
        store.get(NS, "data", name)
    assert list(store.list(NS, "data")) == []
    assert store.put(NS, "data", name, io.BytesIO(data)) == len(data)
    assert store.get(NS, "data", name) == data


def test_opening_keeps_temp_files_of_live_processes(tmp_path: Path) -> None:
    root = tmp_path / "store"
    FilesystemBlobStore(root)
    import server.storage.filesystem as fs

    mine = root / "tmp" / f"{fs.HOST}-{os.getpid()}-{'0' * 16}.tmp"
    mine.write_bytes(b"an upload in progress in this process")
    unknown = root / "tmp" / "not-ours"
    unknown.write_bytes(b"junk")
    FilesystemBlobStore(root)
    assert mine.exists()
    assert not unknown.exists()
