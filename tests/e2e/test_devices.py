"""Register, back up to the server, restore on another device, dedup across devices, replace."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from tests.agent.treespec import manifest, restored
from tests.e2e.helpers import PASSWORD, Agent, Org, user_name


def _devices(org: Org, username: str) -> list[dict]:
    return org.cli("device", "list", "--user", username, "--all", "--json").json()


def test_backup_restore_on_second_device_and_dedup(org: Org, tree: Path, tmp_path: Path,
                                                   computer: Callable[[], Agent]) -> None:
    user = user_name()
    laptop, desktop = computer(), computer()
    shown = laptop.register(org, user, "--device-name", "laptop").out
    assert f"Device GUID: {laptop.guid}" in shown
    first = laptop.json("backup", tree)
    assert first["destination"] == org.server.url and first["files_total"] > 10
    assert first["bytes_stored"] >= 3 * 1024 * 1024  # the big file went up

    desktop.register(org, user, "--device-name", "desktop")
    out = tmp_path / "restore"
    desktop.json("restore", "latest", "--target", out)
    assert manifest(restored(out, tree)) == manifest(tree)

    # The same files from the other device: only a snapshot and its trees are new.
    again = desktop.json("backup", tree)
    assert again["bytes_stored"] < first["bytes_stored"] / 100

    snaps = laptop.json("snapshots")
    assert {s["device"] for s in snaps} == {laptop.guid, desktop.guid}
    mine = laptop.json("snapshots", "--device", desktop.guid)
    assert [s["id"] for s in mine] == [again["snapshot_id"]]
    assert all(s["last_backup_at"] for s in _devices(org, user))
    assert desktop.json("check", "--read-data")["ok"]
    _no_secrets_in_logs(laptop, org, org.key)


def _no_secrets_in_logs(agent: Agent, org: Org, registration_key: str) -> None:
    token = (agent.home / "secrets" / "device-token").read_text().strip()
    logs = [*(agent.home / "logs").glob("*"), org.server.log]
    for secret in (token, PASSWORD, registration_key):
        assert not any(secret in path.read_text(errors="replace") for path in logs)


def test_backup_without_paths_repeats_the_device_selection(org: Org, tree: Path,
                                                           computer: Callable[[], Agent]
                                                           ) -> None:
    pc = computer()
    pc.register(org, user_name())
    pc.run("backup", expect=2)  # nothing backed up yet: name the paths
    pc.json("backup", tree)
    (tree / "new.txt").write_bytes(b"added later")
    again = pc.json("backup")
    assert again["files_new"] == 1


def test_replace_device_takes_over_identity_and_selection(org: Org, tree: Path,
                                                          computer: Callable[[], Agent]) -> None:
    user = user_name()
    old, new = computer(), computer()
    old.register(org, user)
    old.json("backup", tree)
    old_guid = old.guid

    new.run("replace-device", old_guid, "--server", org.server.url, "--registration-key",
            org.key, "--username", user)
    assert new.guid == old_guid
    old.run("snapshots", expect=17)  # the replaced device's token no longer works
    # Backups continue: same GUID, same selection, and nothing is uploaded again.
    (tree / "after-move.txt").write_bytes(b"written on the new computer")
    done = new.json("backup")
    assert done["files_new"] >= 1 and done["bytes_stored"] < 100_000
    snaps = new.json("snapshots", "--device", old_guid)
    assert len(snaps) == 2
    states = {d["guid"]: d["active"] for d in _devices(org, user)}
    assert list(states.values()).count(True) == 1


def test_unregister_frees_the_slot(org: Org, tree: Path, tmp_path: Path,
                                   computer: Callable[[], Agent]) -> None:
    user = user_name()
    pcs = [computer() for _ in range(4)]
    for pc in pcs:
        pc.register(org, user)
    pcs[0].json("backup", tree)
    fifth = computer()
    assert "4 active devices" in fifth.register(org, user, expect=13).err
    pcs[0].run("unregister")
    assert not (pcs[0].home / "server.json").exists()
    fifth.register(org, user)
    out = tmp_path / "out"
    fifth.json("restore", "latest", "--target", out)  # the data stayed with the user
    assert (restored(out, tree) / "hello.txt").read_bytes() == b"hello\n"
    secrets = fifth.home / "secrets"
    assert {p.name: oct(os.stat(p).st_mode & 0o777) for p in secrets.iterdir()} == {
        "device-token": "0o600", "device-key": "0o600", "archive-key": "0o600"}
