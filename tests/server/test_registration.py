"""Self-registration over HTTP: the happy paths and every refusal, with clear reasons."""

from __future__ import annotations

from tests.server.helpers import (
    PASSWORD,
    Tenant,
    login,
    register,
    register_device,
    user_name,
)


def problem(response) -> dict:
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == response.status_code
    return body


def test_new_username_creates_user_and_device(tenant: Tenant) -> None:
    org = tenant.customer()
    name = user_name()
    response = register(tenant.server, org["registration_key"], name)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["user_created"] is True and body["org_id"] == org["id"]
    assert body["device_token"].startswith("cdt_")
    users = tenant.api("GET", f"/api/v1/orgs/{org['id']}/users").json()
    assert [u["username"] for u in users] == [name]
    assert users[0]["licensed"] is True and users[0]["devices_active"] == 1


def test_existing_user_is_authenticated_and_adds_a_device(tenant: Tenant) -> None:
    org = tenant.customer()
    name = user_name()
    first = register_device(tenant.server, org["registration_key"], name)
    second = register(tenant.server, org["registration_key"], name.upper())
    assert second.status_code == 201, second.text
    assert second.json()["user_created"] is False
    assert second.json()["user_id"] == first.user_id
    # both devices share one archive: what one uploads, the other sees
    stored = first.put("data", b"shared bytes")
    other = second.json()["device_token"]
    listed = tenant.server.http.get("/api/v1/archive/objects/data", headers={
        "Authorization": f"Bearer {other}", "Cairn-Agent-Version": "1.0.0"})
    assert [o["name"] for o in listed.json()["objects"]] == [stored]


def test_unknown_and_revoked_keys_are_refused(tenant: Tenant) -> None:
    org = tenant.customer()
    unknown = register(tenant.server, "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH", user_name())
    assert unknown.status_code == 403
    assert problem(unknown)["type"].endswith("registration-key-invalid")
    assert tenant.api("DELETE", f"/api/v1/orgs/{org['id']}/registration-key").status_code == 204
    revoked = register(tenant.server, org["registration_key"], user_name())
    assert revoked.status_code == 403
    assert "unknown or has been revoked" in problem(revoked)["detail"]


def test_rotated_key_replaces_the_old_one(tenant: Tenant) -> None:
    org = tenant.customer()
    rotated = tenant.api("POST", f"/api/v1/orgs/{org['id']}/registration-key")
    assert rotated.status_code == 200
    new_key = rotated.json()["registration_key"]
    assert register(tenant.server, org["registration_key"], user_name()).status_code == 403
    assert register(tenant.server, new_key.lower(), user_name()).status_code == 201


def test_wrong_password_is_refused(tenant: Tenant) -> None:
    org = tenant.customer()
    name = user_name()
    register_device(tenant.server, org["registration_key"], name)
    response = register(tenant.server, org["registration_key"], name, "not the password")
    assert response.status_code == 401
    assert problem(response)["detail"] == "The username or password is wrong."


def test_user_of_another_org_cannot_register_with_this_key(tenant: Tenant) -> None:
    home, other = tenant.customer(), tenant.customer()
    name = user_name()
    register_device(tenant.server, home["registration_key"], name)
    response = register(tenant.server, other["registration_key"], name)
    assert response.status_code == 401  # same answer as a wrong password: no account probing
    assert problem(response)["detail"] == "The username or password is wrong."


def test_license_cap_refuses_new_users_but_not_existing_ones(tenant: Tenant) -> None:
    org = tenant.customer(license_cap=1)
    first = user_name()
    register_device(tenant.server, org["registration_key"], first)
    refused = register(tenant.server, org["registration_key"], user_name())
    assert refused.status_code == 403
    body = problem(refused)
    assert body["type"].endswith("license-cap-reached")
    assert "raise the license cap" in body["detail"]
    # the existing user still adds devices; raising the cap admits the next user
    assert register(tenant.server, org["registration_key"], first).status_code == 201
    assert tenant.api("PATCH", f"/api/v1/orgs/{org['id']}",
                      json={"license_cap": 2}).status_code == 200
    assert register(tenant.server, org["registration_key"], user_name()).status_code == 201


def test_fifth_device_is_refused_unless_replacing(tenant: Tenant) -> None:
    org = tenant.customer()
    name = user_name()
    devices = [register_device(tenant.server, org["registration_key"], name) for _ in range(4)]
    fifth = register(tenant.server, org["registration_key"], name)
    assert fifth.status_code == 409
    body = problem(fifth)
    assert body["type"].endswith("device-limit-reached")
    assert sorted(d["id"] for d in body["devices"]) == sorted(d.device_id for d in devices)
    replaced = register(tenant.server, org["registration_key"], name,
                        replace=devices[0].device_id)
    assert replaced.status_code == 201, replaced.text
    assert replaced.json()["replaced_device_id"] == devices[0].device_id
    old = devices[0].request("GET", "/api/v1/device")
    assert old.status_code == 401  # the replaced device's token is dead


def test_deactivating_a_device_frees_its_slot(tenant: Tenant) -> None:
    org = tenant.customer()
    name = user_name()
    devices = [register_device(tenant.server, org["registration_key"], name) for _ in range(4)]
    gone = tenant.api("POST", f"/api/v1/devices/{devices[1].device_id}/deactivate")
    assert gone.status_code == 200 and gone.json()["active"] is False
    assert register(tenant.server, org["registration_key"], name).status_code == 201


def test_same_computer_registering_again_keeps_one_slot(tenant: Tenant) -> None:
    org = tenant.customer()
    name = user_name()
    first = register_device(tenant.server, org["registration_key"], name, guid="pc-1")
    again = register(tenant.server, org["registration_key"], name, guid="pc-1")
    assert again.status_code == 201
    assert again.json()["replaced_device_id"] == first.device_id
    listed = tenant.api("GET", f"/api/v1/users/{first.user_id}/devices").json()
    assert [d["guid"] for d in listed] == ["pc-1"]


def test_old_agent_is_told_to_upgrade(tenant: Tenant) -> None:
    org = tenant.customer()
    name = user_name()
    device = register_device(tenant.server, org["registration_key"], name)
    assert tenant.server.cli("settings", "set", "min-agent-version", "2.0.0").code == 0
    try:
        refused = register(tenant.server, org["registration_key"], user_name(), version="1.9.9")
        assert refused.status_code == 403
        body = problem(refused)
        assert body["type"].endswith("agent-too-old")
        assert "Upgrade the Cairn agent" in body["detail"] and "2.0.0" in body["detail"]
        # registered devices running the old agent are turned away too
        assert device.request("GET", "/api/v1/device").status_code == 403
        ok = register(tenant.server, org["registration_key"], user_name(), version="2.0.0")
        assert ok.status_code == 201
    finally:
        assert tenant.server.cli("settings", "set", "min-agent-version", "0.0.0").code == 0


def test_malformed_registrations_get_400(tenant: Tenant) -> None:
    org = tenant.customer()
    http = tenant.server.http
    headers = {"Cairn-Agent-Version": "1.0.0"}
    cases = [
        b"not json",
        b'{"registration_key": "x"}',
        b'{"registration_key": "x", "username": "a@b", "password": "p", "device": 5}',
    ]
    for raw in cases:
        response = http.post("/api/v1/register", content=raw,
                             headers={**headers, "Content-Type": "application/json"})
        assert response.status_code == 400, response.text
        assert problem(response)["detail"]
    no_version = http.post("/api/v1/register", json={
        "registration_key": org["registration_key"], "username": user_name(),
        "password": PASSWORD, "device": {"guid": "g", "name": "n", "os": "o"}})
    assert no_version.status_code == 400
    assert "Cairn-Agent-Version" in problem(no_version)["detail"]
    short = register(tenant.server, org["registration_key"], user_name(), "short")
    assert short.status_code == 400 and "at least 8" in problem(short)["detail"]


def test_registrations_and_refusals_are_audited(tenant: Tenant) -> None:
    org = tenant.customer(license_cap=0)
    register(tenant.server, org["registration_key"], user_name())
    events = tenant.api("GET", f"/api/v1/orgs/{org['id']}/audit").json()
    refused = [e for e in events if e["action"] == "device.register"]
    assert refused and refused[0]["outcome"] == "refused"
    assert refused[0]["detail"]["reason"] == "license-cap-reached"
    assert PASSWORD not in str(events) and org["registration_key"] not in str(events)


def test_a_registered_user_can_log_in_and_see_only_their_devices(tenant: Tenant) -> None:
    org = tenant.customer()
    name = user_name()
    device = register_device(tenant.server, org["registration_key"], name)
    auth = login(tenant.server, name)
    mine = tenant.server.http.get(f"/api/v1/users/{device.user_id}/devices", headers=auth)
    assert [d["id"] for d in mine.json()] == [device.device_id]
    orgs = tenant.server.http.get("/api/v1/orgs", headers=auth)
    assert orgs.status_code == 403
