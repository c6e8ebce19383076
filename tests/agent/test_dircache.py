"""The folder cache keeps what a run recorded only once committed, byte for byte."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.scan.dircache import DirCache

FOLDERS = [
    "/home/ana/Documents",
    "/home/ana/caf\u00e9 na\u00efve/\u65e5\u672c",
    "/home/ana/bad-\udcff-bytes",  # a name that is not UTF-8, as os.fsdecode gives it
    "/home/ana/" + "deep/" * 900 + "end",  # longer than any one path component
    "/",
]


def test_recorded_folders_come_back_after_commit_and_reopen(tmp_path: Path) -> None:
    cache = DirCache(tmp_path / "dirs.sqlite")
    expected = {}
    for i, folder in enumerate(FOLDERS):
        fp, tree = os.urandom(16 + i), os.urandom(32).hex()
        cache.record(folder, fp, tree)
        expected[folder] = (fp, tree)
    cache.commit()
    cache.close()

    reopened = DirCache(tmp_path / "dirs.sqlite")
    reopened.load(["/"])
    for folder, entry in expected.items():
        assert reopened.get(folder) == entry
    reopened.close()


def test_nothing_recorded_is_stored_without_commit(tmp_path: Path) -> None:
    cache = DirCache(tmp_path / "dirs.sqlite")
    cache.record("/home/ana", os.urandom(16), os.urandom(32).hex())
    cache.close()
    reopened = DirCache(tmp_path / "dirs.sqlite")
    reopened.load(["/"])
    assert reopened.get("/home/ana") is None
    reopened.close()


def test_a_later_record_replaces_an_earlier_one(tmp_path: Path) -> None:
    cache = DirCache(tmp_path / "dirs.sqlite")
    cache.record("/a", b"1" * 16, "00" * 32)
    cache.commit()
    cache.record("/a", b"2" * 16, "11" * 32)
    cache.commit()
    cache.load(["/a"])
    assert cache.get("/a") == (b"2" * 16, "11" * 32)
    cache.close()


def test_a_malformed_tree_id_is_refused_not_stored_wrong(tmp_path: Path) -> None:
    cache = DirCache(tmp_path / "dirs.sqlite")
    with pytest.raises(ValueError):
        cache.record("/a", b"1" * 16, "ab" * 31)
    cache.close()
