"""Prune is crash-safe: killed at any write, the archive passes check --read-data and a
re-run completes with the same result."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from agent.dest.local import LocalDestination
from agent.engine.prune import run_prune
from agent.retention.policy import RetentionPolicy
from tests.agent.cairn_cli import Cairn, cairn_command
from tests.prune.conftest import PASSPHRASE, History, at
from tests.prune.faults import DyingDestination, Killed

NOW = at("2027-06-15 12:00")
rand = random.Random(11)
V = [rand.randbytes(20_000) for _ in range(5)]
SMALL = rand.randbytes(5_000)
# c1 shares its data pack between a dead version (a.txt v0), a live file and a deleted
# (carried) one, so prune rewrites that pack; c3's packs die whole.
STEPS = [
    ("c1", "2027-06-13 10:05", {"a.txt": V[0], "small.bin": SMALL, "gone.txt": "G"}),
    ("c2", "2027-06-13 10:40", {"a.txt": V[1], "gone.txt": None}),
    ("c3", "2027-06-14 08:00", {"a.txt": V[2]}),
    ("c4", "2027-06-14 08:30", {"a.txt": V[3]}),
    ("c5", "2027-06-15 11:00", {"a.txt": V[4]}),
]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> History:
    """An archive with a short history, built once; tests work on copies of it."""
    from agent.archive.repository import Repository

    root = tmp_path_factory.mktemp("template")
    (root / "src").mkdir()
    repo = Repository.create(LocalDestination(root / "archive"), PASSPHRASE,
                             root / "home" / "cache")
    history = History(root, repo, root / "src")
    for label, when, changes in STEPS:
        history.write(changes)
        history.backup(label, at(when))
    repo.close()
    return history


def copy_of(template: History, to: Path) -> History:
    shutil.copytree(template.dest, to / "archive")
    h = History(to, template.repo, template.src, dict(template.states), dict(template.labels))
    h.repo = h.reopen()
    return h


def prune(history: History, dest=None):
    repo = history.reopen(dest=dest, cache=history.root / f"cache-{time.monotonic_ns()}")
    try:
        return run_prune(repo, RetentionPolicy(), now=NOW, dry_run=False, grace_s=0)
    finally:
        repo.close()


def final_state(history: History) -> tuple[set[str], set[str]]:
    """Regular snapshot IDs and carry tree roots (deterministic, unlike carry IDs)."""
    snaps = history.repo.snapshots()
    return ({s.id for s in snaps if not s.is_carry}, {s.tree for s in snaps if s.is_carry})


def test_killed_at_every_write_then_rerun(template: History, tmp_path: Path) -> None:
    reference = copy_of(template, tmp_path / "reference")
    counting = DyingDestination(LocalDestination(reference.dest))
    report = prune(reference, counting)
    assert report.packs_rewritten >= 1 and report.packs_removed >= 3 and report.carries
    expected = final_state(reference)
    writes = counting.mutations
    assert writes >= 10
    for die_at in range(writes):
        h = copy_of(template, tmp_path / f"killed-at-{die_at}")
        with pytest.raises(Killed):
            prune(h, DyingDestination(LocalDestination(h.dest), die_at))
        h.check()
        for lock in (h.dest / "locks").iterdir():  # the dead process's lease runs out
            lock.unlink()
        prune(h)
        h.check()
        assert final_state(h) == expected, f"killed before write {die_at}"


def _names(dest: Path, kind: str) -> set[str]:
    folder = dest / kind
    if kind == "data":
        return {p.name for p in folder.glob("*/*")}
    return set(p.name for p in folder.iterdir())


# Kill points, found by watching the archive folder: (what, kind, test on the names).
PHASES = [
    ("the carry snapshot is written", "snapshots", lambda now, before: len(now - before) > 0),
    ("snapshots are being forgotten", "snapshots", lambda now, before: len(before - now) > 0),
    ("the new index is written", "index", lambda now, before: len(now - before) > 0),
    ("old index files are being removed", "index", lambda now, before: len(before - now) > 0),
    ("packs are being removed", "data", lambda now, before: len(before - now) > 0),
]


def test_kill_9_during_prune(template: History, tmp_path: Path) -> None:
    """The real thing: SIGKILL a `cairn prune` process as soon as the archive folder shows
    it reached each phase."""
    killed = 0
    for i, (what, kind, reached) in enumerate(PHASES):
        h = copy_of(template, tmp_path / f"phase-{i}")
        before = _names(h.dest, kind)
        cli = Cairn(home=h.root / "home", dest=h.dest, passphrase=PASSPHRASE)
        argv = [*cairn_command(), "prune", "--now", NOW.isoformat(), "--grace", "0",
                "--dest", str(h.dest)]
        proc = subprocess.Popen(argv, env=cli.env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        while proc.poll() is None and not reached(_names(h.dest, kind), before):
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        killed += proc.wait() == -signal.SIGKILL
        h.check()
        prune(h)  # the killed process's lock is stale: its pid is gone
        h.check()
        assert len(h.repo.snapshots()) == 4, what  # c2, c4, c5 and the carry snapshot
        h.repo.close()
    assert killed >= 3  # most kills landed before the process finished on its own
