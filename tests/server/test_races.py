"""Parallel registrations racing for the last license or the last device slot: one wins."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.server.helpers import Tenant, register, register_device, user_name

RACERS = 6


def race(tenant: Tenant, key: str, usernames: list[str]) -> list[int]:
    with ThreadPoolExecutor(len(usernames)) as pool:
        return [r.status_code for r in pool.map(
            lambda name: register(tenant.server, key, name), usernames)]


def test_racing_for_the_last_license(tenant: Tenant) -> None:
    org = tenant.customer(license_cap=2)
    register_device(tenant.server, org["registration_key"], user_name())
    statuses = race(tenant, org["registration_key"], [user_name() for _ in range(RACERS)])
    assert sorted(statuses) == [201] + [403] * (RACERS - 1)
    users = tenant.api("GET", f"/api/v1/orgs/{org['id']}/users").json()
    assert len(users) == 2


def test_racing_for_the_last_device_slot(tenant: Tenant) -> None:
    org = tenant.customer()
    name = user_name()
    for _ in range(3):
        register_device(tenant.server, org["registration_key"], name)
    statuses = race(tenant, org["registration_key"], [name] * RACERS)
    assert sorted(statuses) == [201] + [409] * (RACERS - 1)
    user_id = tenant.api("GET", f"/api/v1/orgs/{org['id']}/users").json()[0]["id"]
    devices = tenant.api("GET", f"/api/v1/users/{user_id}/devices").json()
    assert len(devices) == 4


def test_racing_for_the_same_new_username_in_two_orgs(tenant: Tenant) -> None:
    first, second = tenant.customer(), tenant.customer()
    name = user_name()
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda key: register(tenant.server, key, name).status_code,
                                 [first["registration_key"], second["registration_key"]] * 2))
    # one org gets the user (and a second device of it); the other org is refused
    assert statuses.count(201) == 2 and statuses.count(401) == 2
