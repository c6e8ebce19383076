"""Fixtures for the server tests: a real ``cairn-server serve`` process, tenants, databases.

``server`` is one server process for the whole session (SQLite + filesystem
store in a temporary data folder, on a free loopback port); tests keep out of
each other's way by creating their own MSP organization (``tenant``).
``start_server`` starts extra servers for tests that need their own (kill -9,
PostgreSQL + S3). ``metadata_db`` is a fresh, migrated database on SQLite and on
PostgreSQL.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from server.metadata.db import Database, migrate
from tests.server.helpers import ServerProcess, Tenant, make_tenant, start_server_process


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = start_server_process(tmp_path_factory.mktemp("cairn-server"))
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start extra servers (stopped at teardown): ``start_server(*extra_args, data=…)``."""
    started: list[ServerProcess] = []

    def start(*extra: str, data: Path | None = None, env: dict[str, str] | None = None
              ) -> ServerProcess:
        proc = start_server_process(data or tmp_path / f"data{len(started)}", *extra, env=env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def tenant(server: ServerProcess) -> Tenant:
    """A fresh MSP organization with a logged-in MSP admin, on the shared server."""
    return make_tenant(server)


@pytest.fixture(params=["sqlite", "postgresql"])
def blank_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh, empty database (no schema yet), on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'meta.sqlite3'}")
        yield db
        db.dispose()
        return
    with fresh_postgres_database(request.getfixturevalue("postgres_url")) as url:
        db = Database(url)
        yield db
        db.dispose()


@pytest.fixture
def metadata_db(blank_db: Database) -> Database:
    """A fresh database migrated to the newest schema, on SQLite and on PostgreSQL."""
    migrate(blank_db)
    return blank_db


class fresh_postgres_database:
    """Context manager: a new, empty database on the test cluster; dropped afterwards."""

    def __init__(self, base_url: str) -> None:
        self.base = make_url(base_url)
        self.name = "cairn_" + secrets.token_hex(6)

    def _admin(self) -> psycopg.Connection:
        url = self.base.set(drivername="postgresql", database="postgres")
        return psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)

    def __enter__(self) -> str:
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        return self.base.set(database=self.name).render_as_string(hide_password=False)

    def __exit__(self, *_exc: object) -> None:
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
