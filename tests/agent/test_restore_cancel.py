"""A cancelled restore keeps the files it finished and leaves no half-written one behind."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agent.archive.repository import Repository
from agent.dest.local import LocalDestination
from agent.engine import file_writer
from agent.engine.backup import BackupOptions, run_backup
from agent.engine.restore import RestoreOptions, run_restore
from agent.errors import Interrupted
from tests.agent.strategies import random_bytes
from tests.agent.treespec import File, build, restored

MiB = 1024 * 1024


@pytest.mark.parametrize("stop", ["cancel", "error"])
def test_a_restore_stopped_midway_removes_the_file_it_had_not_finished(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop: str) -> None:
    """Stopped by its cancel event (the tray's button, the service) or by an error (an
    interrupt, a bug): packs not yet started are not restored either."""
    # Incompressible, so the big file's blobs fill several packs.
    small = {f"small-{i:02d}.txt": File(f"small file {i}\n".encode() * 50) for i in range(20)}
    src = build(tmp_path / "src", {**small, "big.bin": File(random_bytes(40 * MiB, 7))})
    repo = Repository.create(LocalDestination(tmp_path / "archive"), "pw", tmp_path / "cache")
    try:
        snap = run_backup(repo, BackupOptions(paths=(src,))).snapshot
        cancel = threading.Event()
        real_write = file_writer._write_file
        real_read = file_writer.PackOrderedWriter._read_span
        big_writes = 0
        reads_after_stop = 0
        stopped = False

        def read(self: file_writer.PackOrderedWriter, pack: str, group: list) -> object:
            nonlocal reads_after_stop
            reads_after_stop += stopped
            return real_read(self, pack, group)

        def write_then_cancel(entry: file_writer._File, plain: bytes, offset: int) -> None:
            nonlocal big_writes
            real_write(entry, plain, offset)
            if entry.path.endswith("big.bin"):
                nonlocal stopped
                big_writes += 1
                stopped = True
                if stop == "cancel":
                    cancel.set()  # after the big file's first blob landed
                elif big_writes == 1:
                    raise RuntimeError("stopped")

        monkeypatch.setattr(file_writer, "_write_file", write_then_cancel)
        monkeypatch.setattr(file_writer.PackOrderedWriter, "_read_span", read)
        out = tmp_path / "out"
        with pytest.raises(Interrupted if stop == "cancel" else RuntimeError):
            run_restore(repo, snap, RestoreOptions(target=out, workers=1, cancel=cancel))
        copy = restored(out, src)
        assert big_writes >= 1
        assert reads_after_stop == 0  # not another span, in this pack or the next
        assert not (copy / "big.bin").exists()  # never a full-size file with holes of zeros
        for name, spec in small.items():  # each finished one kept whole, or not there yet
            assert not (copy / name).exists() or (copy / name).read_bytes() == spec.content
    finally:
        repo.close()


def test_a_failed_pack_is_the_error_reported_when_it_stops_the_others(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The last pack fails while the first is still being written: the first stops
    quietly, and the error raised is the failure itself, although the first pack's
    result is collected first."""
    src = build(tmp_path / "src", {"big.bin": File(random_bytes(40 * MiB, 8))})
    repo = Repository.create(LocalDestination(tmp_path / "archive"), "pw", tmp_path / "cache")
    try:
        snap = run_backup(repo, BackupOptions(paths=(src,))).snapshot
        tree = snap.tree
        for part in src.parts[1:]:
            tree = next(n for n in repo.tree(tree) if n["name"] == part)["subtree"]
        (node,) = repo.tree(tree)
        locations = repo.cache.lookup_many(bytes.fromhex(h) for h in node["content"])
        packs = sorted({loc.pack for loc in locations.values()})
        assert len(packs) >= 2
        real_read, real_write = file_writer.PackOrderedWriter._read_span, file_writer._write_file
        reading = threading.local()
        failed = threading.Event()

        def read(self: file_writer.PackOrderedWriter, pack: str, group: list) -> object:
            reading.pack = pack
            return real_read(self, pack, group)

        def write(entry: file_writer._File, plain: bytes, offset: int) -> None:
            if reading.pack == packs[-1]:
                failed.set()
                raise RuntimeError("the disk caught fire")
            if reading.pack == packs[0]:
                assert failed.wait(30)
            real_write(entry, plain, offset)

        monkeypatch.setattr(file_writer.PackOrderedWriter, "_read_span", read)
        monkeypatch.setattr(file_writer, "_write_file", write)
        with pytest.raises(RuntimeError, match="caught fire"):
            run_restore(repo, snap, RestoreOptions(target=tmp_path / "out", workers=len(packs)))
        assert not (restored(tmp_path / "out", src) / "big.bin").exists()
    finally:
        repo.close()
