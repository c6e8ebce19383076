"""Tenant isolation: every route, with the credentials of every role of another org.

The victim is a user of customer org A1 under MSP A. The attackers: the MSP
admin of another MSP (B), the org admin of B's customer B1, the org admin of
A's *other* customer A2, a plain user of B1 (logged in), B1's device, a
deactivated device, a device token used as an admin token and vice versa,
and anonymous callers. Each answer must be 401/403/404 and identical to the
answer for an id that does not exist, and nothing of the victim may change.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import pytest

from tests.server.helpers import (
    Device,
    ServerProcess,
    Tenant,
    login,
    make_tenant,
    register_device,
    sha,
    user_name,
)


@dataclass
class World:
    server: ServerProcess
    msp_a: Tenant
    a1: dict[str, Any]
    victim: Device
    victim_objects: dict[str, str]
    attackers: dict[str, dict[str, str]]


def _dead_device(server: ServerProcess, tenant: Tenant, key: str) -> Device:
    device = register_device(server, key, user_name())
    assert tenant.api("POST", f"/api/v1/devices/{device.device_id}/deactivate").status_code == 200
    return device


@pytest.fixture(scope="module")
def world(server: ServerProcess) -> World:
    msp_a, msp_b = make_tenant(server), make_tenant(server)
    a1, a2, b1 = msp_a.customer(), msp_a.customer(), msp_b.customer()
    victim = register_device(server, a1["registration_key"], user_name())
    objects = {kind: victim.put(kind, f"victim {kind}".encode())
               for kind in ("keys", "data", "index", "snapshots", "locks")}
    b1_user = user_name()
    b1_device = register_device(server, b1["registration_key"], b1_user)
    dead = _dead_device(server, msp_b, b1["registration_key"])
    dead_victim_side = _dead_device(server, msp_a, a1["registration_key"])
    attackers = {
        "msp admin of another MSP": msp_b.auth,
        "org admin of another MSP's customer": msp_b.add_admin(b1["id"]),
        "org admin of a sibling customer": msp_a.add_admin(a2["id"]),
        "user of another org": login(server, b1_user),
        "device of another org (as admin token)": {"Authorization": f"Bearer {b1_device.token}"},
        "anonymous": {},
        "garbage token": {"Authorization": "Bearer cst_" + secrets.token_urlsafe(32)},
    }
    device_attackers = {
        "device of another org": b1_device.headers,
        "deactivated device of another org": dead.headers,
        "deactivated device of the victim's org": dead_victim_side.headers,
        "admin session as device token": {**msp_b.auth, "Cairn-Agent-Version": "1.0.0"},
        "anonymous device": {"Cairn-Agent-Version": "1.0.0"},
    }
    attackers.update({f"[device] {k}": v for k, v in device_attackers.items()})
    return World(server, msp_a, a1, victim, objects, attackers)


ADMIN_ROUTES = [
    ("GET", "/api/v1/orgs/{org_id}", None),
    ("PATCH", "/api/v1/orgs/{org_id}", {"license_cap": 0}),
    ("POST", "/api/v1/orgs/{org_id}/registration-key", None),
    ("DELETE", "/api/v1/orgs/{org_id}/registration-key", None),
    ("GET", "/api/v1/orgs/{org_id}/users", None),
    ("POST", "/api/v1/orgs/{org_id}/users",
     {"username": "intruder@example.test", "password": "intruder-pass", "role": "org_admin"}),
    ("GET", "/api/v1/orgs/{org_id}/devices", None),
    ("GET", "/api/v1/orgs/{org_id}/audit", None),
    ("GET", "/api/v1/orgs/{org_id}/key-policy", None),
    ("PUT", "/api/v1/orgs/{org_id}/key-policy", {"required_level": "custom"}),
    ("POST", "/api/v1/orgs", {"name": "Planted", "parent_id": "{msp_id}"}),
    ("GET", "/api/v1/users/{user_id}", None),
    ("POST", "/api/v1/users/{user_id}/deactivate", {"confirm_username": "x@example.test"}),
    ("GET", "/api/v1/users/{user_id}/devices", None),
    ("POST", "/api/v1/users/{user_id}/archive/restore-trash", {}),
    ("GET", "/api/v1/users/{user_id}/archive/objects/{kind}", None),
    ("GET", "/api/v1/users/{user_id}/archive/objects/{kind}/{name}", None),
    ("POST", "/api/v1/users/{user_id}/archive/key", {"public_key": "{public_key}"}),
    ("GET", "/api/v1/devices/{device_id}", None),
    ("POST", "/api/v1/devices/{device_id}/deactivate", None),
    ("GET", "/api/v1/reports/licenses?org_id={org_id}", None),
    ("GET", "/api/v1/reports/stale?org_id={org_id}", None),
    ("GET", "/api/v1/reports/storage?org_id={org_id}", None),
]
OBJECT_ROUTES = [("GET", "/api/v1/archive/objects/{kind}/{name}"),
                 ("HEAD", "/api/v1/archive/objects/{kind}/{name}"),
                 ("DELETE", "/api/v1/archive/objects/{kind}/{name}")]
# Routes with a path parameter that name no resource of anyone else: they act on the
# calling device's own archive (there is no archive id in the URL).
OWN_ARCHIVE_ROUTES = {("PUT", "/api/v1/archive/objects/{kind}/{name}"),
                      ("GET", "/api/v1/archive/objects/{kind}")}


def admin_routes(w: World, missing: bool) -> list[tuple[str, str, Any]]:
    """(method, path, json body) of every admin route aimed at the victim's resources."""
    real = {"org_id": w.a1["id"], "user_id": w.victim.user_id,
            "device_id": w.victim.device_id, "msp_id": w.msp_a.org_id}
    ids = {k: secrets.token_hex(16) for k in real} if missing else real
    ids |= {"kind": "data", "name": w.victim_objects["data"],
            "public_key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}
    routes = []
    for method, template, body in ADMIN_ROUTES:
        if isinstance(body, dict):
            body = {k: v.format(**ids) if isinstance(v, str) else v for k, v in body.items()}
        routes.append((method, template.format(**ids), body))
    return routes


def test_every_route_with_an_id_is_in_the_matrix(server: ServerProcess) -> None:
    spec = server.http.get("/api/v1/openapi.json").json()
    templated = {(method.upper(), path) for path, ops in spec["paths"].items() if "{" in path
                 for method in ops}
    covered = {(m, t.split("?")[0]) for m, t, _b in ADMIN_ROUTES} | set(OBJECT_ROUTES)
    assert templated - covered - OWN_ARCHIVE_ROUTES == set()


def object_routes(w: World, missing: bool) -> list[tuple[str, str, Any]]:
    """Device routes aimed at the victim's objects (by name: there is no archive id)."""
    routes = []
    for kind, name in w.victim_objects.items():
        name = sha(secrets.token_bytes(8)) if missing else name
        path = f"/api/v1/archive/objects/{kind}/{name}"
        routes += [("GET", path, None), ("HEAD", path, None)]
        if kind == "locks":
            routes.append(("DELETE", path, None))
    return routes


def answer(w: World, headers: dict[str, str], route: tuple[str, str, Any]) -> tuple[int, Any]:
    method, path, body = route
    response = w.server.http.request(method, path, headers=headers, json=body)
    content = response.json() if response.content else None
    return response.status_code, content


def test_positive_controls(world: World) -> None:
    """The victim's own admins do reach these resources (so refusals below mean something)."""
    a1_admin = world.msp_a.add_admin(world.a1["id"])
    for headers in (world.msp_a.auth, a1_admin):
        status, body = answer(world, headers, ("GET", f"/api/v1/users/{world.victim.user_id}",
                                               None))
        assert status == 200 and body["id"] == world.victim.user_id
    for kind, name in world.victim_objects.items():
        response = world.victim.request("GET", f"/api/v1/archive/objects/{kind}/{name}")
        assert response.status_code == 200


@pytest.mark.parametrize("attacker", [
    "msp admin of another MSP", "org admin of another MSP's customer",
    "org admin of a sibling customer", "user of another org",
    "device of another org (as admin token)", "anonymous", "garbage token",
    "[device] admin session as device token", "[device] anonymous device",
    "[device] deactivated device of another org",
])
def test_admin_routes_look_missing_to_other_tenants(world: World, attacker: str) -> None:
    headers = world.attackers[attacker]
    for real, fake in zip(admin_routes(world, False), admin_routes(world, True), strict=True):
        got, expected = answer(world, headers, real), answer(world, headers, fake)
        assert got[0] in (401, 403, 404), (attacker, real, got)
        assert got == expected, (attacker, real, got, expected)
    assert_victim_untouched(world)


@pytest.mark.parametrize("attacker", [
    "[device] device of another org", "[device] deactivated device of another org",
    "[device] deactivated device of the victim's org", "[device] admin session as device token",
    "[device] anonymous device", "msp admin of another MSP", "user of another org",
])
def test_object_routes_look_missing_to_other_tenants(world: World, attacker: str) -> None:
    headers = {"Cairn-Agent-Version": "1.0.0", **world.attackers[attacker]}
    for real, fake in zip(object_routes(world, False), object_routes(world, True), strict=True):
        got, expected = answer(world, headers, real), answer(world, headers, fake)
        assert got[0] in (401, 403, 404), (attacker, real, got)
        assert got == expected, (attacker, real, got, expected)
    listed = world.server.http.get("/api/v1/archive/objects/data", headers=headers)
    victim_names = set(world.victim_objects.values())
    if listed.status_code == 200:
        assert not victim_names & {o["name"] for o in listed.json()["objects"]}
    else:
        assert listed.status_code == 401
    trash = world.server.http.post("/api/v1/archive/trash", headers=headers, json={
        "objects": [{"kind": k, "name": n} for k, n in world.victim_objects.items()]})
    assert trash.status_code in (200, 401)
    if trash.status_code == 200:
        assert trash.json()["trashed"] == 0
    assert_victim_untouched(world)


def test_lists_and_reports_never_show_other_tenants(world: World) -> None:
    victim_ids = {world.a1["id"], world.victim.user_id, world.victim.device_id,
                  world.a1["name"]}
    for attacker in ("msp admin of another MSP", "org admin of another MSP's customer",
                     "org admin of a sibling customer"):
        headers = world.attackers[attacker]
        for path in ("/api/v1/orgs", "/api/v1/reports/licenses", "/api/v1/reports/stale?days=0",
                     "/api/v1/reports/storage", "/api/v1/reports/billing",
                     "/api/v1/reports/licenses?format=csv"):
            response = world.server.http.get(path, headers=headers)
            assert response.status_code in (200, 403), (attacker, path)
            assert not any(v in response.text for v in victim_ids), (attacker, path)


def assert_victim_untouched(world: World) -> None:
    """Everything of the victim is as it was before the attacks."""
    me = world.victim.request("GET", "/api/v1/device")
    assert me.status_code == 200 and me.json()["active"] is True
    for kind, name in world.victim_objects.items():
        assert world.victim.names(kind) == {name}
    org = world.msp_a.api("GET", f"/api/v1/orgs/{world.a1['id']}").json()
    assert org["license_cap"] is None and org["registration_key_active"] is True
    assert org["registration_key_hint"] == world.a1["registration_key"][:4]
    users = world.msp_a.api("GET", f"/api/v1/orgs/{world.a1['id']}/users").json()
    assert "intruder@example.test" not in {u["username"] for u in users}
    orgs = world.msp_a.api("GET", "/api/v1/orgs").json()
    assert "Planted" not in {o["name"] for o in orgs}
    policy = world.msp_a.api("GET", f"/api/v1/orgs/{world.a1['id']}/key-policy").json()
    assert policy["required_level"] != "custom"
