"""Many small files: the backup hands them to worker processes (agent.engine.sealworkers).

Below ``PROCESS_THRESHOLD`` small files a run stays on threads, so the other
end-to-end tests never start the pool; this one crosses the threshold with
the real CLI and checks the process path end to end.
"""

from __future__ import annotations

from pathlib import Path

from agent.engine.backup import PROCESS_THRESHOLD
from tests.agent.cairn_cli import Cairn
from tests.agent.strategies import random_bytes
from tests.agent.treespec import File, build, manifest, restored

FILES = PROCESS_THRESHOLD + 500


def many_files_tree() -> dict:
    tree: dict = {}
    for folder in range(FILES // 100):
        tree[f"d{folder:03d}"] = {
            f"f{i:03d}.txt": File(random_bytes(200 + (i * 37) % 3000, folder * 1000 + i))
            for i in range(100)
        }
    tree["same"] = {f"copy{i}.bin": File(b"identical content " * 100) for i in range(50)}
    tree["empty.txt"] = File(b"")
    return tree


def test_many_small_files_round_trip_through_worker_processes(cairn: Cairn,
                                                              tmp_path: Path) -> None:
    src = build(tmp_path / "src", many_files_tree())
    first = cairn.backup(src)
    assert first["files_total"] == first["files_new"] >= FILES
    assert first["errors"] == []
    cairn.restore(first["snapshot_id"], tmp_path / "out")
    assert manifest(restored(tmp_path / "out", src)) == manifest(src)
    assert cairn.check(read_data=True)["ok"]

    # The 50 identical files were sealed by whichever worker met them first: stored once.
    (src / "d000" / "f000.txt").write_bytes(b"changed")
    second = cairn.backup(src)
    assert second["files_changed"] == 1
    assert second["files_unchanged"] == first["files_total"] - 1
    assert second["bytes_stored"] < 64 * 1024
