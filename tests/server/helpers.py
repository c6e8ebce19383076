"""Helpers for driving a real ``cairn-server`` process over HTTP and its CLI."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from server.cli import main as cli_main

AGENT_VERSION = "1.0.0"
START_TIMEOUT_S = 90.0
PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run_cli(*args: str, stdin: str = "") -> CliResult:
    """Run ``cairn-server ARGS`` in this process (fast; same code as the console script)."""
    out, err = io.StringIO(), io.StringIO()
    saved, sys.stdin = sys.stdin, io.StringIO(stdin)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = cli_main(list(args))
    finally:
        sys.stdin = saved
    return CliResult(code, out.getvalue(), err.getvalue())


def cli_command() -> list[str]:
    script = Path(sys.executable).parent / "cairn-server"
    return [str(script)] if script.exists() else [sys.executable, "-m", "server"]


def run_cli_process(*args: str, stdin: str = "", env: dict[str, str] | None = None,
                    ) -> subprocess.CompletedProcess[str]:
    """Run the real ``cairn-server`` console script as a separate process."""
    return subprocess.run([*cli_command(), *args], input=stdin, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


@dataclass
class ServerProcess:
    url: str
    data: Path
    proc: subprocess.Popen[bytes]
    log: Path
    http: httpx.Client = field(repr=False)
    locations: tuple[str, ...] = ()

    def cli(self, *args: str, stdin: str = "") -> CliResult:
        """The admin CLI (in this process) on this server's data."""
        return run_cli(*args, "--data", str(self.data), *self.locations, stdin=stdin)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_server_process(data: Path, *extra: str, env: dict[str, str] | None = None,
                         port: int | None = None) -> ServerProcess:
    """Start ``cairn-server serve`` on ``port`` (default: a free loopback port); wait for it."""
    port = port or free_port()
    scheme = "https" if "--tls-cert" in extra else "http"
    url = f"{scheme}://127.0.0.1:{port}"
    log = data.parent / f"{data.name}-server-{port}-{secrets.token_hex(2)}.log"
    cmd = [*cli_command(), "serve", "--data", str(data), "--port", str(port),
           "--purge-interval", "0", *extra]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})})
    http = httpx.Client(base_url=url, timeout=60, verify=False)
    locations = [pair for pair in itertools.pairwise(extra)
                 if pair[0] in ("--db", "--storage")]
    server = ServerProcess(url, data, proc, log, http, tuple(x for p in locations for x in p))
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"cairn-server exited with {proc.returncode}:\n"
                                 f"{server.log_text()[-4000:]}")
        try:
            if http.get("/api/v1/health").status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    server.stop()
    raise AssertionError(f"cairn-server did not answer within {START_TIMEOUT_S} s:\n"
                         f"{server.log_text()[-4000:]}")


@dataclass
class Device:
    """A registered device: its token and ids, and requests signed with its token."""

    server: ServerProcess
    token: str
    device_id: str
    user_id: str
    org_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Cairn-Agent-Version": AGENT_VERSION}

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.server.http.request(method, path, headers=headers, **kwargs)

    def put(self, kind: str, data: bytes) -> str:
        """Upload data; returns its name (asserts success)."""
        name = sha(data)
        response = self.request("PUT", f"/api/v1/archive/objects/{kind}/{name}", content=data)
        assert response.status_code in (200, 201), response.text
        return name

    def names(self, kind: str) -> set[str]:
        response = self.request("GET", f"/api/v1/archive/objects/{kind}")
        assert response.status_code == 200, response.text
        return {o["name"] for o in response.json()["objects"]}


def register(server: ServerProcess, key: str, username: str, password: str = PASSWORD, *,
             guid: str | None = None, version: str = AGENT_VERSION,
             replace: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"registration_key": key, "username": username,
                            "password": password,
                            "device": {"guid": guid or secrets.token_hex(8),
                                       "name": "test-pc", "os": "Linux 6.1"}}
    if replace is not None:
        body["replace_device"] = replace
    return server.http.post("/api/v1/register", json=body,
                            headers={"Cairn-Agent-Version": version})


def register_device(server: ServerProcess, key: str, username: str,
                    password: str = PASSWORD, **kwargs: Any) -> Device:
    response = register(server, key, username, password, **kwargs)
    assert response.status_code == 201, response.text
    body = response.json()
    return Device(server, body["device_token"], body["device_id"], body["user_id"],
                  body["org_id"])


def login(server: ServerProcess, username: str, password: str = PASSWORD) -> dict[str, str]:
    """Authorization headers of a fresh admin API session."""
    response = server.http.post("/api/v1/auth/login",
                                json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


@dataclass
class Tenant:
    """An MSP organization with its registration key and a logged-in MSP admin."""

    server: ServerProcess
    org_id: str
    name: str
    key: str
    admin: str
    auth: dict[str, str]

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.auth, **kwargs.pop("headers", {})}
        return self.server.http.request(method, path, headers=headers, **kwargs)

    def customer(self, name: str | None = None, **limits: Any) -> dict[str, Any]:
        """Create a customer organization under this MSP; returns it with its key."""
        body = {"name": name or f"Customer {secrets.token_hex(3)}", "parent_id": self.org_id,
                **limits}
        response = self.api("POST", "/api/v1/orgs", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def add_admin(self, org_id: str, role: str = "org_admin") -> dict[str, str]:
        """Create an admin in org_id through the API; returns their session headers."""
        username = f"{role}-{secrets.token_hex(4)}@example.test"
        response = self.api("POST", f"/api/v1/orgs/{org_id}/users",
                            json={"username": username, "password": PASSWORD, "role": role})
        assert response.status_code == 201, response.text
        return login(self.server, username)


def make_tenant(server: ServerProcess) -> Tenant:
    name = f"MSP {secrets.token_hex(4)}"
    created = server.cli("org", "create", name, "--json")
    assert created.code == 0, created.err
    org = created.json()
    admin = f"msp-{secrets.token_hex(4)}@example.test"
    made = server.cli("admin", "create", admin, "--org", org["id"], "--password-stdin",
                      stdin=PASSWORD + "\n")
    assert made.code == 0, made.err
    return Tenant(server, org["id"], name, org["registration_key"], admin, login(server, admin))


def user_name() -> str:
    return f"user-{secrets.token_hex(5)}@example.test"
