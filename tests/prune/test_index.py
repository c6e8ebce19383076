"""Superseding index files: readers treat superseded files as gone, leftovers get removed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from agent.archive.index_cache import IndexCache
from agent.archive.index_file import decode_index
from agent.codec.envelope import ObjectType
from agent.dest.local import LocalDestination
from agent.engine.prune import run_prune
from agent.pack.format import PackEntry
from agent.retention.policy import RetentionPolicy
from tests.prune.conftest import History, at
from tests.prune.faults import HookedDestination, Killed

NOW = at("2027-06-15 12:00")


def test_superseded_names_and_first_seen_times_outlive_clear(tmp_path: Path) -> None:
    cache = IndexCache(tmp_path / "index.sqlite")
    entry = PackEntry(ObjectType.DATA, b"\1" * 32, 0, 10, 8)
    before = time.time()
    cache.add("aa" * 32, {"bb" * 32: [entry]}, superseded=["cc" * 32])
    cache.clear()
    assert cache.lookup(b"\1" * 32) is None and not cache.index_files()
    assert cache.superseded() == {"cc" * 32}
    assert cache.packs_seen_since(before) == {"bb" * 32}
    cache.add("dd" * 32, {"bb" * 32: [entry]})  # seen again later: still first seen before
    assert cache.packs_seen_since(time.time() + 1) == set()
    cache.close()


def make_history(history: History) -> None:
    for i, when in enumerate(["2027-06-13 10:10", "2027-06-13 10:40", "2027-06-14 09:00"]):
        history.write({"a.txt": os.urandom(2000 + i), f"f{i}": os.urandom(3000)})
        history.backup(f"s{i}", at(when))


def test_a_prune_killed_after_its_new_index_leaves_a_readable_archive(
        history: History) -> None:
    make_history(history)
    old_index = set(os.listdir(history.dest / "index"))

    def die_at_first_index_removal(method: str, kind: str, name: str) -> None:
        if method == "remove" and kind == "index":
            raise Killed("killed after writing the superseding index")

    repo = history.reopen(dest=HookedDestination(LocalDestination(history.dest),
                                                 die_at_first_index_removal))
    with pytest.raises(Killed):
        run_prune(repo, RetentionPolicy(), now=NOW, dry_run=False, grace_s=0)
    repo.close()
    stored = set(os.listdir(history.dest / "index"))
    (survivors,) = stored - old_index - _carry_indexes(history, stored - old_index)
    assert old_index <= stored  # nothing removed yet: both generations are stored

    fresh = history.reopen(cache=history.root / "fresh-cache")
    fresh.sync_index()
    assert survivors in fresh.cache.index_files()
    assert not fresh.cache.index_files() & old_index
    fresh.close()
    history.repo.sync_index()  # a cache that had read the old files drops them
    assert not history.repo.cache.index_files() & old_index
    history.check()

    for lock in (history.dest / "locks").iterdir():  # the killed process's lease ran out
        lock.unlink()
    run_prune(history.repo, RetentionPolicy(), now=NOW, dry_run=False, grace_s=0)
    assert not set(os.listdir(history.dest / "index")) & old_index
    history.check()


def _carry_indexes(history: History, names: set[str]) -> set[str]:
    """Of new index files, those written for carry trees (they supersede nothing)."""
    return {n for n in names if not decode_index(
        history.repo.keys, (history.dest / "index" / n).read_bytes()).superseded}
