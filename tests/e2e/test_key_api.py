"""The key routes refuse what would weaken or corrupt an archive's key (plain HTTP, real server)."""

from __future__ import annotations

import os

from agent.codec.keys import ArchiveKeys
from agent.remote import sealing
from tests.e2e.helpers import Org, user_name
from tests.server.helpers import Device, register_device


def _device(org: Org) -> Device:
    return register_device(org.server, org.key, user_name())


def _status(device: Device) -> dict:
    response = device.request("GET", "/api/v1/keys")
    assert response.status_code == 200, response.text
    return response.json()


def test_escrow_must_be_the_archive_key_sealed_to_the_org(org: Org) -> None:
    device = _device(org)
    org_public = sealing.unb64(_status(device)["org_public_key"], 32)
    keys = ArchiveKeys.generate()
    stranger_public = sealing.new_key_pair()[1]
    attempts = [
        {"level": "standard", "archive_key_id": keys.archive_id,
         "escrow": sealing.seal(stranger_public, keys.master, sealing.ORG_ESCROW)},
        {"level": "standard", "archive_key_id": ArchiveKeys.generate().archive_id,
         "escrow": sealing.seal(org_public, keys.master, sealing.ORG_ESCROW)},
        {"level": "standard", "archive_key_id": keys.archive_id,
         "escrow": sealing.seal(org_public, os.urandom(31), sealing.ORG_ESCROW)},
        {"level": "standard", "archive_key_id": keys.archive_id, "escrow": None},
        {"level": "custom", "archive_key_id": keys.archive_id,
         "escrow": sealing.seal(org_public, keys.master, sealing.ORG_ESCROW)},
        {"level": "custom", "archive_key_id": "../" * 10 + "xx"},
    ]
    for body in attempts:
        response = device.request("POST", "/api/v1/keys/init", json=body)
        assert response.status_code == 400, (body["level"], response.text)
        assert response.json()["detail"]
    assert _status(device)["level"] is None  # nothing was recorded


def test_levels_only_move_up_and_the_escrow_goes_with_standard(org: Org) -> None:
    device = _device(org)
    org_public = sealing.unb64(_status(device)["org_public_key"], 32)
    private, public = sealing.new_key_pair()
    assert device.request("PUT", "/api/v1/keys/device",
                          json={"public_key": sealing.b64(public)}).status_code == 204
    keys = ArchiveKeys.generate()
    body = {"level": "standard", "archive_key_id": keys.archive_id,
            "escrow": sealing.seal(org_public, keys.master, sealing.ORG_ESCROW)}
    assert device.request("POST", "/api/v1/keys/init", json=body).status_code == 201
    assert device.request("POST", "/api/v1/keys/init", json=body).status_code == 409

    released = device.request("GET", "/api/v1/keys/escrow").json()["sealed"]
    assert sealing.open_sealed(private, released, sealing.DEVICE) == keys.master

    up = device.request("POST", "/api/v1/keys/level", json={"level": "password"})
    assert up.status_code == 200 and up.json()["level"] == "password"
    down = device.request("POST", "/api/v1/keys/level", json={"level": "standard"})
    assert down.status_code == 409 and "only move up" in down.json()["detail"]
    assert device.request("GET", "/api/v1/keys/escrow").status_code == 404


def test_unregistered_device_token_stops_working(org: Org) -> None:
    device = _device(org)
    assert device.request("POST", "/api/v1/device/unregister").status_code == 204
    assert device.request("GET", "/api/v1/keys").status_code == 401
