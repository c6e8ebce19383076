"""Extended attributes round-trip, whichever part of the backup read the file."""

from __future__ import annotations

import os
from pathlib import Path

from agent.archive.repository import Repository
from agent.dest.local import LocalDestination
from agent.engine.backup import PROCESS_THRESHOLD, BackupOptions, run_backup
from agent.engine.restore import RestoreOptions, run_restore
from tests.agent.strategies import random_bytes
from tests.agent.treespec import File, build, manifest, restored

MiB = 1024 * 1024


def test_xattrs_of_files_and_folders_are_restored(tmp_path: Path) -> None:
    last = PROCESS_THRESHOLD // 100 + 2
    tree: dict = {f"d{d:02d}": {f"f{i:03d}": File(random_bytes(50 + i, d * 1000 + i))
                                for i in range(100)} for d in range(last + 1)}
    tree["big.bin"] = File(random_bytes(3 * MiB, 7))
    src = build(tmp_path / "src", tree)
    tagged = {
        src / "d00" / "f001": b"read on a thread (before the worker processes start)",
        src / f"d{last:02d}" / "f099": b"\x00\xffread in a worker process",
        src / "big.bin": b"read on a large-file thread",
        src / "d01": b"a folder",
    }
    for path, value in tagged.items():
        os.setxattr(path, "user.cairn-test", value)
        os.setxattr(path, "user.second", b"")
    repo = Repository.create(LocalDestination(tmp_path / "archive"), "pw", tmp_path / "cache")
    try:
        result = run_backup(repo, BackupOptions(paths=(src,), workers=2, processes=2))
        assert result.errors == []
        run_restore(repo, result.snapshot, RestoreOptions(target=tmp_path / "out", workers=2))
    finally:
        repo.close()
    copy = restored(tmp_path / "out", src)
    assert manifest(copy) == manifest(src)
    for path, value in tagged.items():
        twin = copy / path.relative_to(src)
        assert os.getxattr(twin, "user.cairn-test") == value, path
        assert sorted(os.listxattr(twin)) == ["user.cairn-test", "user.second"]
    assert os.listxattr(copy / "d00" / "f002") == []
