"""Change detection (unchanged files are not even opened) and deduplication, through the CLI."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.agent.cairn_cli import Cairn
from tests.agent.oshelp import OpenWatch
from tests.agent.strategies import random_bytes
from tests.agent.treespec import File, build, manifest, restored

MiB = 1024 * 1024
# A re-backup with no new data still writes tree blobs for folders whose metadata moved
# (the tests' own parent folders); it must not write file data again.
ALMOST_NOTHING = 16 * 1024


def small_tree() -> dict:
    return {
        "a.txt": File(b"alpha\n"),
        "b.txt": File(b"bravo\n" * 100),
        "chunked.bin": File(random_bytes(3 * MiB, 11)),
        "docs": {"c.txt": File(b"charlie\n"), "d.bin": File(random_bytes(200_000, 12))},
    }


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return build(tmp_path / "src", small_tree())


def regular_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def test_unchanged_tree_is_recognised_and_stores_almost_nothing(cairn: Cairn, src: Path) -> None:
    first = cairn.backup(src)
    second = cairn.backup(src)
    assert second["files_total"] == second["files_unchanged"] == first["files_total"] == 5
    assert second["files_new"] == second["files_changed"] == 0
    assert second["bytes_total"] == first["bytes_total"]
    assert second["bytes_stored"] < ALMOST_NOTHING < first["bytes_stored"]
    snaps = cairn.snapshots()
    assert [s["id"] for s in snaps] == [second["snapshot_id"], first["snapshot_id"]]
    assert snaps[0]["parent"] == first["snapshot_id"]


@pytest.mark.skipif(sys.platform != "linux", reason="watches opens with Linux inotify")
def test_unchanged_files_are_not_opened(cairn: Cairn, src: Path) -> None:
    cairn.backup(src)
    changed = src / "docs" / "c.txt"
    with changed.open("ab") as f:
        f.write(b"delta\n")
    files = regular_files(src)
    watch = OpenWatch(files)
    try:
        doc = cairn.backup(src)
        opened = watch.opened()
    finally:
        watch.close()
    assert opened == {changed}  # the watch sees opens: the changed file is the control
    assert doc["files_changed"] == 1
    assert doc["files_unchanged"] == len(files) - 1
    assert doc["bytes_stored"] < ALMOST_NOTHING


def test_touching_one_file_counts_one_change_and_restores_its_mtime(
        cairn: Cairn, src: Path, tmp_path: Path) -> None:
    cairn.backup(src)
    touched = src / "a.txt"
    os.utime(touched, ns=(1_700_000_000_000_000_001, 1_700_000_000_000_000_001))
    doc = cairn.backup(src)
    assert (doc["files_changed"], doc["files_new"], doc["files_unchanged"]) == (1, 0, 4)
    assert doc["bytes_stored"] < ALMOST_NOTHING  # same content: nothing new to store
    cairn.restore("latest", tmp_path / "out")
    assert manifest(restored(tmp_path / "out", src)) == manifest(src)


def test_same_size_rewrite_with_the_old_mtime_is_caught_by_ctime(
        cairn: Cairn, src: Path, tmp_path: Path) -> None:
    cairn.backup(src)
    victim = src / "b.txt"
    old = victim.stat()
    victim.write_bytes(b"BRAVO\n" * 100)  # same size...
    os.utime(victim, ns=(old.st_atime_ns, old.st_mtime_ns))  # ...and the same mtime
    doc = cairn.backup(src)
    assert doc["files_changed"] == 1
    cairn.restore("latest", tmp_path / "out")
    assert (restored(tmp_path / "out", src) / "b.txt").read_bytes() == b"BRAVO\n" * 100


def test_new_and_deleted_files(cairn: Cairn, src: Path, tmp_path: Path) -> None:
    first = cairn.backup(src)
    (src / "docs" / "c.txt").unlink()
    (src / "new.txt").write_bytes(b"new")
    doc = cairn.backup(src)
    assert (doc["files_total"], doc["files_new"], doc["files_unchanged"]) == (5, 1, 4)
    cairn.restore("latest", tmp_path / "latest")
    assert manifest(restored(tmp_path / "latest", src)) == manifest(src)
    cairn.restore(first["snapshot_id"], tmp_path / "first")
    old = restored(tmp_path / "first", src)
    assert (old / "docs" / "c.txt").read_bytes() == b"charlie\n"
    assert not (old / "new.txt").exists()


def test_same_content_under_two_names_is_stored_once(cairn: Cairn, tmp_path: Path) -> None:
    content = random_bytes(3 * MiB, 21)
    small = random_bytes(100_000, 22)
    src = build(tmp_path / "src", {"one.bin": File(content), "two.bin": File(content),
                                   "sub": {"three.bin": File(content), "s1": File(small),
                                           "s2": File(small)}})
    doc = cairn.backup(src)
    assert doc["bytes_total"] == 3 * len(content) + 2 * len(small)
    once = len(content) + len(small)
    assert once <= doc["bytes_stored"] < once + 64 * 1024


def test_a_copied_folder_adds_almost_nothing(cairn: Cairn, src: Path, tmp_path: Path) -> None:
    first = cairn.backup(src)
    shutil.copytree(src / "docs", src / "docs-copy")
    shutil.copy2(src / "chunked.bin", src / "docs-copy" / "chunked-again.bin")
    doc = cairn.backup(src)
    assert doc["files_new"] == 3 and doc["files_unchanged"] == 5
    assert doc["bytes_total"] > first["bytes_total"] + 3 * MiB
    assert doc["bytes_stored"] < ALMOST_NOTHING
    cairn.restore("latest", tmp_path / "out")
    assert manifest(restored(tmp_path / "out", src)) == manifest(src)


def test_an_insertion_in_a_big_file_stores_only_the_chunks_around_it(
        cairn: Cairn, tmp_path: Path) -> None:
    data = random_bytes(16 * MiB, 31)
    src = build(tmp_path / "src", {"big.bin": File(data)})
    cairn.backup(src)
    (src / "big.bin").write_bytes(data[: 5 * MiB] + b"inserted bytes" + data[5 * MiB :])
    doc = cairn.backup(src)
    assert doc["files_changed"] == 1
    # Content-defined chunks re-synchronise: a few ~1 MiB chunks around the edit (how many
    # depends on the archive's random seed), not the 11 MiB after it.
    assert doc["bytes_stored"] < 8 * MiB
    cairn.restore("latest", tmp_path / "out")
    assert manifest(restored(tmp_path / "out", src)) == manifest(src)
