"""Back up a declared tree full of edge cases with the real CLI and restore it identically."""

from __future__ import annotations

import os
import re
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.engine import file_writer
from tests.agent.cairn_cli import Cairn
from tests.agent.deadline import call_with_deadline
from tests.agent.strategies import random_bytes
from tests.agent.treespec import (
    Dir,
    Entry,
    File,
    SparseFile,
    Symlink,
    allocated_bytes,
    build,
    manifest,
    restored,
)

MiB = 1024 * 1024
SPARSE_SIZE = 12 * MiB


def deep(levels: int) -> dict:
    tree: dict = {"bottom.txt": File(b"bottom of the well\n")}
    for level in reversed(range(levels)):
        tree = {f"level-{level:02d}": tree}
    return tree


def edge_tree() -> dict:
    shared = random_bytes(700 * 1024, 2)  # above the chunker's minimum: a chunked file
    return {
        "empty.txt": File(b""),
        "hello.txt": File(b"hello\n", mtime_ns=1_234_567_890_987_654_321),
        "secret.key": File(b"k" * 100, mode=0o600),
        "run.sh": File(b"#!/bin/sh\necho hi\n", mode=0o755),
        "readonly.txt": File(b"read only", mode=0o444),
        "owned-by-nobody.txt": File(b"n", owner=(65534, 65534)),
        "big.bin": File(random_bytes(20 * MiB, 1)),
        "dup-a.bin": File(shared),
        "nested": {"dup-b.bin": File(shared, mode=0o640), "dup-hello.txt": File(b"hello\n")},
        "sparse.img": SparseFile(SPARSE_SIZE, ((0, b"head" * 1000),
                                               (6 * MiB, random_bytes(64 * 1024, 3)))),
        "empty-dir": {},
        "private": Dir({"inner-empty": Dir({}, mode=0o700)}, mode=0o700),
        "readonly-dir": Dir({"inside.txt": File(b"x")}, mode=0o555),
        "links": {
            "to-file": Symlink("../hello.txt"),
            "to-dir": Symlink("../nested"),
            "dangling": Symlink("does/not/exist"),
            "absolute": Symlink("/etc/hostname"),
            b"raw-target": Symlink(b"\xff\xfe-not-utf8"),
        },
        "ünïcødé-名前-🦀.txt": File("ünïcødé".encode()),
        b"latin1-\xe9\xff.bin": File(b"a name that is not UTF-8"),
        b"dir-\xfe": {b"\xc3\x28": File(b"an invalid UTF-8 sequence as a name")},
        "with space.txt": File(b"space"),
        "new\nline.txt": File(b"newline"),
        "tab\tand\\backslash": File(b"tab"),
        ".hidden": File(b"hidden"),
        "-leading-dash": File(b"dash"),
        "x" * 255: File(b"the longest name ext4 allows"),
        "deep": deep(40),
    }


@dataclass
class BackedUp:
    cairn: Cairn
    src: Path
    before: dict[bytes, Entry]
    backup: dict


@pytest.fixture(scope="module")
def backed_up(tmp_path_factory: pytest.TempPathFactory) -> BackedUp:
    base = tmp_path_factory.mktemp("roundtrip")
    src = build(base / "src", edge_tree(), mode=0o750)
    before = manifest(src)
    cairn = Cairn(home=base / "home", dest=base / "archive")
    return BackedUp(cairn, src, before, cairn.backup(src))


@pytest.fixture(scope="module")
def restore_all(backed_up: BackedUp, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path,
                                                                                         dict]:
    out = tmp_path_factory.mktemp("restore-all")
    return out, backed_up.cairn.restore(backed_up.backup["snapshot_id"], out)


def _files(entries: dict[bytes, Entry]) -> dict[bytes, Entry]:
    return {path: e for path, e in entries.items() if e.type == "file"}


def test_backup_reports_the_documented_json_fields(backed_up: BackedUp) -> None:
    doc, files = backed_up.backup, _files(backed_up.before)
    assert re.fullmatch(r"[0-9a-f]{64}", doc["snapshot_id"])
    assert doc["files_total"] == doc["files_new"] == len(files)
    assert doc["files_changed"] == doc["files_unchanged"] == 0
    assert doc["bytes_total"] == sum(e.size for e in files.values())
    assert isinstance(doc["duration_s"], float) and doc["duration_s"] >= 0
    assert doc["errors"] == []
    # Dedup (the shared 700 KiB) and compression (the 12 MiB sparse file) both pay.
    assert 20 * MiB < doc["bytes_stored"] < doc["bytes_total"] - SPARSE_SIZE


def test_restore_is_identical(backed_up: BackedUp, restore_all: tuple[Path, dict]) -> None:
    out, doc = restore_all
    assert manifest(restored(out, backed_up.src)) == backed_up.before
    files = _files(backed_up.before)
    assert doc["snapshot_id"] == backed_up.backup["snapshot_id"]
    assert doc["errors"] == []
    assert doc["files"] == len(files)
    assert doc["bytes"] == sum(e.size for e in files.values())
    assert doc["symlinks"] == sum(e.type == "symlink" for e in backed_up.before.values())
    assert doc["dirs"] >= sum(e.type == "dir" for e in backed_up.before.values())


def test_sparse_file_keeps_its_holes(backed_up: BackedUp, restore_all: tuple[Path, dict]) -> None:
    original = allocated_bytes(backed_up.src / "sparse.img")
    copy = allocated_bytes(restored(restore_all[0], backed_up.src) / "sparse.img")
    assert original < SPARSE_SIZE // 16, "the test file system should support holes"
    assert copy <= original + 64 * 1024
    assert copy < SPARSE_SIZE // 16


@pytest.mark.parametrize("include", ["nested", "links/dangling", "readonly-dir/inside.txt"])
def test_include_restores_only_the_chosen_path(backed_up: BackedUp, tmp_path: Path,
                                               include: str) -> None:
    out = tmp_path / "out"
    doc = backed_up.cairn.restore("latest", out, str(backed_up.src / include))
    wanted = os.fsencode(include)
    expected = {p: e for p, e in backed_up.before.items()
                if p == wanted or p.startswith(wanted + b"/")}
    got = {p: e for p, e in manifest(restored(out, backed_up.src)).items()
           if p != b"." and not wanted.startswith(p + b"/")}  # leave out the folders above it
    assert got == expected
    assert doc["files"] == len(_files(expected))


def test_restore_by_id_prefix(backed_up: BackedUp, tmp_path: Path) -> None:
    doc = backed_up.cairn.restore(backed_up.backup["snapshot_id"][:8], tmp_path / "out",
                                  str(backed_up.src / "hello.txt"))
    assert doc["files"] == 1
    assert (restored(tmp_path / "out", backed_up.src) / "hello.txt").read_bytes() == b"hello\n"


def test_ls_lists_every_entry_with_its_metadata(backed_up: BackedUp) -> None:
    listing = backed_up.cairn.json("ls", backed_up.backup["snapshot_id"])
    src = os.fsencode(backed_up.src)
    by_path = {os.fsencode(e["path"]): e for e in listing}
    for rel, entry in backed_up.before.items():
        item = by_path[src if rel == b"." else src + b"/" + rel]
        assert item["type"] == entry.type
        assert item["mode"] == entry.mode
        assert item["mtime_ns"] == entry.mtime_ns
        assert item["size"] == entry.size
    below = [os.fsencode(p) for p in (e["path"] for e in listing)]
    assert sorted(below) == sorted(set(below)), "no duplicates"


def test_ls_below_a_path(backed_up: BackedUp) -> None:
    listing = backed_up.cairn.json("ls", "latest", str(backed_up.src / "nested"))
    names = sorted(e["path"].rsplit("/", 1)[1] for e in listing)
    assert names == ["dup-b.bin", "dup-hello.txt", "nested"]


def test_ls_for_people_prints_odd_names(backed_up: BackedUp) -> None:
    # A UTF-8 desktop locale makes Python's stdout strict; names must still print, as bytes.
    listing = backed_up.cairn.run("ls", "latest", env={"PYTHONIOENCODING": "utf-8"}).stdout
    raw = os.fsencode(listing)
    assert b"latin1-\xe9\xff.bin" in raw and b"dir-\xfe/\xc3\x28" in raw
    assert "ünïcødé-名前-🦀.txt" in listing and "links/raw-target" in listing


def test_restore_over_planted_symlinks_replaces_them_and_writes_nothing_through_them(
        backed_up: BackedUp, tmp_path: Path) -> None:
    out = tmp_path / "out"
    backed_up.cairn.restore("latest", out)
    copy = restored(out, backed_up.src)
    victim_file = tmp_path / "victim.txt"
    victim_file.write_bytes(b"must stay")
    victim_dir = tmp_path / "victim-dir"
    victim_dir.mkdir()
    # One-blob file, many-blob file, folder: each replaced by a symlink pointing outside.
    for name in ("hello.txt", "big.bin"):
        (copy / name).unlink()
        (copy / name).symlink_to(victim_file)
    for path in (copy / "nested").iterdir():
        path.unlink()
    (copy / "nested").rmdir()
    (copy / "nested").symlink_to(victim_dir, target_is_directory=True)
    (copy / "secret.key").write_bytes(b"stale and longer than the original" * 10)

    doc = backed_up.cairn.restore("latest", out)

    assert doc["errors"] == []
    assert manifest(copy) == backed_up.before
    assert victim_file.read_bytes() == b"must stay"
    assert list(victim_dir.iterdir()) == []


def test_restore_over_planted_fifos_and_sockets_replaces_them_and_never_blocks(
        backed_up: BackedUp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening a FIFO to write waits for a reader: a restore must not hang on one that
    someone left where a backed-up file goes, nor write into a socket or device."""
    out = tmp_path / "out"
    copy = restored(out, backed_up.src)
    copy.mkdir(parents=True)
    os.mkfifo(copy / "hello.txt")  # a one-blob file
    os.mkfifo(copy / "big.bin")  # a many-blob file
    os.mkfifo(copy / "empty.txt")
    with monkeypatch.context() as here, socket.socket(socket.AF_UNIX) as listener:
        here.chdir(copy)  # the full path is too long for a socket's address
        listener.bind("secret.key")

    doc = backed_up.cairn.restore("latest", out, timeout=30)

    assert doc["errors"] == []
    assert manifest(copy) == backed_up.before


def test_a_fifo_swapped_in_after_the_check_fails_to_open_instead_of_blocking(
        tmp_path: Path) -> None:
    fifo = tmp_path / "swapped"
    os.mkfifo(fifo)
    for flags in (file_writer._CREATE_FLAGS, file_writer._WRITE_FLAGS):
        finished, outcome = call_with_deadline(
            lambda flags=flags: file_writer._open_regular(str(fifo), flags), 10)
        assert finished and isinstance(outcome, OSError)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # reported, not replaced


def test_a_file_where_a_folder_belongs_is_reported_and_the_rest_restores(
        backed_up: BackedUp, tmp_path: Path) -> None:
    out = tmp_path / "out"
    copy = restored(out, backed_up.src)
    copy.mkdir(parents=True)
    (copy / "nested").write_bytes(b"a file of the user's, where the backup has a folder")

    doc = backed_up.cairn.restore("latest", out, expect=None)

    (error,) = doc["errors"]
    assert "nested" in error and "in the way" in error
    assert (copy / "nested").read_bytes().startswith(b"a file of the user's")
    expected = {p: e for p, e in backed_up.before.items()
                if p != b"nested" and not p.startswith(b"nested/")}
    got = {p: e for p, e in manifest(copy).items() if p not in (b".", b"nested")}
    assert got == {p: e for p, e in expected.items() if p != b"."}


def test_a_folder_where_a_file_belongs_is_reported_and_left_alone(
        backed_up: BackedUp, tmp_path: Path) -> None:
    out = tmp_path / "out"
    copy = restored(out, backed_up.src)
    for name in ("hello.txt", "big.bin"):  # a one-blob file and a many-blob file
        (copy / name).mkdir(parents=True)
        (copy / name / "keep.txt").write_bytes(b"the user's")

    doc = backed_up.cairn.restore("latest", out, expect=None)

    assert sorted(e.split(": ")[0] for e in doc["errors"]) == \
        [str(copy / "big.bin"), str(copy / "hello.txt")]
    for name in ("hello.txt", "big.bin"):
        assert (copy / name / "keep.txt").read_bytes() == b"the user's"
    assert (copy / "nested" / "dup-hello.txt").read_bytes() == b"hello\n"
