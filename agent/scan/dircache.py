"""The folder cache: folder path → (fingerprint of its listing, tree ID).

A local cache (``CAIRN_HOME/cache/<archive>/dirs.sqlite``) that lets a backup
take a whole unchanged folder's tree without loading it: if a folder's listing
has the same fingerprint as when its tree was built, and every subfolder is
unchanged too, its tree ID is reused. Entries are written only after a snapshot
is saved, and never for folders where something could not be read. Losing the
file only makes the next backup load trees from the archive instead.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

SCHEMA = "CREATE TABLE IF NOT EXISTS dirs (path BLOB PRIMARY KEY, fp BLOB, tree TEXT)"


class DirCache:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(SCHEMA)
        self._pending: list[tuple[bytes, bytes, str]] = []
        self._loaded: dict[bytes, tuple[bytes, str]] = {}

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
        self._pending.append((_key(folder), fp, tree))

    def commit(self) -> None:
        """Store what this run recorded (call after its snapshot is saved)."""
        if self._pending:
            with self._db:
                self._db.executemany("INSERT OR REPLACE INTO dirs VALUES (?,?,?)", self._pending)
            self._pending = []

    def close(self) -> None:
        self._db.close()


def _key(folder: str) -> bytes:
    return os.fsencode(folder)
