"""The folder cache: folder path → (fingerprint of its listing, tree ID).

It also memoizes (files, bytes, folders) below a tree ID, so a folder reused
through the change journal is counted without loading its trees.

A local cache (``CAIRN_HOME/cache/<archive>/dirs.sqlite``) that lets a backup
take a whole unchanged folder's tree without loading it: if a folder's listing
has the same fingerprint as when its tree was built, and every subfolder is
unchanged too, its tree ID is reused. Entries are written only after a snapshot
is saved, and never for folders where something could not be read. Losing the
file only makes the next backup load trees from the archive instead.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

from agent.archive.cache_db import open_cache, write_transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS dirs (path BLOB PRIMARY KEY, fp BLOB, tree TEXT);
CREATE TABLE IF NOT EXISTS totals (tree TEXT PRIMARY KEY, files INTEGER, bytes INTEGER,
                                   dirs INTEGER);
"""
# A recorded entry while it waits for ``commit``: path length, fingerprint length, then
# the tree ID (32 bytes), the fingerprint and the path. ~150 bytes a folder, against
# ~340 as a tuple of objects, held for every folder of a first backup.
_PENDING = struct.Struct("<IB32s")


class DirCache:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._db = open_cache(path, SCHEMA, "PRAGMA journal_mode=WAL")
        self._pending = bytearray()
        self._loaded: dict[bytes, tuple[bytes, str]] = {}
        self._new_totals: dict[str, tuple[int, int, int]] = {}

    def load(self, roots: list[str]) -> None:
        """Read the entries below ``roots`` into memory (one range query per root)."""
        for root in roots:
            low = _key(root)
            high = low + b"\xff"
            for path, fp, tree in self._db.execute(
                    "SELECT path, fp, tree FROM dirs WHERE path >= ? AND path < ?", (low, high)):
                self._loaded[path] = (fp, tree)

    def get(self, folder: str) -> tuple[bytes, str] | None:
        return self._loaded.get(_key(folder))

    def record(self, folder: str, fp: bytes, tree: str) -> None:
        path, tree_id = _key(folder), bytes.fromhex(tree)
        if len(tree_id) != 32 or len(fp) > 255:
            raise ValueError(f"not a tree ID and fingerprint: {tree!r}, {fp!r}")
        self._pending += _PENDING.pack(len(path), len(fp), tree_id) + fp + path

    def totals(self, tree: str) -> tuple[int, int, int] | None:
        """(files, bytes, folders) below a tree ID, if known; tree IDs never change meaning."""
        if tree in self._new_totals:
            return self._new_totals[tree]
        row = self._db.execute("SELECT files, bytes, dirs FROM totals WHERE tree = ?",
                               (tree,)).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def record_totals(self, tree: str, totals: tuple[int, int, int]) -> None:
        self._new_totals[tree] = totals

    def commit(self) -> None:
        """Store what this run recorded (call after its snapshot is saved)."""
        db = self._db
        with write_transaction(db, self._path):  # one (the connection is in autocommit mode)
            db.executemany("INSERT OR REPLACE INTO dirs VALUES (?,?,?)", self._pending_rows())
            db.executemany("INSERT OR REPLACE INTO totals VALUES (?,?,?,?)",
                           [(t, *v) for t, v in self._new_totals.items()])
        self._pending, self._new_totals = bytearray(), {}

    def _pending_rows(self) -> Iterator[tuple[bytes, bytes, str]]:
        with memoryview(self._pending) as pending:
            pos = 0
            while pos < len(pending):
                path_length, fp_length, tree = _PENDING.unpack_from(pending, pos)
                pos += _PENDING.size
                fp = bytes(pending[pos : pos + fp_length])
                path = bytes(pending[pos + fp_length : pos + fp_length + path_length])
                pos += fp_length + path_length
                yield path, fp, tree.hex()

    def close(self) -> None:
        self._db.close()


def _key(folder: str) -> bytes:
    return os.fsencode(folder)
