"""The single writer: takes sealed blobs from workers, packs them, stores packs, indexes them.

Workers call ``add`` concurrently; a lock keeps one open pack per blob type and
drops a blob another worker already added (two files with the same chunk).
Full packs go to a bounded queue drained by uploader threads, which finish the
pack (its header and the fsync, outside that lock, so no worker waits on a disk
flush), store it and only then record its blobs for the next index file. An
index checkpoint is written every ``checkpoint_s`` seconds, so a killed run
loses at most the packs in flight (and even those are adopted by the next run).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

from agent.archive.index_file import IndexContent, decode_records, encode_records
from agent.archive.known_ids import KnownIds
from agent.archive.repository import Repository
from agent.codec.envelope import ObjectType
from agent.pack.writer import FinishedPack, PackWriter

_STOP = object()


class PackSink:
    """Thread-safe blob → pack → destination writer for one backup run."""

    def __init__(self, repo: Repository, known: KnownIds, *, uploaders: int = 1,
                 checkpoint_s: float = 120.0, on_stored: Callable[[int], None] | None = None):
        self._repo, self._known = repo, known
        self._staging = repo.dest.staging_dir()
        self._lock = threading.Lock()
        self._added: set[bytes] = set()
        self._writers: dict[ObjectType, PackWriter] = {}
        self._queue: queue.Queue = queue.Queue(maxsize=max(2, uploaders))
        self._done: dict[str, bytes] = {}  # pack name → its index records
        self._done_lock = threading.Lock()
        self._checkpoint_s, self._last_checkpoint = checkpoint_s, time.monotonic()
        self._on_stored = on_stored or (lambda n: None)
        self._error: BaseException | None = None
        self.bytes_stored = 0
        self._threads = [threading.Thread(target=self._upload_loop, name=f"upload-{i}", daemon=True)
                         for i in range(uploaders)]
        for t in self._threads:
            t.start()

    @property
    def known_at_start(self) -> KnownIds:
        return self._known

    def known(self, blob_id: bytes) -> bool:
        """True if the archive has, or this run already added, the blob."""
        return blob_id in self._added or blob_id in self._known

    def add(self, kind: ObjectType, blob_id: bytes, sealed: bytes | bytearray | memoryview,
            raw_length: int) -> None:
        """Pack a sealed blob (copied or written before this returns: the caller may
        reuse its buffer)."""
        with self._lock:
            if blob_id in self._added:
                return
            self._added.add(blob_id)
            writer = self._writers.get(kind)
            if writer is None:
                writer = self._writers[kind] = PackWriter(self._repo.keys, self._staging)
            writer.add(kind, blob_id, sealed, raw_length)
            if not writer.full:
                return
            del self._writers[kind]  # no other thread can reach it now
        self._enqueue(writer)

    def _enqueue(self, writer: PackWriter) -> None:
        while True:
            self._raise_if_failed()
            try:
                self._queue.put(writer, timeout=0.5)
                return
            except queue.Full:
                continue

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _upload_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._error is not None:  # a pack failed: store no more (the run is ending)
                item.discard()
                continue
            try:
                pack = item.finish()
            except BaseException as exc:  # surfaced to workers and to close()
                self._error = exc
                continue
            try:
                self._store(pack)
            except BaseException as exc:
                self._error = exc
                pack.path.unlink(missing_ok=True)

    def _store(self, pack: FinishedPack) -> None:
        self._repo.dest.put_file("data", pack.name, pack.path)
        records = encode_records(pack.entries)  # held until the next index file: keep small
        with self._done_lock:
            self._done[pack.name] = records
            self.bytes_stored += pack.size
        self._on_stored(pack.size)
        if time.monotonic() - self._last_checkpoint > self._checkpoint_s:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Write an index file for every pack stored since the last one."""
        with self._done_lock:
            done, self._done = self._done, {}
            self._last_checkpoint = time.monotonic()
        if done:
            packs = {name: decode_records(records) for name, records in done.items()}
            self._repo.write_index(IndexContent(packs=packs))

    def close(self) -> None:
        """Flush open packs, wait for uploads and write the final index."""
        with self._lock:
            writers, self._writers = list(self._writers.values()), {}
        for writer in writers:
            self._enqueue(writer)
        for _ in self._threads:
            self._queue.put(_STOP)
        for t in self._threads:
            t.join()
        self._raise_if_failed()
        self.checkpoint()

    def abort(self) -> None:
        """Stop without finishing: discard open packs, keep what was stored."""
        with self._lock:
            writers, self._writers = list(self._writers.values()), {}
        for writer in writers:
            writer.discard()
        for _ in self._threads:
            try:
                self._queue.put(_STOP, timeout=5)
            except queue.Full:
                break
