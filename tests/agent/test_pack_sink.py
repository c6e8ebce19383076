"""The backup's pack sink: one writer for many producers, packs stored then indexed."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

from agent.archive.repository import Repository
from agent.codec.envelope import ObjectType, seal
from agent.dest.local import LocalDestination
from agent.engine.sink import PackSink
from agent.errors import DestinationFull
from agent.pack import writer
from tests.agent.deadline import call_with_deadline


def test_a_slow_pack_flush_does_not_hold_up_other_producers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full pack is flushed to disk (fsync) by the uploader, outside the sink's lock:
    on a slow external drive a flush takes long, and every worker adds through that lock."""
    repo = Repository.create(LocalDestination(tmp_path / "archive"), "pw", tmp_path / "cache")
    flushing, release = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        flushing.set()
        release.wait(30)
        real_fsync(fd)

    monkeypatch.setattr(writer, "TARGET_SIZE", 1)  # every blob fills its pack
    monkeypatch.setattr(writer.os, "fsync", slow_fsync)
    blobs = [bytes([i]) * 1000 for i in range(3)]
    ids = [repo.keys.blob_id(b) for b in blobs]

    def add(i: int) -> None:
        sink.add(ObjectType.DATA, ids[i], seal(repo.keys, ObjectType.DATA, ids[i], blobs[i]),
                 len(blobs[i]))

    sink = PackSink(repo, repo.cache.known_ids(), uploaders=1)
    try:
        first = threading.Thread(target=add, args=(0,), daemon=True)
        first.start()
        assert flushing.wait(10), "the first pack was never flushed"
        finished, outcome = call_with_deadline(lambda: add(1), 5)
        assert finished, "a producer waited on another pack's flush"
        assert outcome is None
    finally:
        release.set()
    first.join(10)
    add(2)
    sink.close()
    packs = repo.dest.list("data")
    assert len(packs) == 3
    repo.sync_index()
    assert all(blob_id in repo.cache.known_ids() for blob_id in ids)
    repo.close()


def test_a_pack_that_cannot_be_flushed_fails_the_run_as_destination_full(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Repository.create(LocalDestination(tmp_path / "archive"), "pw", tmp_path / "cache")

    def full_disk(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer, "TARGET_SIZE", 1)
    monkeypatch.setattr(writer.os, "fsync", full_disk)
    sink = PackSink(repo, repo.cache.known_ids(), uploaders=1)
    data = b"d" * 1000
    blob_id = repo.keys.blob_id(data)
    sink.add(ObjectType.DATA, blob_id, seal(repo.keys, ObjectType.DATA, blob_id, data), len(data))
    with pytest.raises(DestinationFull, match="full"):
        sink.close()
    assert repo.dest.list("data") == {}
    assert list(repo.dest.staging_dir().iterdir()) == []  # the half-made pack is gone
    repo.close()
