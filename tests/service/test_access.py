"""Who may use the API (peer credentials, loopback token), and the support bundle."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.service.helpers import PASSPHRASE, Agent, make_tree

NOBODY = 65534
REQUEST = b"GET /v1/status HTTP/1.1\r\nHost: cairn\r\nContent-Length: 0\r\n\r\n"

needs_root = pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0,
                                reason="switching to another uid needs root")


def _probe_as(uid: int, socket_path: Path) -> str:
    """As ``uid`` (a forked child that setuid()s): the status line of a raw API request."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no Python-level cleanup, just the probe
        try:
            os.setgid(uid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX) as sock:
                try:
                    sock.connect(str(socket_path))
                    sock.sendall(REQUEST)
                    answer = sock.recv(65536).split(b"\r\n")[0]
                except OSError as exc:
                    answer = f"connect failed: {exc.strerror}".encode()
            os.write(write_end, answer)
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read().decode()
    os.waitpid(pid, 0)
    return answer


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder other users can traverse (pytest's own temp folders are private)."""
    path = Path(tempfile.mkdtemp(prefix="cairn-system-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@needs_root
def test_system_service_refuses_other_users_by_peer_credentials(open_dir: Path) -> None:
    agent = Agent(open_dir / "state", system=True)
    agent.start()
    try:
        sock = open_dir / "state" / "agent.sock"
        assert oct(sock.stat().st_mode & 0o777) == "0o666"  # reachable; credentials decide
        assert _probe_as(NOBODY, sock) == "HTTP/1.1 403 Forbidden"
        assert agent.status().mode == "system"  # root is allowed
        assert "Refused an API request from uid 65534" in agent.output()
        agent.config_set("api.allowed_users", "nobody")
        agent.stop()
        agent.start()
        assert _probe_as(NOBODY, sock) == "HTTP/1.1 200 OK"
    finally:
        agent.stop()


@needs_root
def test_user_service_socket_is_private(open_dir: Path) -> None:
    agent = Agent(open_dir / "home")
    agent.start()
    try:
        assert _probe_as(NOBODY, open_dir / "home" / "agent.sock").startswith("connect failed")
    finally:
        agent.stop()


def test_loopback_transport_needs_the_token(tmp_path: Path) -> None:
    agent = Agent(tmp_path / "home")
    agent.config_set("api.transport", "tcp")
    agent.start()
    try:
        endpoint = json.loads((agent.home / "api.json").read_text())
        assert endpoint["transport"] == "tcp" and endpoint["host"] == "127.0.0.1"
        token_file = Path(endpoint["token_file"])
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"
        assert agent.status().state == "idle"  # the client sends the token
        url = f"http://127.0.0.1:{endpoint['port']}/v1/status"
        token = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(url, headers={**token, "Origin": "http://evil.example"}
                         ).status_code == 403
        assert httpx.get(url, headers={**token, "Host": "evil.example"}).status_code == 403
        assert httpx.get(url, headers=token).status_code == 200
    finally:
        agent.stop()


def test_a_support_bundle_that_cannot_be_written_is_a_sentence(tmp_path: Path) -> None:
    agent = Agent(tmp_path / "home")
    (tmp_path / "a-file").write_text("not a folder")
    done = agent.cli("support-bundle", "--out", str(tmp_path / "a-file" / "b.zip"),
                     check=False)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("cairn: Cannot write the support bundle")
    assert "internal error" not in done.stderr


def test_support_bundle_has_what_support_needs_and_no_secrets(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, 2, 2)
    marker = "FILE-CONTENT-MARKER-2c9f1e"
    (src / "private.txt").write_text(marker)
    agent = Agent(tmp_path / "home", env={"CAIRN_PASSPHRASE": "env-secret-4b7d0a"})
    agent.add_set("docs", src, dest=tmp_path / "archive")
    agent.config_set("service.log_level", "debug")
    agent.start()
    try:
        agent.wait_run("docs", 0)
        out = tmp_path / "bundle.zip"
        done = agent.cli("support-bundle", "--out", str(out), "--description",
                         "Backups stopped after I moved my files")
        assert str(out) in done.stdout
    finally:
        agent.stop()
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        text = {n: zf.read(n).decode() for n in names}
    for item in ("manifest.json", "config.toml", "status.json", "errors.txt",
                 "description.txt", "logs/service.log"):
        assert item in names, names
    manifest = json.loads(text["manifest.json"])
    for key in ("product", "agent_version", "os", "os_release", "device_id", "username",
                "destinations", "hosted_server"):
        assert manifest[key] not in (None, ""), key
    assert manifest["device_id"] == (agent.home / "device-guid").read_text().strip()
    assert manifest["destinations"] == [{"set": "docs", "type": "local folder"}]
    assert manifest["service_running"] is True
    assert "moved my files" in text["description.txt"]
    assert 'passphrase_file = "<redacted>"' in text["config.toml"]
    assert "Set docs backed up" in text["logs/service.log"]
    blob = "\n".join(text.values())
    for secret in (PASSPHRASE, "env-secret-4b7d0a", str(agent.passfile), marker):
        assert secret not in blob
