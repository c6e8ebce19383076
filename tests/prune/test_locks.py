"""Locks and leases: prune refuses live locks, and nothing pruned under a lapsed lease is
ever referenced by a snapshot."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace

import pytest

from agent.archive import locks
from agent.archive.locks import ArchiveLock, list_locks
from agent.codec.envelope import NO_ID, ObjectType, seal
from agent.dest.local import LocalDestination
from agent.engine.backup import BackupOptions, run_backup
from agent.engine.prune import run_prune
from agent.errors import ArchiveError
from agent.model.snapshot import Snapshot
from agent.retention.policy import RetentionPolicy
from tests.prune.conftest import History, at, listing
from tests.prune.faults import HookedDestination

NOW = at("2027-06-15 12:00")
X = os.urandom(100_000)
NO_CARRY = RetentionPolicy(deleted_files=0)


def forgettable_x(history: History) -> Snapshot:
    """s1 holds x.bin, s2 (same hour) does not: with no deleted-files retention, x.bin's
    data dies when s1 is forgotten."""
    history.write({"keep.txt": "K", "x.bin": X})
    s1 = history.backup("s1", at("2027-06-13 10:10"))
    history.write({"x.bin": None})
    history.backup("s2", at("2027-06-13 10:40"))
    return s1


def prune(history: History, repo=None, **kwargs):
    return run_prune(repo or history.repo, kwargs.pop("policy", NO_CARRY), now=NOW,
                     dry_run=False, grace_s=0, **kwargs)


def test_prune_refuses_while_a_backup_holds_a_live_lock(history: History) -> None:
    forgettable_x(history)
    held = ArchiveLock(LocalDestination(history.dest), history.repo.keys, exclusive=False)
    held.acquire()
    before = listing(history.dest)
    with pytest.raises(ArchiveError, match="lock held by"):
        prune(history)
    assert listing(history.dest) == before
    held.release()
    assert prune(history).forgotten


def test_an_expired_lock_does_not_block_prune(history: History, monkeypatch) -> None:
    forgettable_x(history)
    monkeypatch.setattr(locks, "LEASE_S", -1)  # a holder that slept past its lease
    ArchiveLock(LocalDestination(history.dest), history.repo.keys, exclusive=False).acquire()
    monkeypatch.undo()
    assert prune(history).forgotten


def test_a_lock_of_a_dead_process_on_this_computer_is_stale(history: History) -> None:
    forgettable_x(history)
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    now = time.time()
    doc = {"host": socket.gethostname(), "pid": int(child.stdout), "exclusive": True,
           "created": now, "expires": now + 3600}
    sealed = seal(history.repo.keys, ObjectType.LOCK, NO_ID, json.dumps(doc).encode())
    history.repo.dest.put_bytes("locks", hashlib.sha256(sealed).hexdigest(), sealed)
    (info,) = list_locks(history.repo.dest, history.repo.keys)
    assert info.stale and info.expires > time.time()
    assert prune(history).forgotten


def test_two_processes_racing_for_the_lock_never_both_win(history: History) -> None:
    plain = LocalDestination(history.dest)
    rival = ArchiveLock(plain, history.repo.keys, exclusive=True)

    def rival_writes_first(method: str, kind: str, name: str) -> None:
        if method == "put" and kind == "locks" and not rival.name:
            rival.acquire()  # it saw no lock either, and writes just before us

    ours = ArchiveLock(HookedDestination(plain, rival_writes_first), history.repo.keys,
                       exclusive=True)
    with pytest.raises(ArchiveError, match="exclusive lock"):
        ours.acquire()
    assert [info.name for info in list_locks(plain, history.repo.keys)] == [rival.name]


class PausedBackup:
    """A backup on another device that stops before writing its final index, like a laptop
    going to sleep, until ``wake`` is called."""

    def __init__(self, history: History, folder) -> None:
        self.at_index, self.resume = threading.Event(), threading.Event()
        self.error: BaseException | None = None
        self.result = None

        def pause(method: str, kind: str, name: str) -> None:
            if kind == "index" and not self.at_index.is_set():
                self.at_index.set()
                self.resume.wait(30)

        dest = HookedDestination(LocalDestination(history.dest), pause)
        self.repo = history.reopen(dest=dest, cache=history.root / "desktop-cache")
        options = BackupOptions(paths=(folder,), host="desktop", device="desktop", workers=2,
                                snapshot_time=at("2027-06-15 11:00"))
        self.thread = threading.Thread(target=self._run, args=(options,))
        self.thread.start()
        assert self.at_index.wait(30)

    def _run(self, options: BackupOptions) -> None:
        try:
            self.result = run_backup(self.repo, options)
        except BaseException as exc:
            self.error = exc

    def wake(self) -> None:
        self.resume.set()
        self.thread.join(30)
        self.repo.close()


def test_a_backup_whose_lease_lapsed_writes_no_snapshot_over_pruned_data(
        history: History, monkeypatch) -> None:
    forgettable_x(history)
    desktop = history.root / "desktop"
    desktop.mkdir()
    (desktop / "copy-of-x.bin").write_bytes(X)  # deduplicates against s1's blob
    monkeypatch.setattr(locks, "LEASE_S", 0.5)
    backup = PausedBackup(history, desktop)
    time.sleep(0.6)  # the laptop sleeps past its lease: its lock is stale
    report = prune(history)
    assert report.packs_removed >= 1 and history.labels["s1"] not in history.snapshot_ids()
    backup.wake()
    assert isinstance(backup.error, ArchiveError)
    assert "no snapshot was written" in str(backup.error)
    assert not [s for s in history.repo.snapshots() if s.host == "desktop"]
    history.check()
    monkeypatch.undo()
    again = run_backup(history.repo, BackupOptions(paths=(desktop,), host="desktop",
                                                   device="desktop", workers=2))
    assert history.restored(again.snapshot, desktop) == {"copy-of-x.bin": X}
    history.check()


def test_a_lapsed_lease_with_nothing_pruned_still_completes(history: History,
                                                            monkeypatch) -> None:
    forgettable_x(history)
    desktop = history.root / "desktop"
    desktop.mkdir()
    (desktop / "copy-of-x.bin").write_bytes(X)
    monkeypatch.setattr(locks, "LEASE_S", 0.5)
    backup = PausedBackup(history, desktop)
    time.sleep(0.6)
    backup.wake()
    assert backup.error is None and backup.result is not None
    assert history.restored(backup.result.snapshot, desktop) == {"copy-of-x.bin": X}
    history.check()


def test_packs_a_snapshot_stored_during_prune_needs_are_kept(history: History) -> None:
    s1 = forgettable_x(history)
    other = history.reopen(cache=history.root / "desktop-cache")
    stored: list[str] = []

    def late_snapshot(method: str, kind: str, name: str) -> None:
        if method == "remove" and kind == "index" and not stored:
            # A backup whose lease lapsed stores a snapshot reusing s1's (dead) trees and data.
            snap = replace(s1, id="", host="desktop", device="desktop", time=NOW.isoformat())
            stored.append(other.save_snapshot(snap))

    repo = history.reopen(dest=HookedDestination(LocalDestination(history.dest), late_snapshot))
    report = prune(history, repo)
    repo.close()
    other.close()
    assert stored and report.packs_rescued >= 1
    history.check()
    late = history.repo.load_snapshot(stored[0])
    assert history.restored(late) == history.states[s1.id]
    # The next prune sees the new snapshot from the start and removes what is really dead.
    assert prune(history).packs_rescued == 0
    history.check()
