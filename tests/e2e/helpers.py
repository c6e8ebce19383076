"""Driving a real ``cairn-server`` process and real ``cairn`` agents (subprocesses) together.

Each ``Agent`` is one computer: its own agent home (``CAIRN_HOME``), secrets
kept in files (``CAIRN_SECRET_STORE=file``, there is no OS keyring here).
``Agent.run`` asserts that no command ever prints a traceback.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sqlite3
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.agent.cairn_cli import cairn_command
from tests.server.helpers import ServerProcess, start_server_process

PASSWORD = "correct horse battery"
ARCHIVE_PASSWORD = "archive secret passphrase"


def launch_server(data: Path, port: int | None = None, *extra: str,
                  env: dict[str, str] | None = None) -> ServerProcess:
    """Start ``cairn-server serve`` on ``port`` (default: a free one); wait until it answers."""
    return start_server_process(data, "--log-level", "warning", *extra, env=env, port=port)


@dataclass
class Org:
    server: ServerProcess
    id: str
    name: str
    key: str

    def cli(self, *args: str) -> Any:
        done = self.server.cli(*args)
        assert done.code == 0, done.err
        return done


def make_org(server: ServerProcess, **limits: str) -> Org:
    name = f"Org {secrets.token_hex(4)}"
    extra = [arg for key, value in limits.items() for arg in (f"--{key}", value)]
    made = server.cli("org", "create", name, *extra, "--json")
    assert made.code == 0, made.err
    doc = made.json()
    return Org(server, doc["id"], name, doc["registration_key"])


def user_name() -> str:
    return f"user-{secrets.token_hex(5)}@example.test"


@dataclass
class Result:
    args: Sequence[str]
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Agent:
    """One computer running the real ``cairn`` CLI."""

    home: Path
    env: dict[str, str] = field(default_factory=dict)

    def environ(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
        env.update({"CAIRN_HOME": str(self.home), "CAIRN_SECRET_STORE": "file",
                    "CAIRN_PASSWORD": PASSWORD, **self.env, **(extra or {})})
        return env

    def start(self, *args: str | os.PathLike, env: dict[str, str] | None = None
              ) -> subprocess.Popen[str]:
        return subprocess.Popen([*cairn_command(), *map(os.fsdecode, args)],
                                env=self.environ(env), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                errors="surrogateescape")

    def run(self, *args: str | os.PathLike, expect: int | None = 0,
            env: dict[str, str] | None = None, timeout: float = 300) -> Result:
        proc = self.start(*args, env=env)
        out, err = proc.communicate(timeout=timeout)
        return check(Result(list(map(os.fsdecode, args)), proc.returncode, out, err), expect)

    def json(self, *args: str | os.PathLike, **kwargs: Any) -> Any:
        return self.run(*args, "--json", **kwargs).json()

    def register(self, org: Org, username: str, *extra: str, expect: int | None = 0,
                 env: dict[str, str] | None = None, url: str | None = None) -> Result:
        return self.run("register", "--server", url or org.server.url, "--registration-key",
                        org.key, "--username", username, *extra, expect=expect, env=env)

    def profile(self) -> dict[str, Any]:
        return json.loads((self.home / "server.json").read_text())

    @property
    def guid(self) -> str:
        return str(self.profile()["device_guid"])


def check(result: Result, expect: int | None) -> Result:
    assert "Traceback" not in result.err, result.err
    assert "internal error" not in result.err, result.err
    if expect is not None:
        assert result.code == expect, (
            f"cairn {' '.join(result.args)} exited {result.code}, expected {expect}\n"
            f"stdout: {result.out}\nstderr: {result.err}")
    return result


def finish(proc: subprocess.Popen[str], args: Sequence[str], expect: int | None = 0,
           timeout: float = 300) -> Result:
    out, err = proc.communicate(timeout=timeout)
    return check(Result(list(args), proc.returncode, out, err), expect)


def stored_packs(server: ServerProcess) -> dict[str, int]:
    """Data packs in the server's filesystem store (all archives), name → size."""
    root = server.data / "storage" / "objects"
    return {p.name: p.stat().st_size for p in root.glob("*/data/*/*") if p.is_file()}


def wait_for(condition: Any, timeout: float = 120, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def kill9(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)


def db_row(server: ServerProcess, sql: str, *args: str) -> tuple | None:
    """One row from the server's SQLite database (opened read-only)."""
    db = sqlite3.connect(f"file:{server.data / 'cairn.sqlite3'}?mode=ro", uri=True)
    try:
        return db.execute(sql, args).fetchone()
    finally:
        db.close()
