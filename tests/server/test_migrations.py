"""Schema migrations: an existing database upgrades without losing anything."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from server.domain import devices
from server.metadata.db import Database, current_revision, head_revision, migrate
from server.metadata.models import Base
from server.security import new_device_token, registration_key_hash, token_hash
from tests.server.helpers import run_cli

T0 = datetime(2025, 1, 5, 9, 30, tzinfo=UTC).replace(tzinfo=None)


def fill_revision_0001(db: Database, device_token: str) -> None:
    """Rows as a 0001-era server wrote them (raw SQL: no models of that era exist)."""
    rows = [
        ("INSERT INTO orgs (id, name, parent_id, license_cap, reg_key_hash, reg_key_hint, "
         "reg_key_created_at, created_at) VALUES ('a' || :pad, 'Old MSP', NULL, 7, :key, 'OLDK', "
         ":t, :t)", {"key": registration_key_hash("OLDK-KEY")}),
        ("INSERT INTO users (id, org_id, username, password_hash, role, active, licensed, "
         "created_at) VALUES ('b' || :pad, 'a' || :pad, 'old@example.test', 'x', 'user', "
         ":yes, :yes, :t)", {}),
        ("INSERT INTO archives (id, user_id, bytes_stored, first_data_at, delete_pending, "
         "created_at) VALUES ('c' || :pad, 'b' || :pad, 1234, :t, :no, :t)", {}),
        ("INSERT INTO devices (id, user_id, guid, name, os, agent_version, token_hash, active, "
         "first_seen, last_seen, bytes_stored) VALUES ('d' || :pad, 'b' || :pad, 'old-guid', "
         "'old-pc', 'Windows 10', '0.9.0', :token, :yes, :t, :t, 1234)",
         {"token": token_hash(device_token)}),
        ("INSERT INTO audit_events (at, actor, org_id, action, target, outcome, detail) "
         "VALUES (:t, 'operator:old', 'a' || :pad, 'org.create', NULL, 'ok', '{}')", {}),
        ("INSERT INTO settings (key, value) VALUES ('min-agent-version', '0.5.0')", {}),
    ]
    with db.engine.begin() as conn:
        for sql, extra in rows:
            conn.execute(text(sql), {"pad": "0" * 31, "t": T0, "yes": True, "no": False,
                                     **extra})


def test_existing_database_upgrades_without_loss(blank_db: Database, tmp_path: Path) -> None:
    migrate(blank_db, "0001")
    assert current_revision(blank_db) == "0001"
    token = new_device_token()
    fill_revision_0001(blank_db, token)
    # the CLI (like serve) upgrades the schema when it opens the database
    listed = run_cli("org", "list", "--json", "--db", blank_db.url, "--data", str(tmp_path))
    assert listed.code == 0, listed.err
    assert current_revision(blank_db) == head_revision() != "0001"
    [org] = listed.json()
    assert (org["name"], org["license_cap"], org["storage_quota_bytes"]) == ("Old MSP", 7, None)
    assert (org["users_active"], org["licenses_held"], org["bytes_stored"]) == (1, 1, 1234)
    with blank_db.read() as session:
        auth = devices.authenticate(session, token)
        assert (auth.device.guid, auth.device.name, auth.user.username) == (
            "old-guid", "old-pc", "old@example.test")
        assert auth.archive.first_data_at == T0.replace(tzinfo=UTC)
    shown = run_cli("settings", "show", "--json", "--db", blank_db.url, "--data", str(tmp_path))
    assert shown.json()["min-agent-version"] == "0.5.0"
    assert "trashed_objects" in inspect(blank_db.engine).get_table_names()


def test_models_match_the_migrated_schema(metadata_db: Database) -> None:
    with metadata_db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    migrate(metadata_db)  # running again is a no-op
    assert current_revision(metadata_db) == head_revision()
