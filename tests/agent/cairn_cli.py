"""Runs the real ``cairn`` command in a subprocess, the way a user or a script would.

Every run checks the one rule that holds for all commands: a user error is a
sentence, never a Python traceback or an "internal error".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


def cairn_command() -> list[str]:
    """The installed ``cairn`` console script next to this Python, else ``python -m``."""
    script = Path(sys.executable).parent / "cairn"
    return [str(script)] if script.exists() else [sys.executable, "-m", "agent.cli"]


@dataclass
class Result:
    args: Sequence[str]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> object:
        """stdout parsed as exactly one JSON document (nothing else may be printed)."""
        return json.loads(self.stdout)


@dataclass
class Cairn:
    """One agent home and one archive destination; ``run`` adds ``--dest`` for you."""

    home: Path
    dest: Path
    passphrase: str = "correct horse battery staple"
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self, passphrase: str | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
        env.update(CAIRN_HOME=str(self.home), CAIRN_PASSPHRASE=passphrase or self.passphrase,
                   **self.extra_env)
        return env

    def run(self, *args: str | os.PathLike, expect: int | None = 0, dest: Path | None = None,
            passphrase: str | None = None, env: dict[str, str] | None = None,
            preexec_fn: Callable[[], None] | None = None, timeout: float = 120) -> Result:
        """Run ``cairn ARGS --dest DEST``; assert the exit code (unless ``expect`` is None)."""
        argv = [*cairn_command(), *map(os.fsdecode, args), "--dest", str(dest or self.dest)]
        proc = subprocess.run(argv, env={**self.env(passphrase), **(env or {})},
                              capture_output=True, text=True, errors="surrogateescape",
                              preexec_fn=preexec_fn, timeout=timeout, stdin=subprocess.DEVNULL)
        result = Result(argv, proc.returncode, proc.stdout, proc.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        assert "internal error" not in result.stderr, result.stderr
        if expect is not None:
            assert result.returncode == expect, (
                f"cairn {' '.join(argv[1:])} exited {result.returncode}, expected {expect}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}")
        return result

    def json(self, *args: str | os.PathLike, expect: int | None = 0, **kwargs) -> object:
        """Run with ``--json`` and return the parsed output."""
        return self.run(*args, "--json", expect=expect, **kwargs).json()

    def backup(self, *paths: Path, expect: int | None = 0, **kwargs) -> dict:
        return self.json("backup", *paths, expect=expect, **kwargs)

    def restore(self, snapshot: str, target: Path, *includes: str, expect: int | None = 0,
                **kwargs) -> dict:
        args: list[str | os.PathLike] = ["restore", snapshot, "--target", target]
        for path in includes:
            args += ["--include", path]
        return self.json(*args, expect=expect, **kwargs)

    def snapshots(self, **kwargs) -> list[dict]:
        return self.json("snapshots", **kwargs)

    def check(self, *, read_data: bool = False, expect: int | None = 0, **kwargs) -> dict:
        args = ["check", "--read-data"] if read_data else ["check"]
        return self.json(*args, expect=expect, **kwargs)

    def data_packs(self) -> dict[str, Path]:
        """The archive's data packs (name → path), read straight from the folder."""
        folder = self.dest / "data"
        return {p.name: p for p in folder.glob("*/*")} if folder.is_dir() else {}
