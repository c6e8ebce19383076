"""Writes one pack at a time into a staging folder, hashing as it goes."""

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
from agent.pack.format import MAX_BLOBS, TARGET_SIZE, PackEntry, encode_header


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
        self._file = os.fdopen(fd, "wb", buffering=1024 * 1024)
        self._hash = hashlib.sha256()
        self._entries: list[PackEntry] = []
        self.size = 0

    @property
    def full(self) -> bool:
        return self.size >= TARGET_SIZE or len(self._entries) >= MAX_BLOBS

    @property
    def empty(self) -> bool:
        return not self._entries

    def add(self, kind: ObjectType, blob_id: bytes, sealed: bytes, raw_length: int) -> None:
        with _staging_io(self._path.parent):
            self._file.write(sealed)
        self._entries.append(PackEntry(kind, blob_id, self.size, len(sealed), raw_length))
        self._hash.update(sealed)
        self.size += len(sealed)

    def finish(self) -> FinishedPack:
        """Write the header, fsync, and return the pack named by its SHA-256."""
        trailer = encode_header(self._keys, self._entries)
        try:
            with _staging_io(self._path.parent):
                self._file.write(trailer)
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
        except DestinationError:
            self.discard()
            raise
        self._hash.update(trailer)
        return FinishedPack(
            self._hash.hexdigest(), self._path, self.size + len(trailer), self._entries
        )

    def discard(self) -> None:
        with contextlib.suppress(OSError):  # closing flushes, which fails on a full disk
            self._file.close()
        self._path.unlink(missing_ok=True)
