"""Writes one pack at a time into a staging folder, hashing as it goes (per ``FLUSH_AT``
bytes, not per blob)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agent.codec.envelope import ObjectType
from agent.codec.keys import ArchiveKeys
from agent.errors import DestinationError, DestinationFull
from agent.pack.format import MAX_BLOBS, RECORD, TARGET_SIZE, PackEntry, entries_of, seal_header

FLUSH_AT = 512 * 1024  # bytes of small blobs gathered before one hash update and write
SPARE_BUFFERS = 1  # gathering buffers kept for the next packs (see ``_Spares``)


class _Spares:
    """Gathering buffers handed from finished packs to new ones.

    A backup writes a pack every 16 MiB; a fresh buffer for each would fault
    its pages in again (as would one grown by appending), and a page fault
    costs a VM about as much as encrypting the page.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: list[bytearray] = []

    def take(self) -> bytearray:
        with self._lock:
            if self._free:
                return self._free.pop()
        return bytearray(FLUSH_AT)

    def give(self, buffer: bytearray) -> None:
        with self._lock:
            if len(self._free) < SPARE_BUFFERS:
                self._free.append(buffer)


_spares = _Spares()


@contextlib.contextmanager
def _staging_io(folder: Path) -> Iterator[None]:
    """Turn a failed write into the staging folder into the agent's errors (never OSError,
    which the backup would take for an unreadable source file)."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DestinationFull(f"The disk holding {folder} is full (no room for the next "
                                  "pack).") from exc
        raise DestinationError(f"Could not write a pack in {folder}: {exc.strerror or exc}.") \
            from exc


@dataclass(frozen=True)
class FinishedPack:
    """A complete pack on local disk, ready to be stored under ``name``."""

    name: str
    path: Path
    size: int
    entries: list[PackEntry]


class PackWriter:
    """Appends sealed blobs to a temp file; ``finish`` adds the header. Not thread-safe."""

    def __init__(self, keys: ArchiveKeys, staging: Path) -> None:
        self._keys = keys
        with _staging_io(staging):
            fd, name = tempfile.mkstemp(prefix="pack-", suffix=".tmp", dir=staging)
        self._path = Path(name)
        self._fd: int | None = fd
        self._gather: memoryview | None = None  # small blobs not yet hashed and written
        self._gathered = 0
        self._hash = hashlib.sha256()
        # The header's records so far, 41 bytes per blob (a PackEntry object costs ~200,
        # and the tree pack of a backup stays open for the whole run).
        self._records = bytearray()
        self.size = 0

    @property
    def full(self) -> bool:
        return self.size >= TARGET_SIZE or len(self._records) >= MAX_BLOBS * RECORD.size

    @property
    def empty(self) -> bool:
        return not self._records

    def add(self, kind: ObjectType, blob_id: bytes, sealed: bytes | bytearray | memoryview,
            raw_length: int) -> None:
        self._records += RECORD.pack(kind, len(sealed), raw_length, blob_id)
        self.size += len(sealed)
        self._gather_or_write(sealed)

    def _gather_or_write(self, data: bytes | bytearray | memoryview) -> None:
        if self._gathered + len(data) > FLUSH_AT:
            self._flush()
        if len(data) >= FLUSH_AT:
            self._write(data)
            return
        if self._gather is None:
            self._gather = memoryview(_spares.take())
        # Through a memoryview: a bytearray's own slice assignment copies ``data`` into a
        # temporary bytearray first.
        self._gather[self._gathered:self._gathered + len(data)] = data
        self._gathered += len(data)

    def finish(self) -> FinishedPack:
        """Write the header, fsync, and return the pack named by its SHA-256."""
        trailer = seal_header(self._keys, self._records)
        try:
            self._gather_or_write(trailer)
            self._flush()
            with _staging_io(self._path.parent):
                os.fsync(self._fd)  # type: ignore[arg-type]
            self._close()
        except DestinationError:
            self.discard()
            raise
        return FinishedPack(self._hash.hexdigest(), self._path, self.size + len(trailer),
                            entries_of(self._records))

    def discard(self) -> None:
        self._close()
        self._path.unlink(missing_ok=True)

    def _flush(self) -> None:
        if self._gathered:
            self._write(self._gather[:self._gathered])  # type: ignore[index]
            self._gathered = 0

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        """Hash and write ``data``: one call each per ``FLUSH_AT`` bytes or so, not per
        blob (each call releases the GIL, and the backup's packing thread must win it
        back)."""
        self._hash.update(data)
        view = memoryview(data)
        with _staging_io(self._path.parent):
            while view:
                view = view[os.write(self._fd, view):]  # type: ignore[arg-type]

    def _close(self) -> None:
        if self._gather is not None:
            buffer = self._gather.obj
            self._gather.release()
            _spares.give(buffer)  # type: ignore[arg-type]
            self._gather, self._gathered = None, 0
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
