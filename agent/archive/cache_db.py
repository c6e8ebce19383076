"""The agent home's SQLite caches (index, folders): opening them and writing to them.

A cache that cannot be written (its disk is full, or failing) is a sentence
naming the file, ``CacheNotWritable``, never a traceback; a failed write leaves
the cache as it was. Callers then go on with a cache in memory (``IN_MEMORY``):
everything in the caches can be read again from the archive.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.errors import CacheNotWritable

IN_MEMORY = Path(":memory:")  # the fallback when the agent home cannot take a cache


def not_writable(path: Path, exc: sqlite3.Error) -> CacheNotWritable:
    return CacheNotWritable(f"The local cache {path} could not be written ({exc}): free space "
                            "in the agent's folder, or set CAIRN_HOME to a folder with room.")


def open_cache(path: Path, schema: str, *pragmas: str) -> sqlite3.Connection:
    """Connect to (or create) a cache database in autocommit mode, with ``schema``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        for pragma in pragmas:
            db.execute(pragma)
        db.executescript(schema)
    except sqlite3.OperationalError as exc:
        raise not_writable(path, exc) from exc
    except OSError as exc:
        raise CacheNotWritable(f"The local cache folder {path.parent} could not be created "
                               f"({exc.strerror or exc}).") from exc
    return db


@contextmanager
def write_transaction(db: sqlite3.Connection, path: Path) -> Iterator[None]:
    """One transaction; rolled back (if SQLite has not already) when anything fails."""
    db.execute("BEGIN")
    try:
        yield
        db.execute("COMMIT")
    except sqlite3.OperationalError as exc:  # "database or disk is full", I/O errors
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise not_writable(path, exc) from exc
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
