"""Database access: engine, read/write transactions, and schema migration.

Write transactions are serialized where the rules need it:

- SQLite: every write transaction starts with ``BEGIN IMMEDIATE``, so writers
  (including other processes such as the admin CLI) queue one at a time; reads
  use a deferred ``BEGIN`` and, in WAL mode, never block.
- PostgreSQL: writers that check a limit lock the rows they count from with
  ``SELECT … FOR UPDATE`` (see ``domain``); plain READ COMMITTED otherwise.

``migrate`` upgrades the schema with the Alembic scripts shipped in this
package, under a lock (an advisory lock on PostgreSQL, the write lock on
SQLite) so several server processes can start at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session

from server.errors import BadRequest, ServiceUnavailable

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_PG_MIGRATION_LOCK = 0x6361_6972_6E00  # "cairn\0": advisory lock id for migrations


def normalize_db_url(url: str) -> str:
    """Accept ``postgresql://``/``postgres://`` (psycopg driver) and ``sqlite:///``."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    if url.startswith("sqlite:///"):
        return url
    raise BadRequest(f"Unsupported database URL {redact(url)!r}: use postgresql://… or "
                     "sqlite:///PATH.")


def redact(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable URL>"


def _sqlite_listeners(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("cairn_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class Database:
    """One database: read and write transactions as context managers."""

    def __init__(self, url: str) -> None:
        self.url = normalize_db_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            engine = create_engine(self.url, connect_args={"timeout": 60,
                                                           "check_same_thread": False})
            _sqlite_listeners(engine)
        else:
            engine = create_engine(self.url, pool_size=10, max_overflow=30, pool_pre_ping=True)
        self.engine = engine
        self._write_engine = engine.execution_options(cairn_write=True)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A transaction for reading (committed on exit; nothing should be written)."""
        with self._session(self.engine) as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction: committed on success, rolled back on any error."""
        with self._session(self._write_engine) as session:
            yield session

    @contextmanager
    def _session(self, engine: Engine) -> Iterator[Session]:
        try:
            with Session(engine, expire_on_commit=False) as session, session.begin():
                yield session
        except OperationalError as exc:
            raise ServiceUnavailable(
                "The metadata database is not reachable or is locked; try again shortly."
            ) from exc

    def dispose(self) -> None:
        self.engine.dispose()


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def migrate(db: Database, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` (default: the newest), under a lock."""
    with db._write_engine.begin() as conn:
        if not db.is_sqlite:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        command.upgrade(_alembic_config(conn), revision)


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    script = ScriptDirectory(str(MIGRATIONS))
    head = script.get_current_head()
    if head is None:
        raise RuntimeError(f"No migration scripts found in {MIGRATIONS}.")
    return head
