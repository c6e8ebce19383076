"""Lockout after repeated wrong passwords: over HTTP on the real server, and the
counting rules in-process on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from agent.errors import WrongCredentials as AgentWrongCredentials
from agent.remote.http import raise_for_problem
from server.domain import throttle
from server.errors import TooManyAttempts
from server.metadata.db import Database
from server.metadata.models import AuthFailure, utcnow
from tests.server.helpers import PASSWORD, Tenant, register, register_device, user_name

WRONG = "not the password"


def _login(tenant: Tenant, username: str, password: str) -> httpx.Response:
    return tenant.server.http.post("/api/v1/auth/login",
                                   json={"username": username, "password": password})


def _new_admin(tenant: Tenant) -> str:
    name = user_name()
    response = tenant.api("POST", f"/api/v1/orgs/{tenant.org_id}/users",
                          json={"username": name, "password": PASSWORD, "role": "msp_admin"})
    assert response.status_code == 201, response.text
    return name


def _assert_locked_out(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["type"] == "urn:cairn:problem:too-many-attempts"
    assert body["detail"].startswith("Too many wrong passwords for this user; try again in ")
    retry_after = int(response.headers["Retry-After"])
    assert 0 < retry_after <= throttle.WINDOW.total_seconds()


def test_wrong_passwords_lock_the_login_even_for_the_right_one(tenant: Tenant) -> None:
    name, bystander = _new_admin(tenant), _new_admin(tenant)
    for _ in range(throttle.PER_ADDRESS):
        assert _login(tenant, name, WRONG).status_code == 401
    _assert_locked_out(_login(tenant, name, PASSWORD))
    _assert_locked_out(_login(tenant, name.upper(), WRONG))  # same user, however spelled
    assert _login(tenant, bystander, PASSWORD).status_code == 200
    events = tenant.api("GET", f"/api/v1/orgs/{tenant.org_id}/audit").json()
    refused = [e for e in events if e["actor"] == f"user:{name}" and e["outcome"] == "refused"]
    assert len(refused) == throttle.PER_ADDRESS + 2
    assert refused[0]["detail"]["reason"] == "too-many-attempts"


def test_one_wrong_password_short_of_the_limit_still_lets_the_user_in(tenant: Tenant) -> None:
    name = _new_admin(tenant)
    for _ in range(throttle.PER_ADDRESS - 1):
        assert _login(tenant, name, WRONG).status_code == 401
    assert _login(tenant, name, PASSWORD).status_code == 200


def test_registration_wrong_passwords_count_toward_the_same_lockout(tenant: Tenant) -> None:
    org = tenant.customer()
    key, name = org["registration_key"], user_name()
    register_device(tenant.server, key, name)
    for _ in range(throttle.PER_ADDRESS):
        assert register(tenant.server, key, name, WRONG).status_code == 401
    locked = register(tenant.server, key, name)
    _assert_locked_out(locked)
    assert tenant.api("GET", f"/api/v1/orgs/{org['id']}/users").json()[0]["devices_active"] == 1
    with pytest.raises(AgentWrongCredentials, match="Too many wrong passwords"):
        raise_for_problem(locked, AgentWrongCredentials)  # the agent shows it, no retry


def _add_failures(db: Database, username: str, addresses: list[str], age: timedelta) -> None:
    with db.write() as session:
        session.add_all(AuthFailure(at=utcnow() - age, username=username, address=address)
                        for address in addresses)


def test_failures_count_per_address_then_per_username(metadata_db: Database) -> None:
    recent = timedelta(minutes=1)
    _add_failures(metadata_db, "ann", ["10.0.0.1"] * (throttle.PER_ADDRESS - 1), recent)
    throttle.check(metadata_db, "ann", "10.0.0.1")
    with metadata_db.write() as session:
        throttle.record_failure(session, "ann", "10.0.0.1")
    with pytest.raises(TooManyAttempts) as locked:
        throttle.check(metadata_db, "ann", "10.0.0.1")
    assert 0 < locked.value.extensions["retry_after_s"] <= throttle.WINDOW.total_seconds()
    throttle.check(metadata_db, "ann", "10.0.0.2")  # another machine is not locked out
    throttle.check(metadata_db, "bob", "10.0.0.1")  # nor another user

    spread = [f"10.1.0.{i}" for i in range(throttle.PER_USERNAME)]
    _add_failures(metadata_db, "cy", spread[:-1], recent)
    throttle.check(metadata_db, "cy", "10.2.0.1")
    _add_failures(metadata_db, "cy", spread[-1:], recent)
    with pytest.raises(TooManyAttempts):
        throttle.check(metadata_db, "cy", "10.2.0.1")  # guessed from many machines


def test_failures_older_than_the_window_stop_counting(metadata_db: Database) -> None:
    old = throttle.WINDOW + timedelta(seconds=5)
    _add_failures(metadata_db, "dee", ["10.0.0.1"] * throttle.PER_USERNAME, old)
    throttle.check(metadata_db, "dee", "10.0.0.1")
    with metadata_db.write() as session:
        throttle.record_failure(session, "dee", "10.0.0.1")  # also forgets the old ones
    with metadata_db.read() as session:
        assert session.query(AuthFailure).count() == 1


def test_operator_unlock_ends_the_lockout_at_once(tenant: Tenant) -> None:
    name = _new_admin(tenant)
    for _ in range(throttle.PER_ADDRESS):
        assert _login(tenant, name, WRONG).status_code == 401
    _assert_locked_out(_login(tenant, name, PASSWORD))
    unlocked = tenant.server.cli("user", "unlock", name.upper())
    assert unlocked.code == 0, unlocked.err
    assert f"Cleared {throttle.PER_ADDRESS} wrong password(s) of {name!r}" in unlocked.out
    assert _login(tenant, name, PASSWORD).status_code == 200
    again = tenant.server.cli("user", "unlock", name)
    assert again.code == 0 and "was not locked out" in again.out
