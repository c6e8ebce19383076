"""Real-time watching: the real `cairn run` backs up changes without walking the whole tree."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.helpers import Agent, make_tree, wait_for

DIRS, FILES = 30, 5


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Agent, Path]]:
    """One service watching a 30-folder tree; its first (full) backup is done."""
    base = tmp_path_factory.mktemp("watch")
    src = base / "src"
    make_tree(src, DIRS, FILES)
    cache = src / "d000" / "build-cache"
    cache.mkdir()
    (cache / "CACHEDIR.TAG").write_bytes(b"Signature: 8a477f597d28d172789f06886806bc55\n")
    (cache / "blob.o").write_bytes(b"x" * 100)
    (src / "d001" / "draft.tmp").write_bytes(b"temporary")
    agent = Agent(base / "home")
    agent.add_set("docs", src, dest=base / "archive", every="1h")
    agent.start()
    try:
        first = agent.wait_run("docs", 0)
        assert first.scan == "full" and first.scan_reason == "first backup of this set"
        yield agent, src
    finally:
        agent.stop()


def _browse(agent: Agent, snapshot: str, path: Path) -> dict[str, int]:
    with agent.client() as client:
        return {e.name: e.size for e in client.browse("docs", snapshot, str(path))}


def test_first_backup_lists_every_folder_and_skips_caches(watched: tuple[Agent, Path]) -> None:
    agent, src = watched
    run = agent.set_status("docs").last_run
    assert run is not None
    assert run.dirs_listed >= DIRS + 1  # src and every d* folder were read from disk
    names = _browse(agent, run.snapshot_id, src / "d000")
    assert "f000.txt" in names and "build-cache" not in names  # CACHEDIR.TAG folder
    assert "draft.tmp" not in _browse(agent, run.snapshot_id, src / "d001")  # built-in exclude


def test_changed_file_is_backed_up_without_a_full_walk(watched: tuple[Agent, Path]) -> None:
    agent, src = watched
    wait_for(lambda: not agent.set_status("docs").full_scan_pending, what="no pending full scan")
    changed = src / "d017" / "f003.txt"
    changed.write_bytes(b"new content, longer than before " * 10)
    wait_for(lambda: agent.set_status("docs").changed_paths >= 1, what="the change journaled")
    run = agent.backup_now("docs")
    assert run.scan == "changes"
    assert run.files_changed == 1 and run.files_new == 0
    assert run.files_total == DIRS * FILES  # everything else reused from the parent snapshot
    assert 1 <= run.dirs_listed <= 2  # src (on the way) and d017; no other folder
    assert _browse(agent, run.snapshot_id, src / "d017")["f003.txt"] == 320
    assert agent.set_status("docs").changed_paths == 0


def test_new_folder_and_deleted_file_are_picked_up(watched: tuple[Agent, Path]) -> None:
    agent, src = watched
    (src / "d005" / "f000.txt").unlink()
    (src / "fresh" / "inner").mkdir(parents=True)
    (src / "fresh" / "inner" / "note.txt").write_text("hello")
    wait_for(lambda: agent.set_status("docs").changed_paths >= 2, what="changes journaled")
    run = agent.backup_now("docs")
    assert run.scan == "changes" and run.files_new == 1
    assert run.dirs_listed <= 4  # src, d005, fresh, fresh/inner
    assert "f000.txt" not in _browse(agent, run.snapshot_id, src / "d005")
    assert _browse(agent, run.snapshot_id, src / "fresh" / "inner") == {"note.txt": 5}


def test_watcher_overflow_forces_a_full_scan(watched: tuple[Agent, Path]) -> None:
    agent, src = watched
    assert agent.proc is not None
    wait_for(lambda: agent.set_status("docs").changed_paths == 0, what="a clean journal")
    a, b = src / "d002" / "f000.txt", src / "d002" / "f001.txt"
    agent.proc.send_signal(signal.SIGSTOP)  # the kernel queue (16384 events) fills up
    try:
        for i in range(10_000):
            os.utime(a, ns=(i, i))
            os.utime(b, ns=(i, i))
    finally:
        agent.proc.send_signal(signal.SIGCONT)
    status = wait_for(lambda: (st := agent.set_status("docs")).full_scan_pending and st,
                      what="a pending full scan")
    assert "overflow" in status.full_scan_reason
    run = agent.backup_now("docs")
    assert run.scan == "full" and "overflow" in run.scan_reason
    assert run.dirs_listed >= DIRS + 1
    assert run.files_changed == 2


def test_restart_forces_one_full_scan_then_changes_again(watched: tuple[Agent, Path]) -> None:
    agent, src = watched
    assert agent.stop() == 0
    (src / "d020" / "f001.txt").write_text("changed while the service was stopped")
    agent.start()
    status = agent.set_status("docs")
    assert status.full_scan_pending and "started" in status.full_scan_reason
    run = agent.backup_now("docs")  # the interval (1h) has not passed: started by hand
    assert run.scan == "full" and run.files_changed == 1
    (src / "d021" / "f001.txt").write_text("changed while watched")
    wait_for(lambda: agent.set_status("docs").changed_paths >= 1, what="the change journaled")
    run = agent.backup_now("docs")
    assert run.scan == "changes" and run.files_changed == 1 and run.dirs_listed <= 2
