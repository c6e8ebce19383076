"""Every refusal is a clear sentence and its own exit code; refused runs change nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.agent.strategies import random_bytes
from tests.agent.treespec import manifest, restored
from tests.e2e.helpers import Agent, Org, db_row, launch_server, make_org, user_name
from tests.e2e.tlscert import self_signed
from tests.server.helpers import ServerProcess, free_port


def test_unknown_registration_key(org: Org, computer: Callable[[], Agent]) -> None:
    pc = computer()
    done = pc.run("register", "--server", org.server.url, "--registration-key",
                  "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH", "--username", user_name(),
                  expect=10)
    assert "registration key is unknown" in done.err
    assert not (pc.home / "server.json").exists()


def test_wrong_password(org: Org, computer: Callable[[], Agent]) -> None:
    user = user_name()
    computer().register(org, user)
    done = computer().register(org, user, expect=11, env={"CAIRN_PASSWORD": "wrong password"})
    assert "password is wrong" in done.err


def test_license_cap(server: ServerProcess, computer: Callable[[], Agent]) -> None:
    capped = make_org(server, **{"license-cap": "1"})
    computer().register(capped, user_name())
    done = computer().register(capped, user_name(), expect=12)
    assert "license" in done.err


@pytest.fixture
def min_version(server: ServerProcess) -> Iterator[Callable[[str], None]]:
    def set_min(version: str) -> None:
        done = server.cli("settings", "set", "min-agent-version", version)
        assert done.code == 0, done.err

    yield set_min
    set_min("0.0.0")


def test_agent_version_too_old(org: Org, tree: Path, computer: Callable[[], Agent],
                               min_version: Callable[[str], None]) -> None:
    registered = computer()
    registered.register(org, user_name())
    min_version("999.0.0")
    done = computer().register(org, user_name(), expect=14)
    assert "requires version 999.0.0" in done.err and "Upgrade" in done.err
    assert "requires version 999.0.0" in registered.run("backup", tree, expect=14).err


def test_server_unreachable(org: Org, computer: Callable[[], Agent]) -> None:
    done = computer().run("register", "--server", f"http://127.0.0.1:{free_port()}",
                          "--registration-key", org.key, "--username", user_name(), expect=15)
    assert "Cannot reach the Cairn server" in done.err


def test_plain_http_only_on_loopback(org: Org, computer: Callable[[], Agent]) -> None:
    done = computer().run("register", "--server", "http://backup.example.com",
                          "--registration-key", org.key, "--username", user_name(), expect=2)
    assert "https://" in done.err


def test_certificate_not_trusted_unless_pinned(tmp_path: Path, tree: Path,
                                               computer: Callable[[], Agent]) -> None:
    cert, key, fingerprint = self_signed(tmp_path / "tls")
    tls = launch_server(tmp_path / "tls-data", None, "--tls-cert", str(cert), "--tls-key",
                        str(key))
    try:
        org = make_org(tls)
        pc = computer()
        done = pc.register(org, user_name(), expect=16)
        assert "not trusted" in done.err
        wrong = "00" * 32
        assert "does not match the pinned" in pc.register(org, user_name(), "--pin-sha256",
                                                          wrong, expect=16).err
        pin = ":".join(fingerprint[i:i + 2] for i in range(0, 64, 2)).upper()
        pc.register(org, user_name(), "--pin-sha256", pin)
        assert pc.json("backup", tree)["destination"].startswith("https://")
    finally:
        tls.stop()


def test_deactivated_user_is_refused(org: Org, tree: Path, computer: Callable[[], Agent]) -> None:
    user = user_name()
    pc = computer()
    pc.register(org, user)
    pc.json("backup", tree)
    keys_of_user = ("SELECT count(*) FROM archive_keys k JOIN archives a ON a.id = k.archive_id"
                    " JOIN users u ON u.id = a.user_id WHERE u.username = ?")
    assert db_row(org.server, keys_of_user, user) == (1,)
    org.cli("user", "deactivate", user, "--yes")
    assert db_row(org.server, keys_of_user, user) == (0,)  # the escrowed key went too
    done = pc.run("backup", tree, expect=17)
    assert "not valid" in done.err and "deactivated" in done.err
    pc.run("snapshots", expect=17)


def test_quota_full_stops_the_run_and_keeps_earlier_snapshots(
        server: ServerProcess, tree: Path, tmp_path: Path,
        computer: Callable[[], Agent]) -> None:
    org = make_org(server)
    pc = computer()
    pc.register(org, user_name())
    first = pc.json("backup", tree)
    org.cli("org", "set-quota", org.id, str(first["bytes_stored"] + 200_000))
    (tree / "video.bin").write_bytes(random_bytes(2 * 1024 * 1024, 5))
    done = pc.run("backup", tree, expect=8)
    assert "quota" in done.err and org.name in done.err
    assert [s["id"] for s in pc.json("snapshots")] == [first["snapshot_id"]]
    assert pc.json("check")["ok"]
    (tree / "video.bin").unlink()
    pc.json("restore", first["snapshot_id"], "--target", tmp_path / "out")
    got, want = manifest(restored(tmp_path / "out", tree)), manifest(tree)
    assert got.pop(b".").mtime_ns != want.pop(b".").mtime_ns  # the folder changed since
    assert got == want
