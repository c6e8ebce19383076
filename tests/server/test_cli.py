"""The admin CLI on the same data as ``serve``: every subcommand, flags anywhere, env vars."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest

from server.cli.common import split_location_flags
from server.errors import BadRequest
from tests.server.helpers import (
    PASSWORD,
    ServerProcess,
    register,
    register_device,
    run_cli,
    run_cli_process,
    user_name,
)


def test_location_flags_are_taken_from_anywhere() -> None:
    flags, rest = split_location_flags(["org", "--data", "/d", "create", "X", "--db=sqlite:///x",
                                        "--storage", "s3://b/p", "--json"])
    assert flags == {"data": "/d", "db": "sqlite:///x", "storage": "s3://b/p"}
    assert rest == ["org", "create", "X", "--json"]
    with pytest.raises(BadRequest):
        split_location_flags(["org", "list", "--data"])


def test_real_console_script_with_env_and_flags_after_subcommand(tmp_path: Path) -> None:
    data = tmp_path / "state"
    made = run_cli_process("org", "create", "Env MSP", "--license-cap", "3", "--json",
                           env={"CAIRN_SERVER_DATA": str(data)})
    assert made.returncode == 0, made.stderr
    listed = run_cli_process("org", "list", "--data", str(data), "--json")
    assert listed.returncode == 0, listed.stderr
    assert [o["name"] for o in json.loads(listed.stdout)] == ["Env MSP"]
    assert (data / "cairn.sqlite3").exists()
    missing = run_cli_process("org", "show", "Nope", "--data", str(data))
    assert missing.returncode == 3 and missing.stderr.startswith("cairn-server: No organization")
    assert "Traceback" not in missing.stderr


def test_org_commands(tmp_path: Path) -> None:
    d = ("--data", str(tmp_path))
    msp = run_cli("org", "create", "MSP One", "--json", *d).json()
    assert set(msp) >= {"id", "name", "registration_key"}
    text = run_cli("org", "create", "Customer", "--parent", "MSP One", *d)
    assert text.code == 0 and "Registration key" in text.out
    deeper = run_cli("org", "create", "Dept", "--parent", "MSP One/Customer", *d)
    assert deeper.code == 4 and "allow-deep-orgs" in deeper.err
    assert run_cli("settings", "set", "allow-deep-orgs", "true", *d).code == 0
    assert run_cli("org", "create", "Dept", "--parent", "MSP One/Customer", *d).code == 0
    assert run_cli("org", "set-cap", "Customer", "10", *d).code == 0
    assert run_cli("org", "set-quota", "Customer", "5000", *d).code == 0
    shown = run_cli("org", "show", "Customer", "--json", *d).json()
    assert shown["license_cap"] == 10 and shown["storage_quota_bytes"] == 5000
    assert run_cli("org", "set-cap", "Customer", "none", *d).code == 0
    assert run_cli("org", "show", "Customer", "--json", *d).json()["license_cap"] is None
    assert run_cli("org", "set-cap", "Customer", "-3", *d).code == 2
    rotated = run_cli("org", "rotate-key", "MSP One", "--json", *d).json()
    assert rotated["registration_key"] != msp["registration_key"]
    assert run_cli("org", "revoke-key", "MSP One", *d).code == 0
    listed = run_cli("org", "list", "--json", *d).json()
    assert {o["name"]: o["registration_key_active"] for o in listed} == {
        "MSP One": False, "Customer": True, "Dept": True}
    assert "MSP One" in run_cli("org", "list", *d).out


def test_user_and_device_commands_against_a_running_server(server: ServerProcess) -> None:
    org = server.cli("org", "create", f"CLI {os.urandom(3).hex()}", "--json").json()
    made = server.cli("user", "create", "Staff@Example.test", "--org", org["id"],
                      "--password-stdin", "--json", stdin=PASSWORD + "\n")
    assert made.code == 0 and made.json()["username"] == "staff@example.test"
    device = register_device(server, org["registration_key"], "staff@example.test")
    device.put("data", b"cli test data")
    users = server.cli("user", "list", "--org", org["id"], "--json").json()
    assert [(u["username"], u["devices_active"]) for u in users] == [("staff@example.test", 1)]
    devices = server.cli("device", "list", "--user", "staff@example.test", "--json").json()
    assert [d["id"] for d in devices] == [device.device_id]
    assert server.cli("device", "deactivate", device.device_id).code == 0
    assert device.request("GET", "/api/v1/device").status_code == 401
    unconfirmed = server.cli("user", "deactivate", "staff@example.test")
    assert unconfirmed.code == 2 and "--yes" in unconfirmed.err
    done = server.cli("user", "deactivate", "staff@example.test", "--yes")
    assert done.code == 0 and "deleted" in done.out
    assert server.cli("user", "list", "--org", org["id"], "--json").json() == []
    everyone = server.cli("user", "list", "--org", org["id"], "--all", "--json").json()
    assert [u["active"] for u in everyone] == [False]
    log = server.cli("audit", "list", "--org", org["id"], "--json").json()
    assert {"user.create", "device.register", "device.deactivate", "user.deactivate"} <= \
        {e["action"] for e in log}


def test_admin_create_gives_an_api_login(server: ServerProcess) -> None:
    org = server.cli("org", "create", f"Adm {os.urandom(3).hex()}", "--json").json()
    name = user_name()
    assert server.cli("admin", "create", name, "--org", org["id"], "--password-stdin",
                      stdin=PASSWORD + "\n").code == 0
    response = server.http.post("/api/v1/auth/login", json={"username": name,
                                                            "password": PASSWORD})
    assert response.status_code == 200 and response.json()["role"] == "msp_admin"
    no_password = server.cli("admin", "create", user_name(), "--org", org["id"])
    assert no_password.code == 2 and "--password-stdin" in no_password.err


def test_report_commands(server: ServerProcess) -> None:
    org = server.cli("org", "create", f"Rep {os.urandom(3).hex()}", "--json").json()
    for _ in range(2):
        register_device(server, org["registration_key"], user_name()).put("data", os.urandom(9))
    register(server, org["registration_key"], user_name())
    licenses = server.cli("report", "licenses", "--org", org["id"], "--json").json()
    assert [r["licenses_in_use"] for r in licenses["rows"]] == [2, 2]  # org row, account row
    billing = server.cli("report", "billing", "--org", org["id"], "--csv")
    rows = list(csv.DictReader(io.StringIO(billing.out)))
    assert rows[-1]["level"] == "account" and rows[-1]["amount"] == "19.98"
    stale = server.cli("report", "stale", "--org", org["id"], "--days", "0", "--json").json()
    assert len(stale["rows"]) == 3
    storage = server.cli("report", "storage", "--org", org["id"], "--json").json()
    assert storage["rows"][0]["bytes_stored"] == 18
    text = server.cli("report", "billing", "--org", org["id"], "--date", "2025-03-31")
    assert text.code == 0 and "previous cycle date 2025-02-28" in text.out
    assert server.cli("report", "licenses", "--date", "31/12/2025").code == 2


def test_settings_and_trash_purge(server: ServerProcess) -> None:
    shown = server.cli("settings", "show", "--json").json()
    assert set(shown) == {"min-agent-version", "allow-deep-orgs", "trash-grace-days"}
    assert server.cli("settings", "set", "trash-grace-days", "many").code == 2
    purged = server.cli("trash", "purge")
    assert purged.code == 0 and "Purged" in purged.out


def test_serve_refuses_plain_http_off_loopback(tmp_path: Path) -> None:
    refused = run_cli("serve", "--host", "0.0.0.0", "--data", str(tmp_path))
    assert refused.code == 2 and "--insecure-http" in refused.err
    half_tls = run_cli("serve", "--tls-cert", str(tmp_path / "c.pem"), "--data", str(tmp_path))
    assert half_tls.code == 2 and "--tls-key" in half_tls.err
