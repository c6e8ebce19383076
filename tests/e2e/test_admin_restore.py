"""Admin restore: an organization admin restores a user's snapshot at the standard key level.

A real ``cairn-server`` and the real ``cairn`` CLI: the user backs up, their
org admin restores byte-identical on a computer of their own; admins of other
organizations and plain users get exactly the answer of a missing user; a
user at the password level is refused with a clear sentence; every access is
in the audit log; nothing is written to the user's archive.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.agent.treespec import File, build, manifest, restored
from tests.e2e.conftest import edge_tree
from tests.e2e.helpers import (
    ARCHIVE_PASSWORD,
    PASSWORD,
    Agent,
    Org,
    db_row,
    make_org,
    user_name,
)
from tests.server.helpers import ServerProcess, login

ADMIN_ENV = {"CAIRN_ADMIN_PASSWORD": PASSWORD}
PUBLIC_KEY = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


@dataclass
class World:
    server: ServerProcess
    org: Org
    user: str
    user_id: str
    tree: Path
    admin: str
    home: Path


def _admin(org: Org, role: str = "org_admin") -> str:
    name = f"admin-{secrets.token_hex(4)}@example.test"
    made = org.server.cli("admin", "create", name, "--org", org.id, "--role", role,
                          "--password-stdin", stdin=PASSWORD + "\n")
    assert made.code == 0, made.err
    return name


def _user_id(server: ServerProcess, username: str) -> str:
    row = db_row(server, "SELECT id FROM users WHERE username = ? AND active", username)
    assert row is not None
    return str(row[0])


def _stored(server: ServerProcess, user_id: str) -> set[str]:
    """Every object file of the user's archive in the server's filesystem store."""
    row = db_row(server, "SELECT id FROM archives WHERE user_id = ?", user_id)
    assert row is not None
    folder = server.data / "storage" / "objects" / row[0]
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def world(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> World:
    home = tmp_path_factory.mktemp("admin-restore")
    org = make_org(server)
    user = user_name()
    tree = build(home / "documents", edge_tree())
    laptop = Agent(home / "laptop")
    laptop.register(org, user)  # the standard level is the default
    laptop.json("backup", tree)
    return World(server, org, user, _user_id(server, user), tree, _admin(org), home)


def _admin_restore(w: World, admin: str, user: str, *args: str | Path,
                   expect: int | None = 0) -> Any:
    agent = Agent(w.home / f"admin-pc-{secrets.token_hex(3)}")
    return agent.run("admin-restore", "--server", w.server.url, "--admin", admin,
                     "--user", user, *args, expect=expect, env=ADMIN_ENV)


def _answers(w: World, headers: dict[str, str], user_id: str) -> list[tuple[int, Any]]:
    """Status and body of each admin-restore route for ``user_id``."""
    name = sorted(_stored(w.server, w.user_id))[0].split("/")[-1]
    base = f"/api/v1/users/{user_id}/archive"
    responses = [w.server.http.get(f"{base}/objects/data", headers=headers),
                 w.server.http.get(f"{base}/objects/data/{name}", headers=headers),
                 w.server.http.post(f"{base}/key", headers=headers,
                                    json={"public_key": PUBLIC_KEY})]
    return [(r.status_code, r.json() if r.content else None) for r in responses]


def test_org_admin_restores_byte_identical_and_is_audited(world: World) -> None:
    before = _stored(world.server, world.user_id)
    listed = _admin_restore(world, world.admin, world.user, "--snapshots", "--json").json()
    assert len(listed) == 1 and listed[0]["paths"] == [str(world.tree)]
    out = world.home / "restored-by-admin"
    done = _admin_restore(world, world.admin, world.user, listed[0]["short_id"], "--target",
                          out, "--json").json()
    assert done["errors"] == [] and done["snapshot_id"] == listed[0]["id"]
    assert manifest(restored(out, world.tree)) == manifest(world.tree)
    assert _stored(world.server, world.user_id) == before  # read-only: not even a lock
    audit = world.org.cli("audit", "list", "--org", world.org.id, "--limit",
                               "100000", "--json").json()
    mine = [e for e in audit if e["actor"] == f"org_admin:{world.admin}"
            and e["target"] == f"user:{world.user_id}"]
    actions = {e["action"] for e in mine}
    assert {"archive.admin_key_release", "archive.admin_list", "archive.admin_read"} <= actions
    assert sum(e["action"] == "archive.admin_key_release" for e in mine) == 2


def test_include_restores_only_the_named_path(world: World) -> None:
    out = world.home / "only-hello"
    _admin_restore(world, world.admin, world.user, "latest", "--target", out,
                   "--include", f"{world.tree}/hello.txt")
    files = [p for p in out.rglob("*") if p.is_file()]
    assert [p.name for p in files] == ["hello.txt"]
    assert files[0].read_bytes() == b"hello\n"


def test_msp_admin_above_the_org_may_restore(world: World, server: ServerProcess) -> None:
    msp = make_org(server)
    customer = server.cli("org", "create", f"Customer {secrets.token_hex(3)}", "--parent",
                          msp.id, "--json")
    assert customer.code == 0, customer.err
    doc = customer.json()
    cust = Org(server, doc["id"], doc["name"], doc["registration_key"])
    user = user_name()
    laptop = Agent(world.home / f"laptop-{secrets.token_hex(3)}")
    laptop.register(cust, user)
    small = build(world.home / f"small-{secrets.token_hex(3)}", {"a.txt": File(b"a" * 5000)})
    laptop.json("backup", small)
    out = world.home / f"msp-out-{secrets.token_hex(3)}"
    _admin_restore(world, _admin(msp, "msp_admin"), user, "latest", "--target", out)
    assert manifest(restored(out, small)) == manifest(small)


def test_other_org_admin_and_plain_user_look_like_a_missing_user(world: World) -> None:
    other = make_org(world.server)
    for role in ("msp_admin", "org_admin"):
        intruder = _admin(other, role)
        headers = login(world.server, intruder)
        assert _answers(world, headers, world.user_id) == \
            _answers(world, headers, secrets.token_hex(16))
        assert _answers(world, headers, world.user_id)[0][0] == 404
        by_name = _admin_restore(world, intruder, world.user, "latest", "--target",
                                 world.home / "nope", expect=7)
        assert "No user" in by_name.err
        by_id = _admin_restore(world, intruder, world.user_id, "latest", "--target",
                               world.home / "nope", expect=7)
        unknown = secrets.token_hex(16)
        missing = _admin_restore(world, intruder, unknown, "latest", "--target",
                                 world.home / "nope", expect=7)
        assert by_id.err.replace(world.user_id, "ID") == missing.err.replace(unknown, "ID")
    # the user themselves, and a plain user of the same organization: not admins
    colleague = user_name()
    Agent(world.home / f"colleague-{secrets.token_hex(3)}").register(world.org, colleague)
    for plain in (world.user, colleague):
        headers = login(world.server, plain)
        assert _answers(world, headers, world.user_id) == \
            _answers(world, headers, secrets.token_hex(16))
        assert _answers(world, headers, world.user_id)[0][0] == 404
    assert not (world.home / "nope").exists()


def test_password_level_is_refused_clearly(world: World) -> None:
    user = user_name()
    laptop = Agent(world.home / f"pw-laptop-{secrets.token_hex(3)}")
    laptop.register(world.org, user, "--key-level", "password",
                    env={"CAIRN_ARCHIVE_PASSWORD": ARCHIVE_PASSWORD})
    laptop.json("backup", world.tree, env={"CAIRN_ARCHIVE_PASSWORD": ARCHIVE_PASSWORD})
    user_id = _user_id(world.server, user)
    headers = login(world.server, world.admin)
    key = world.server.http.post(f"/api/v1/users/{user_id}/archive/key", headers=headers,
                                 json={"public_key": PUBLIC_KEY})
    assert key.status_code == 409
    assert key.json()["type"] == "urn:cairn:problem:key-not-recoverable"
    assert key.json()["level"] == "password"
    refused = _admin_restore(world, world.admin, user, "latest", "--target",
                             world.home / "pw-out", expect=7)
    assert "uses the password key level" in refused.err
    assert not (world.home / "pw-out").exists()
    audit = world.org.cli("audit", "list", "--org", world.org.id, "--limit",
                               "100000", "--json").json()
    assert not [e for e in audit if e["target"] == f"user:{user_id}"
                and e["action"] == "archive.admin_key_release"]
