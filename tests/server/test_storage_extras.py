"""open_blob_store, the fault-injecting wrapper, and S3 endpoints without conditional PUT."""

from __future__ import annotations

import hashlib
import io
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse

from server.storage import StorageError, open_blob_store
from server.storage.faulty import FaultyBlobStore
from server.storage.filesystem import FilesystemBlobStore
from server.storage.s3 import S3BlobStore

NS = "0123456789abcdef0123456789abcdef"


def blob(seed: int) -> tuple[str, bytes]:
    data = f"object {seed}".encode() * 50
    return hashlib.sha256(data).hexdigest(), data


def new_bucket(endpoint: str) -> str:
    bucket = f"extras-{uuid.uuid4().hex[:16]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    return bucket


# --- open_blob_store ----------------------------------------------------------------


@pytest.mark.parametrize("form", ["path", "file_url"])
def test_open_filesystem_store(tmp_path: Path, form: str) -> None:
    location = str(tmp_path / "st") if form == "path" else (tmp_path / "st").as_uri()
    store = open_blob_store(location)
    assert isinstance(store, FilesystemBlobStore)
    name, data = blob(1)
    store.put(NS, "data", name, io.BytesIO(data))
    assert open_blob_store(str(tmp_path / "st")).get(NS, "data", name) == data


def test_open_s3_store(s3_endpoint: str) -> None:
    bucket = new_bucket(s3_endpoint)
    store = open_blob_store(f"s3://{bucket}/some/prefix", s3_endpoint=s3_endpoint)
    assert isinstance(store, S3BlobStore)
    name, data = blob(2)
    store.put(NS, "keys", name, io.BytesIO(data))
    key = f"some/prefix/{NS}/keys/{name}"
    body = boto3.client("s3", endpoint_url=s3_endpoint).get_object(Bucket=bucket, Key=key)["Body"]
    assert body.read() == data


@pytest.mark.parametrize("location", ["", "s3://", "s3:///prefix", "http://example.com/x",
                                      "file://otherhost/data"])
def test_open_refuses_unknown_locations(location: str) -> None:
    with pytest.raises(ValueError):
        open_blob_store(location)


def test_missing_bucket_is_a_storage_error_sentence(s3_endpoint: str) -> None:
    store = S3BlobStore(f"missing-{uuid.uuid4().hex[:12]}", "", endpoint_url=s3_endpoint)
    name, data = blob(3)
    with pytest.raises(StorageError, match="S3 storage failed while storing data/"):
        store.put(NS, "data", name, io.BytesIO(data))


# --- S3 endpoints without If-None-Match -------------------------------------------------


def test_s3_falls_back_when_conditional_put_is_not_implemented(s3_endpoint: str) -> None:
    """An endpoint answering 501 to If-None-Match still gets the object, once."""
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    refused: list[str] = []

    def refuse_conditional(request: Any, **_: Any) -> AWSResponse | None:
        if "If-None-Match" not in request.headers:
            return None
        refused.append(request.url)
        body = (b"<Error><Code>NotImplemented</Code><Message>A header you provided implies "
                b"functionality that is not implemented</Message></Error>")
        return AWSResponse(request.url, 501, {}, _Raw(body))

    client.meta.events.register("before-send.s3.PutObject", refuse_conditional)
    bucket = new_bucket(s3_endpoint)
    store = S3BlobStore(bucket, "p", client=client)
    for seed in (4, 5):
        name, data = blob(seed)
        assert store.put(NS, "data", name, io.BytesIO(data)) == len(data)
        assert store.get(NS, "data", name) == data
    assert len(refused) == 1  # learnt once, then plain PUTs


class _Raw(io.BytesIO):
    def stream(self, **_: Any) -> Any:
        yield self.getvalue()


# --- FaultyBlobStore ----------------------------------------------------------------------


@pytest.fixture
def faulty(tmp_path: Path) -> FaultyBlobStore:
    return FaultyBlobStore(FilesystemBlobStore(tmp_path / "st"), seed=7)


def test_no_faults_means_transparent(faulty: FaultyBlobStore) -> None:
    name, data = blob(10)
    assert faulty.put(NS, "data", name, io.BytesIO(data)) == len(data)
    assert faulty.get(NS, "data", name, 3, 4) == data[3:7]
    assert [i.name for i in faulty.list(NS, "data")] == [name]
    assert faulty.calls == {"put": 1, "get": 1, "list": 1}
    assert sum(faulty.injected.values()) == 0


def test_fail_next_calls_then_recover(faulty: FaultyBlobStore) -> None:
    name, data = blob(11)
    faulty.fail("put", times=2)
    for _ in range(2):
        body = io.BytesIO(data)
        with pytest.raises(StorageError, match="Injected fault in put"):
            faulty.put(NS, "data", name, body)
        assert body.tell() == len(data)  # the upload was consumed, as a dropped one is
    with pytest.raises(Exception, match="not stored"):
        faulty.get(NS, "data", name)
    assert faulty.put(NS, "data", name, io.BytesIO(data)) == len(data)
    assert faulty.injected["put"] == 2


def test_fail_after_models_a_lost_response(faulty: FaultyBlobStore) -> None:
    name, data = blob(12)
    faulty.fail("put", after=True, error=lambda m: ConnectionError(f"{m}: response lost"))
    with pytest.raises(ConnectionError):
        faulty.put(NS, "data", name, io.BytesIO(data))
    assert faulty.inner.get(NS, "data", name) == data  # stored despite the error
    assert faulty.put(NS, "data", name, io.BytesIO(data)) == len(data)  # retry is idempotent


def test_skip_when_and_endless_faults(faulty: FaultyBlobStore) -> None:
    stored = []
    for seed in range(3):
        name, data = blob(20 + seed)
        faulty.put(NS, "index" if seed else "data", name, io.BytesIO(data))
        stored.append(name)
    faulty.fail("get", skip=1, times=None, when=lambda ns, kind, *rest: kind == "index")
    assert faulty.get(NS, "data", stored[0])  # not matched by `when`
    assert faulty.get(NS, "index", stored[1])  # skipped
    for _ in range(3):
        with pytest.raises(StorageError):
            faulty.get(NS, "index", stored[2])
    faulty.clear()
    assert faulty.get(NS, "index", stored[2])


def test_fraction_fails_some_calls_reproducibly(tmp_path: Path) -> None:
    def outcomes(seed: int) -> list[bool]:
        store = FaultyBlobStore(FilesystemBlobStore(tmp_path / f"s{seed}"), seed=seed)
        store.fail("namespace_bytes", fraction=0.5, times=None)
        results = []
        for _ in range(40):
            try:
                store.namespace_bytes(NS)
                results.append(True)
            except StorageError:
                results.append(False)
        return results

    first = outcomes(1)
    assert first == outcomes(1)
    assert 0 < first.count(False) < 40


def test_unknown_method_is_refused(faulty: FaultyBlobStore) -> None:
    with pytest.raises(ValueError):
        faulty.fail("remove_everything")
