"""Backups from a change journal reuse unchanged folders' trees unread: never a tree
the archive no longer holds (the folder cache remembers the newest run's trees, and
that run's snapshot may have been forgotten and pruned since)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.archive.repository import Repository
from agent.dest.local import LocalDestination
from agent.engine.backup import BackupOptions, run_backup
from agent.engine.check import run_check
from agent.engine.prune import forget_snapshot, run_prune
from agent.engine.restore import RestoreOptions, run_restore
from agent.retention.policy import RetentionPolicy
from tests.agent.treespec import manifest, restored

NOTHING_CHANGED = frozenset()  # a change journal that saw no change since the last run


class Runs:
    """Each operation in a repository opened for it, as separate ``cairn`` runs are, or
    all in one (a program that keeps its ``Repository``)."""

    def __init__(self, tmp_path: Path, one_repository: bool) -> None:
        self._dest, self._cache = LocalDestination(tmp_path / "archive"), tmp_path / "cache"
        self._repo: Repository | None = Repository.create(self._dest, "pw", self._cache)
        if not one_repository:
            self._repo.close()
            self._repo = None

    def __call__(self, operation):
        if self._repo is not None:
            return operation(self._repo)
        repo = Repository.open(self._dest, "pw", self._cache)
        try:
            return operation(repo)
        finally:
            repo.close()

    def backup(self, src: Path, dirty: frozenset[str] | None = None):
        return self(lambda repo: run_backup(repo, BackupOptions(paths=(src,),
                                                                dirty_paths=dirty)))


@pytest.fixture(params=[False, True], ids=["runs", "one-repository"])
def runs(tmp_path: Path, request: pytest.FixtureRequest) -> Runs:
    return Runs(tmp_path, request.param)


def assert_restores(runs: Runs, snapshot, src: Path, out: Path) -> None:
    assert runs(lambda repo: run_check(repo, read_data=True)).ok
    result = runs(lambda repo: run_restore(repo, snapshot, RestoreOptions(target=out)))
    assert result.errors == []
    assert manifest(restored(out, src)) == manifest(src)


@pytest.mark.parametrize("journal_runs_before", [0, 1])
def test_a_journal_backup_after_the_newest_snapshots_were_forgotten_and_pruned(
        runs: Runs, tmp_path: Path, journal_runs_before: int) -> None:
    """The folder changed in a run whose snapshots are then forgotten and pruned; the
    next journal run must not reuse that run's (now deleted) tree of the folder. With a
    journal run in between, the folder cache also knows the tree's totals, so nothing
    would even try to read it: the snapshot would point at a deleted tree."""
    src = tmp_path / "src"
    (src / "changed").mkdir(parents=True)
    (src / "changed" / "file.txt").write_text("first version")
    (src / "same").mkdir()
    (src / "same" / "file.txt").write_text("never changes")
    kept = runs.backup(src).snapshot
    (src / "changed" / "file.txt").write_text("second version, longer")
    forgotten = [runs.backup(src).snapshot]
    for _ in range(journal_runs_before):  # reuses the changed folder's new tree unread
        forgotten.append(runs.backup(src, NOTHING_CHANGED).snapshot)
    for snap in forgotten:
        runs(lambda repo, snap=snap: forget_snapshot(repo, snap.id))
    runs(lambda repo: run_prune(repo, RetentionPolicy(), now=datetime.now(UTC),
                                dry_run=False, grace_s=0))
    assert [s.id for s in runs(lambda repo: repo.readable_snapshots())] == [kept.id]

    result = runs.backup(src, NOTHING_CHANGED)

    assert result.errors == [] and result.snapshot.parent == kept.id
    assert_restores(runs, result.snapshot, src, tmp_path / "out")


def test_a_journal_backup_still_reuses_unchanged_folders_unread(
        runs: Runs, tmp_path: Path) -> None:
    src = tmp_path / "src"
    for name in ("a", "b"):
        (src / name).mkdir(parents=True)
        (src / name / "file.txt").write_text(name)
    first = runs.backup(src).snapshot
    (src / "b" / "file.txt").write_text("b, changed")
    result = runs.backup(src, frozenset({str(src / "b" / "file.txt")}))
    assert result.counts.dirs_listed < 3  # "a" was not listed: its tree was taken whole
    assert result.snapshot.parent == first.id
    assert_restores(runs, result.snapshot, src, tmp_path / "out")
