"""Admin API over HTTP: organizations, users, deactivation, reports, sessions, errors."""

from __future__ import annotations

import csv
import io
import os
from datetime import UTC, datetime, timedelta

from tests.server.helpers import (
    PASSWORD,
    ServerProcess,
    Tenant,
    login,
    register,
    register_device,
    user_name,
)


def test_openapi_and_health_are_served(server: ServerProcess) -> None:
    spec = server.http.get("/api/v1/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    for path in ("/api/v1/register", "/api/v1/archive/objects/{kind}/{name}",
                 "/api/v1/archive/trash", "/api/v1/device/backup-completed",
                 "/api/v1/orgs/{org_id}", "/api/v1/reports/billing"):
        assert path in paths, path
    assert server.http.get("/api/v1/health").json()["status"] == "ok"


def test_unknown_routes_bad_values_are_problem_documents(tenant: Tenant) -> None:
    for method, path, status in (("GET", "/api/v1/nothing-here", 404),
                                 ("DELETE", "/api/v1/register", 405),
                                 ("GET", "/api/v1/reports/stale?days=-1", 400),
                                 ("GET", "/api/v1/reports/licenses?date=yesterday", 400),
                                 ("GET", "/api/v1/reports/licenses?format=xml", 400),
                                 ("PATCH", f"/api/v1/orgs/{tenant.org_id}", 400),
                                 ("GET", "/api/v1/orgs/%00", 404),
                                 ("GET", "/api/v1/users/" + "x" * 5000, 404)):
        body = {"license_cap": -1} if method == "PATCH" else None
        response = tenant.api(method, path, json=body)
        assert response.status_code == status, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"]


def test_login_logout_and_wrong_password(tenant: Tenant) -> None:
    http = tenant.server.http
    wrong = http.post("/api/v1/auth/login", json={"username": tenant.admin, "password": "nope"})
    assert wrong.status_code == 401 and wrong.json()["detail"] == \
        "The username or password is wrong."
    nobody = http.post("/api/v1/auth/login", json={"username": "no@one", "password": "nope"})
    assert nobody.json() == wrong.json()
    auth = login(tenant.server, tenant.admin)
    me = http.get("/api/v1/auth/me", headers=auth).json()
    assert me["role"] == "msp_admin" and me["org_id"] == tenant.org_id
    assert http.post("/api/v1/auth/logout", headers=auth).status_code == 204
    assert http.get("/api/v1/auth/me", headers=auth).status_code == 401


def test_org_tree_is_msp_then_customers_only(tenant: Tenant) -> None:
    customer = tenant.customer("Acme")
    assert "registration_key" in customer and len(customer["registration_key"]) == 39
    deeper = tenant.api("POST", "/api/v1/orgs", json={"name": "Dept", "parent_id":
                                                      customer["id"]})
    assert deeper.status_code == 409
    assert "cannot have child organizations" in deeper.json()["detail"]
    duplicate = tenant.api("POST", "/api/v1/orgs", json={"name": "acme", "parent_id":
                                                         tenant.org_id})
    assert duplicate.status_code == 409
    shown = tenant.api("GET", f"/api/v1/orgs/{customer['id']}").json()
    assert "registration_key" not in shown and shown["registration_key_active"] is True
    listed = {o["id"] for o in tenant.api("GET", "/api/v1/orgs").json()}
    assert listed == {tenant.org_id, customer["id"]}


def test_org_admins_manage_their_org_but_not_limits_or_children(tenant: Tenant) -> None:
    org = tenant.customer()
    admin = tenant.add_admin(org["id"])
    http = tenant.server.http
    assert http.get(f"/api/v1/orgs/{org['id']}", headers=admin).status_code == 200
    assert http.patch(f"/api/v1/orgs/{org['id']}", headers=admin,
                      json={"license_cap": 5}).status_code == 403
    assert http.post("/api/v1/orgs", headers=admin,
                     json={"name": "x", "parent_id": org["id"]}).status_code == 403
    made = http.post(f"/api/v1/orgs/{org['id']}/users", headers=admin,
                     json={"username": user_name(), "password": PASSWORD})
    assert made.status_code == 201 and made.json()["role"] == "user"
    higher = http.post(f"/api/v1/orgs/{org['id']}/users", headers=admin,
                       json={"username": user_name(), "password": PASSWORD,
                             "role": "msp_admin"})
    assert higher.status_code in (400, 403)
    rotated = http.post(f"/api/v1/orgs/{org['id']}/registration-key", headers=admin)
    assert rotated.status_code == 200


def test_deactivating_a_user_deletes_everything_at_once(tenant: Tenant) -> None:
    org = tenant.customer(license_cap=1)
    name = user_name()
    device = register_device(tenant.server, org["registration_key"], name)
    for kind in ("keys", "data", "snapshots"):
        device.put(kind, os.urandom(200))
    namespaces = {p.name for p in (tenant.server.data / "storage" / "objects").iterdir()}
    path = f"/api/v1/users/{device.user_id}/deactivate"
    mismatch = tenant.api("POST", path, json={"confirm_username": "someone@else"})
    assert mismatch.status_code == 400
    assert device.request("GET", "/api/v1/device").status_code == 200
    done = tenant.api("POST", path, json={"confirm_username": name})
    assert done.status_code == 200, done.text
    assert done.json()["active"] is False and done.json()["data_deleted"] is True
    assert done.json()["bytes_stored"] == 0
    assert device.request("GET", "/api/v1/device").status_code == 401
    assert device.request("GET", "/api/v1/archive/objects/data").status_code == 401
    left = {p.name for p in (tenant.server.data / "storage" / "objects").iterdir()}
    assert len(namespaces - left) == 1  # the user's namespace, trash included, is gone
    again = tenant.api("POST", path, json={"confirm_username": name})
    assert again.status_code == 409
    # the license is free again, and the username can start over as a new user
    fresh = register(tenant.server, org["registration_key"], name)
    assert fresh.status_code == 201 and fresh.json()["user_created"] is True
    assert fresh.json()["user_id"] != device.user_id
    actions = [e["action"] for e in tenant.api("GET", f"/api/v1/orgs/{org['id']}/audit").json()]
    assert "user.deactivate" in actions


def test_reports_with_known_numbers(tenant: Tenant) -> None:
    first, second = tenant.customer("First"), tenant.customer("Second")
    with_data = [register_device(tenant.server, first["registration_key"], user_name())
                 for _ in range(2)]
    with_data.append(register_device(tenant.server, second["registration_key"], user_name()))
    register_device(tenant.server, second["registration_key"], user_name())  # never uploads
    for index, device in enumerate(with_data):
        device.put("data", os.urandom(1000 + index))
    licenses = tenant.api("GET", "/api/v1/reports/licenses").json()
    by_org = {r["org"]: r["licenses_in_use"] for r in licenses["rows"] if r["level"] == "org"}
    assert by_org == {tenant.name: 0, "First": 2, "Second": 1}
    account = [r for r in licenses["rows"] if r["level"] == "account"]
    assert [(r["org"], r["licenses_in_use"]) for r in account] == [(tenant.name, 3)]
    bill = tenant.api("GET", "/api/v1/reports/billing?format=csv")
    assert bill.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(bill.text)))
    total = next(r for r in rows if r["level"] == "account")
    expected_cents = 3 * 999
    assert total["unit_price"] == "9.99"
    assert total["amount"] == f"{expected_cents // 100}.{expected_cents % 100:02d}"
    storage = tenant.api("GET", "/api/v1/reports/storage").json()
    stored = {r["org"]: r["bytes_stored"] for r in storage["rows"]}
    assert stored == {tenant.name: 0, "First": 1000 + 1001, "Second": 1002}
    with_data[0].request("POST", "/api/v1/device/backup-completed", json={})
    # devices first seen today are not stale yet, whether or not they completed a backup
    assert tenant.api("GET", "/api/v1/reports/stale?days=1").json()["rows"] == []
    later = (datetime.now(UTC).date() + timedelta(days=3)).isoformat()
    stale = tenant.api("GET", f"/api/v1/reports/stale?days=1&date={later}").json()
    assert len(stale["rows"]) == 4
    backed_up = [r for r in stale["rows"] if r["device_id"] == with_data[0].device_id]
    assert backed_up[0]["last_backup_at"] is not None
    assert backed_up[0]["days_since_backup"] in (3, 4)
    org_admin = tenant.add_admin(first["id"])
    assert tenant.server.http.get("/api/v1/reports/billing",
                                  headers=org_admin).status_code == 403


GARBAGE_BODIES = [b"", b"[]", b'"text"', b"{}", b'{"unexpected": 1}', b"\x00\xff",
                  b'{"name": "\\u0000", "parent_id": "\\u0000", "license_cap": 1e400}',
                  b'{"username": "a\\u0000b", "password": "\\u0000\\u0000\\u0000\\u0000xxxxx"}',
                  b'{"objects": [{"kind": "data", "name": "../x"}]}',
                  b'{"completed_at": "2025-13-45T99:99:99"}', b'{"since": 12}',
                  b'{"license_cap": 99999999999999999999999999}', b"{" * 5000]


def test_garbage_never_causes_a_server_error(tenant: Tenant) -> None:
    """Every route that takes a body, fed malformed bodies by an admin and by a device."""
    org = tenant.customer()
    device = register_device(tenant.server, org["registration_key"], user_name())
    ids = {"org_id": org["id"], "user_id": device.user_id, "device_id": device.device_id,
           "kind": "data", "name": "0" * 64}
    spec = tenant.server.http.get("/api/v1/openapi.json").json()
    routes = [(method.upper(), path.format(**ids)) for path, ops in spec["paths"].items()
              for method, op in ops.items() if "requestBody" in op]
    assert len(routes) >= 10
    for method, path in routes:
        for headers in ({**tenant.auth, "Cairn-Agent-Version": "1.0.0"}, device.headers):
            for body in GARBAGE_BODIES:
                response = tenant.server.http.request(
                    method, path, content=body,
                    headers={**headers, "Content-Type": "application/json"})
                assert response.status_code < 500, (method, path, body[:40], response.text)


def test_oversized_json_bodies_are_refused(server: ServerProcess) -> None:
    big = b"[" + b"0," * (5 << 20) + b"0]"  # about 10 MiB of valid JSON
    declared = server.http.post("/api/v1/auth/login", content=big,
                                headers={"Content-Type": "application/json"})
    assert declared.status_code == 413
    chunked = server.http.post("/api/v1/auth/login", content=iter([big[:1 << 20]] * 10),
                               headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413 and chunked.json()["max_bytes"] == 8 << 20
