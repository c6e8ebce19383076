"""The local index cache: SQLite under the agent home, rebuilt from the destination.

It mirrors the archive's index files (which are the truth): which blob lives in
which pack, where. It is only a cache: delete it and the next run rebuilds it.
If an index file it has seen disappears from the destination (compaction), it
is dropped and rebuilt from scratch.

Two tables outlive ``clear``: ``superseded`` (index files some index file
replaces; permanent facts, see ``Repository.sync_index``) and ``pack_seen`` (when
this computer first saw each pack: prune's grace period, measured on one clock).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from agent.archive.cache_db import open_cache, write_transaction
from agent.archive.known_ids import KnownIds
from agent.codec.envelope import ObjectType
from agent.pack.format import PackEntry

SCHEMA = """
CREATE TABLE IF NOT EXISTS index_files (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS packs (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (
    id BLOB PRIMARY KEY, pack INTEGER NOT NULL, type INTEGER NOT NULL,
    offset INTEGER NOT NULL, length INTEGER NOT NULL, raw_length INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS superseded (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS pack_seen (name TEXT PRIMARY KEY, first_seen REAL NOT NULL);
"""

_LOOKUP_BATCH = 500  # IDs per query: under SQLite's oldest limit of 999 parameters


@dataclass(frozen=True, slots=True)
class BlobLocation:
    pack: str
    type: ObjectType
    offset: int
    length: int
    raw_length: int


class IndexCache:
    """Blob locations by ID, persisted in SQLite; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = self._path = path
        self._db = open_cache(path, SCHEMA, "PRAGMA journal_mode=WAL",
                              "PRAGMA synchronous=NORMAL")
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def index_files(self) -> set[str]:
        with self._lock:
            return {row[0] for row in self._db.execute("SELECT name FROM index_files")}

    def pack_names(self) -> set[str]:
        with self._lock:
            return {row[0] for row in self._db.execute("SELECT name FROM packs")}

    def clear(self) -> None:
        with self._lock, write_transaction(self._db, self._path):
            for table in ("blobs", "packs", "index_files"):
                self._db.execute(f"DELETE FROM {table}")

    def superseded(self) -> set[str]:
        """Index files that an index file this cache has read replaces."""
        with self._lock:
            return {row[0] for row in self._db.execute("SELECT name FROM superseded")}

    def packs_seen_since(self, since: float) -> set[str]:
        """Packs this computer first saw at or after ``since`` (Unix time)."""
        with self._lock:
            rows = self._db.execute("SELECT name FROM pack_seen WHERE first_seen >= ?", (since,))
            return {row[0] for row in rows}

    def add(self, index_name: str | None, packs: dict[str, list[PackEntry]],
            superseded: Iterable[str] = ()) -> None:
        """Record packs (from one index file, or found unindexed) in one transaction."""
        now = time.time()
        with self._lock, write_transaction(self._db, self._path):
            db = self._db
            db.executemany("INSERT OR IGNORE INTO superseded VALUES (?)",
                           [(name,) for name in superseded])
            for pack, entries in packs.items():
                db.execute("INSERT OR IGNORE INTO pack_seen VALUES (?, ?)", (pack, now))
                db.execute("INSERT OR IGNORE INTO packs(name) VALUES (?)", (pack,))
                (pack_id,) = db.execute("SELECT id FROM packs WHERE name=?", (pack,)).fetchone()
                db.executemany(
                    "INSERT OR IGNORE INTO blobs VALUES (?,?,?,?,?,?)",
                    [(e.id, pack_id, e.type, e.offset, e.length, e.raw_length)
                     for e in entries],
                )
            if index_name:
                db.execute("INSERT OR IGNORE INTO index_files VALUES (?)", (index_name,))

    def lookup(self, blob_id: bytes) -> BlobLocation | None:
        with self._lock:
            row = self._db.execute(
                "SELECT p.name, b.type, b.offset, b.length, b.raw_length FROM blobs b "
                "JOIN packs p ON p.id = b.pack WHERE b.id = ?",
                (blob_id,),
            ).fetchone()
        return None if row is None else BlobLocation(row[0], ObjectType(row[1]), *row[2:])

    def lookup_many(self, ids: Iterable[bytes]) -> dict[bytes, BlobLocation]:
        """Locations of those of ``ids`` that are indexed, looked up in batches."""
        ids = list(ids)
        found: dict[bytes, BlobLocation] = {}
        pack_names: dict[str, str] = {}  # one str per pack, however many blobs it holds
        with self._lock:
            for start in range(0, len(ids), _LOOKUP_BATCH):
                batch = ids[start : start + _LOOKUP_BATCH]
                rows = self._db.execute(
                    "SELECT b.id, p.name, b.type, b.offset, b.length, b.raw_length FROM blobs b "
                    f"JOIN packs p ON p.id = b.pack WHERE b.id IN ({','.join('?' * len(batch))})",
                    batch,
                )
                for r in rows:
                    pack = pack_names.setdefault(r[1], r[1])
                    found[r[0]] = BlobLocation(pack, ObjectType(r[2]), *r[3:])
        return found

    def known_ids(self) -> KnownIds:
        """A compact read-only snapshot of every indexed blob ID."""
        with self._lock:
            rows = self._db.execute("SELECT id FROM blobs ORDER BY id").fetchall()
        return KnownIds(b"".join(r[0] for r in rows))

    def blobs_of_pack(self, pack: str) -> list[tuple[bytes, BlobLocation]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT b.id, b.type, b.offset, b.length, b.raw_length FROM blobs b "
                "JOIN packs p ON p.id = b.pack WHERE p.name = ? ORDER BY b.offset",
                (pack,),
            ).fetchall()
        return [(r[0], BlobLocation(pack, ObjectType(r[1]), *r[2:])) for r in rows]

    def each_blob(self, visit: Callable[[bytes, BlobLocation], None]) -> None:
        with self._lock:
            rows = self._db.execute(
                "SELECT b.id, p.name, b.type, b.offset, b.length, b.raw_length FROM blobs b "
                "JOIN packs p ON p.id = b.pack"
            ).fetchall()
        for r in rows:
            visit(r[0], BlobLocation(r[1], ObjectType(r[2]), *r[3:]))
