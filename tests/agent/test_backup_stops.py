"""A backup whose tree builder fails ends promptly with that error, even when the
walker is blocked handing over a folder (the folder queue is full)."""

from __future__ import annotations

import queue
import time
from pathlib import Path

import pytest

from agent.archive.repository import Repository
from agent.dest.local import LocalDestination
from agent.engine import backup
from agent.engine.backup import BackupOptions, run_backup
from agent.errors import ArchiveError
from tests.agent.deadline import call_with_deadline


def test_a_failed_tree_builder_ends_the_backup_while_the_walker_waits_on_a_full_queue(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    for i in range(20):
        folder = src / f"d{i:02}"
        folder.mkdir(parents=True)
        (folder / "f").write_bytes(b"x" * i)
    monkeypatch.setattr(backup, "FOLDER_QUEUE", 1)

    def failing_builder(_repo: object, _sink: object, tasks: queue.Queue, *_: object) -> str:
        deadline = time.monotonic() + 10
        while not tasks.full() and time.monotonic() < deadline:  # the walker is now blocked
            time.sleep(0.01)
        raise ArchiveError("The tree builder failed.")

    monkeypatch.setattr(backup, "_build_trees", failing_builder)
    repo = Repository.create(LocalDestination(tmp_path / "archive"), "pw", tmp_path / "cache")
    try:
        finished, outcome = call_with_deadline(
            lambda: run_backup(repo, BackupOptions(paths=(src,), processes=0)), 30)
        assert finished, "the backup hung after its tree builder failed"
        assert isinstance(outcome, ArchiveError)
        assert str(outcome) == "The tree builder failed."
        assert repo.snapshots() == []
    finally:
        repo.close()
