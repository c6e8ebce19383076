"""The three archive key levels, moving up between them, and organization policies."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

from tests.agent.treespec import manifest, restored
from tests.e2e.helpers import ARCHIVE_PASSWORD, Agent, Org, db_row, make_org, user_name
from tests.server.helpers import ServerProcess

WITH_PASSWORD = {"CAIRN_ARCHIVE_PASSWORD": ARCHIVE_PASSWORD}


def _key_row(server: ServerProcess, username: str) -> tuple | None:
    """(level, escrow) of the user's archive, read from the server's database."""
    return db_row(server, "SELECT k.level, k.escrow FROM archive_keys k JOIN archives a ON "
                          "a.id = k.archive_id JOIN users u ON u.id = a.user_id WHERE "
                          "u.username = ? AND u.active", username)


def _objects(server: ServerProcess, username: str, kind: str) -> set[str]:
    """Names of the user's live objects of one kind, from the server's filesystem store."""
    row = db_row(server, "SELECT a.id FROM archives a JOIN users u ON u.id = a.user_id WHERE "
                         "u.username = ? AND u.active", username)
    assert row is not None
    folder = server.data / "storage" / "objects" / row[0] / kind
    return {p.name for p in folder.glob("*/*") if p.is_file()}


def _master(agent: Agent) -> bytes:
    return base64.b64decode((agent.home / "secrets" / "archive-key").read_text().strip())


def _restore_matches(agent: Agent, tree: Path, out: Path, env: dict | None = None) -> None:
    agent.json("restore", "latest", "--target", out, env=env)
    assert manifest(restored(out, tree)) == manifest(tree)


def _server_files_without(server: ServerProcess, secret: bytes) -> None:
    """No file the server keeps (database, logs, objects) holds the key, raw or base64."""
    needles = (secret, base64.b64encode(secret), secret.hex().encode())
    for path in [*server.data.rglob("*"), server.log]:
        if path.is_file() and "/data/" not in str(path.relative_to(server.data.parent)):
            content = path.read_bytes()
            assert not any(n in content for n in needles), f"the archive key is in {path}"


def test_standard_level_new_device_gets_the_key(org: Org, tree: Path, tmp_path: Path,
                                                computer: Callable[[], Agent]) -> None:
    user = user_name()
    first, fresh = computer(), computer()
    first.register(org, user)
    first.json("backup", tree)
    level, escrow = _key_row(org.server, user)
    assert level == "standard" and json.loads(escrow)["alg"] == "X25519-HKDF-SHA256-AES256GCM"
    fresh.register(org, user)  # signs in: the server re-seals the key to this device
    _restore_matches(fresh, tree, tmp_path / "out")
    assert _master(fresh) == _master(first)
    _server_files_without(org.server, _master(first))


def test_password_level_asks_new_devices_for_the_password(org: Org, tree: Path, tmp_path: Path,
                                                          computer: Callable[[], Agent]) -> None:
    user = user_name()
    first, fresh = computer(), computer()
    first.register(org, user, "--key-level", "password", env=WITH_PASSWORD)
    first.json("backup", tree)
    assert _key_row(org.server, user) == ("password", None)
    assert len(_objects(org.server, user, "keys")) == 1  # the password-wrapped key file

    registered = fresh.register(org, user)
    assert "asks for it" in registered.err
    assert "CAIRN_ARCHIVE_PASSWORD" in fresh.run("snapshots", expect=18).err
    fresh.run("snapshots", expect=5, env={"CAIRN_ARCHIVE_PASSWORD": "not the password"})
    _restore_matches(fresh, tree, tmp_path / "out", env=WITH_PASSWORD)
    fresh.json("snapshots")  # the key is kept on the device now: no password needed
    _server_files_without(org.server, _master(first))


def test_custom_level_key_moves_only_by_export_and_import(org: Org, tree: Path, tmp_path: Path,
                                                          computer: Callable[[], Agent]) -> None:
    user = user_name()
    first, fresh, stranger = computer(), computer(), computer()
    first.register(org, user, "--key-level", "custom")
    first.json("backup", tree)
    assert _key_row(org.server, user) == ("custom", None)
    assert not _objects(org.server, user, "keys")  # nothing key-related left the device
    first.run("passphrase", expect=2, env={"CAIRN_NEW_PASSPHRASE": "x" * 12})
    assert not _objects(org.server, user, "keys")  # not even through `cairn passphrase`

    assert "cairn key import" in fresh.register(org, user).err
    fresh.run("restore", "latest", "--target", tmp_path / "nope", expect=18)
    stranger.register(org, user_name(), "--key-level", "custom")
    stranger.run("key", "export", tmp_path / "other.key")
    fresh.run("key", "import", tmp_path / "other.key", expect=5)  # another archive's key

    first.run("key", "export", tmp_path / "archive.key")
    first.run("key", "export", tmp_path / "archive.key", expect=2)  # never overwrites
    fresh.run("key", "import", tmp_path / "archive.key")
    _restore_matches(fresh, tree, tmp_path / "out")
    _server_files_without(org.server, _master(first))


def test_levels_move_up_only_and_reupload_nothing(org: Org, tree: Path, tmp_path: Path,
                                                  computer: Callable[[], Agent]) -> None:
    user = user_name()
    first = computer()
    first.register(org, user)
    first.json("backup", tree)
    packs = _objects(org.server, user, "data")

    first.run("key", "set-level", "password", env=WITH_PASSWORD)
    assert _key_row(org.server, user) == ("password", None)  # the escrow is gone
    second = computer()
    second.register(org, user, "--key-level", "standard", expect=19)  # never back down
    _restore_matches(second, tree, tmp_path / "out-2", env=WITH_PASSWORD)

    first.run("key", "set-level", "custom")
    assert _key_row(org.server, user) == ("custom", None)
    assert not _objects(org.server, user, "keys")  # the password key file went to the trash
    third = computer()
    third.register(org, user)
    third.run("snapshots", expect=18)
    assert first.json("key", "status")["level"] == "custom"
    assert _objects(org.server, user, "data") == packs
    assert first.json("check")["ok"]


def test_org_policy_requires_a_stronger_level(server: ServerProcess, tree: Path,
                                              computer: Callable[[], Agent]) -> None:
    org = make_org(server)
    early_user = user_name()
    early = computer()
    early.register(org, early_user)  # standard, before the policy
    early.json("backup", tree)
    org.cli("key-policy", "set", org.id, "password")

    refused = computer().register(org, user_name(), "--key-level", "standard", expect=19)
    assert "requires the password key level" in refused.err
    newcomer = computer()
    newcomer.register(org, user_name(), env=WITH_PASSWORD)
    assert newcomer.json("key", "status")["level"] == "password"

    warned = early.run("snapshots")
    assert "key set-level password" in warned.err
    late = computer()
    late.register(org, early_user)  # the server no longer hands out the escrowed key
    late.run("snapshots", expect=19)
    early.run("key", "set-level", "password", env=WITH_PASSWORD)
    late.run("snapshots", env=WITH_PASSWORD)
