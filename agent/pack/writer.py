"""Writes one pack at a time into a staging folder, hashing as it goes (per MiB, not per blob)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agent.codec.envelope import ObjectType
from agent.codec.keys import ArchiveKeys
from agent.errors import DestinationError, DestinationFull
from agent.pack.format import MAX_BLOBS, RECORD, TARGET_SIZE, PackEntry, entries_of, seal_header

FLUSH_AT = 1024 * 1024  # bytes of small blobs gathered before one hash update and write


@contextlib.contextmanager
def _staging_io(folder: Path) -> Iterator[None]:
    """Turn a failed write into the staging folder into the agent's errors (never OSError,
    which the backup would take for an unreadable source file)."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DestinationFull(f"The destination is full while writing a pack in {folder}.") \
                from exc
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
        self._pending = bytearray()  # small blobs not yet hashed and written
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

    def add(self, kind: ObjectType, blob_id: bytes, sealed: bytes, raw_length: int) -> None:
        self._records += RECORD.pack(kind, len(sealed), raw_length, blob_id)
        self.size += len(sealed)
        if len(sealed) >= FLUSH_AT:
            self._flush()
            self._write(sealed)
            return
        self._pending += sealed
        if len(self._pending) >= FLUSH_AT:
            self._flush()

    def finish(self) -> FinishedPack:
        """Write the header, fsync, and return the pack named by its SHA-256."""
        trailer = seal_header(self._keys, self._records)
        self._pending += trailer
        try:
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
        if self._pending:
            self._write(self._pending)
            self._pending = bytearray()

    def _write(self, data: bytes | bytearray) -> None:
        """Hash and write ``data``: one call each per MiB or so, not per blob (each call
        releases the GIL, and the backup's packing thread must win it back)."""
        self._hash.update(data)
        view = memoryview(data)
        with _staging_io(self._path.parent):
            while view:
                view = view[os.write(self._fd, view):]  # type: ignore[arg-type]

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
