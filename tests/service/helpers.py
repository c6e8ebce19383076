"""Drive a real ``cairn run`` process and the ``cairn`` CLI against temporary folders."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.api import schemas as s
from agent.api.client import AgentClient, ServiceNotRunning
from agent.service import config as cfgmod

ROOT = Path(__file__).resolve().parents[2]
PASSPHRASE = "correct horse battery staple 7391"


def wait_for(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1,
             what: str = "a condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


@dataclass
class Agent:
    """An agent home with its config, and (once started) its service process."""

    home: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    system: bool = False

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.passfile = self.home.parent / f"{self.home.name}-passphrase"
        self.passfile.write_text(PASSPHRASE + "\n")
        self.passfile.chmod(0o600)
        base = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
        base["PYTHONPATH"] = str(ROOT)
        if self.system:
            base["STATE_DIRECTORY"] = str(self.home)
        else:
            base["CAIRN_HOME"] = str(self.home)
        base["CAIRN_SECRET_STORE"] = "file"
        # The simulated clock (offset 0 unless a test moves it) also makes the scheduler
        # tick every 0.5 s instead of 5 s, so tests do not wait for ticks.
        self.clock = self.home.parent / f"{self.home.name}-clock"
        self.clock.write_text("0")
        base["CAIRN_TEST_CLOCK_FILE"] = str(self.clock)
        self.env = {**base, **self.env}

    # --- CLI ----------------------------------------------------------------------------

    def cli(self, *args: str, check: bool = True, env: dict | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
        words = list(args)
        if self.system:  # the service commands take --system after their (sub)command
            words.insert(2 if words[0] in ("sets", "config") else 1, "--system")
        argv = [sys.executable, "-m", "agent.cli", *words]
        done = subprocess.run(argv, env={**self.env, **(env or {})}, capture_output=True,
                              text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"cairn {' '.join(args)} exited {done.returncode}:\n"
                                 f"{done.stdout}\n{done.stderr}")
        return done

    def add_set(self, name: str, *paths: Path, dest: Path, every: str = "1h",
                extra: tuple[str, ...] = ()) -> None:
        self.cli("sets", "add", name, *map(str, paths), "--dest", str(dest), "--every", every,
                 "--passphrase-file", str(self.passfile), *extra)

    def config_set(self, key: str, value: str) -> None:
        """Change a setting in-process (``cairn config set`` itself is tested on its own)."""
        path = self.home / "config.toml"
        cfgmod.save(cfgmod.set_value(cfgmod.load(path), key, value), path)

    # --- the service --------------------------------------------------------------------

    def start(self, env: dict | None = None, wait: bool = True) -> subprocess.Popen:
        self.config_set("service.nice", "0")
        argv = [sys.executable, "-m", "agent.cli", "run"] + (["--system"] if self.system else [])
        self.log = open(self.home.parent / f"{self.home.name}-run.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(argv, env={**self.env, **(env or {})}, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        if wait:
            wait_for(self._answers, 30, what="the service to answer")
        return self.proc

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"cairn run exited {self.proc.returncode}: {self.output()}")
        try:
            with self.client() as client:
                client.version()
            return True
        except ServiceNotRunning:
            return False

    def output(self) -> str:
        return (self.home.parent / f"{self.home.name}-run.log").read_text(errors="replace")

    def client(self, timeout: float = 30.0) -> AgentClient:
        return AgentClient.for_home(self.home, timeout)

    def status(self) -> s.Status:
        with self.client() as client:
            return client.status()

    def set_status(self, name: str) -> s.SetStatus:
        return next(x for x in self.status().sets if x.name == name)

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self.proc = None
        self.log.close()
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    # --- runs ---------------------------------------------------------------------------

    def last_seq(self) -> int:
        with self.client() as client:
            return client.events(0, 0)[1]

    def wait_run(self, name: str, after: int, timeout: float = 60.0,
                 result: str | None = "success") -> s.RunSummary:
        """Wait for the ``run-finished`` event of ``name`` after event ``after``."""
        deadline = time.monotonic() + timeout
        with self.client(timeout=timeout + 15) as client:
            while time.monotonic() < deadline:
                events, after = client.events(after, 5)
                for e in events:
                    if e.type == "run-finished" and e.data.get("set") == name:
                        summary = self.set_status(name).last_run
                        assert summary is not None
                        if result is not None:
                            assert summary.result == result, (summary, self.output())
                        return summary
        raise AssertionError(f"no run of {name} finished in {timeout} s:\n{self.output()}")

    def backup_now(self, name: str, timeout: float = 60.0) -> s.RunSummary:
        after = self.last_seq()
        with self.client() as client:
            assert name in client.backup_now(name).sets
        return self.wait_run(name, after, timeout)


def make_tree(root: Path, dirs: int, files: int, size: int = 100) -> list[Path]:
    """``dirs`` folders of ``files`` small files each; returns the folders."""
    made = []
    for d in range(dirs):
        folder = root / f"d{d:03}"
        folder.mkdir(parents=True, exist_ok=True)
        for f in range(files):
            (folder / f"f{f:03}.txt").write_bytes(f"{d}/{f} ".encode() * (size // 8 + 1))
        made.append(folder)
    return made
