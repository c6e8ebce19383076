"""kill -9 in the middle of a backup: nothing earlier is lost and the next run resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.agent.cairn_cli import Cairn, cairn_command
from tests.agent.strategies import random_bytes
from tests.agent.treespec import File, build, manifest, restored

MiB = 1024 * 1024
FILES, FILE_SIZE = 24, 12 * MiB  # ~300 MB of incompressible data: a run of a few seconds
PACKS_BEFORE_KILL = 2


def write_random_tree(root: Path) -> int:
    root.mkdir(parents=True)
    for i in range(FILES):
        (root / f"file-{i:02d}.bin").write_bytes(random_bytes(FILE_SIZE, 2026 + i))
    return FILES * FILE_SIZE


def kill_when_packs_appear(cairn: Cairn, src: Path, packs_before: set[str]) -> set[str]:
    """Start ``cairn backup`` and kill -9 it once new data packs are stored; returns them."""
    proc = subprocess.Popen([*cairn_command(), "backup", str(src), "--dest", str(cairn.dest),
                             "--json"], env=cairn.env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        while proc.poll() is None:
            new = set(cairn.data_packs()) - packs_before
            if len(new) >= PACKS_BEFORE_KILL:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.002)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, "the backup finished before it could be killed"
    return set(cairn.data_packs()) - packs_before


@pytest.mark.slow
def test_killed_backup_loses_nothing_and_the_next_run_reuses_its_packs(
        cairn: Cairn, tmp_path: Path) -> None:
    small = build(tmp_path / "small", {"keep.txt": File(b"keep me\n"),
                                       "sub": {"also.txt": File(b"me too\n")}})
    small_manifest = manifest(small)
    earlier = cairn.backup(small)
    packs_before = set(cairn.data_packs())
    big = tmp_path / "big"
    total = write_random_tree(big)

    left_behind = kill_when_packs_appear(cairn, big, packs_before)
    left_bytes = sum(cairn.data_packs()[name].stat().st_size for name in left_behind)
    assert left_bytes >= PACKS_BEFORE_KILL * 15 * MiB

    # The killed run wrote no snapshot; the earlier one is whole.
    assert [s["id"] for s in cairn.snapshots()] == [earlier["snapshot_id"]]
    cairn.restore(earlier["snapshot_id"], tmp_path / "out-small")
    assert manifest(restored(tmp_path / "out-small", small)) == small_manifest
    assert cairn.check()["ok"]
    assert cairn.check(read_data=True)["ok"]

    # The next run completes and reuses what the killed run stored.
    again = cairn.backup(big)
    assert again["files_total"] == FILES and again["bytes_total"] == total
    assert again["bytes_stored"] <= total - left_bytes + 2 * MiB
    assert set(cairn.data_packs()) >= left_behind
    cairn.restore(again["snapshot_id"], tmp_path / "out-big")
    assert manifest(restored(tmp_path / "out-big", big)) == manifest(big)
    assert cairn.check(read_data=True)["ok"]
