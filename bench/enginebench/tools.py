"""Drivers for the backup tools under test: the command lines each phase runs.

Every driver keeps its repository, cache and state in its own folder under the
run's work folder, so each run starts cold and nothing leaks between tools. A
driver only builds commands; the runner times them. To benchmark Cairn against a
Cairn server later, add a driver whose `dest` is the server URL and whose
`stored_bytes` asks the server: nothing else needs to change.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .measure import Command, tree_bytes

# Not a secret: it protects throw-away benchmark repositories.
PASSPHRASE = "cairn-bench-passphrase"


@functools.cache
def _first_line_version(*argv: str) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True)
    match = re.search(r"\d+\.\d+(\.\d+)?", done.stdout + done.stderr)
    return match.group(0) if match else "unknown"


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


class Tool:
    """Base driver: a name, a repository folder and the commands of each phase."""

    name = "tool"

    def __init__(self, workdir: Path) -> None:
        self.home = workdir / self.name
        self.repo = self.home / "repo"

    def missing(self) -> str | None:
        """A sentence saying how to install the tool, or None when it is usable."""
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError

    def settings(self) -> str:
        """The settings that matter for comparing results (compression, encryption)."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Untimed set-up before the first phase (none for most tools)."""

    def init_command(self) -> Command | None:
        """The untimed command that creates the repository, if the tool needs one."""
        return None

    def backup_command(self, source: Path, run: int) -> Command:
        raise NotImplementedError

    def restore_command(self, target: Path) -> Command:
        raise NotImplementedError

    def parse_report(self, stdout: str) -> dict[str, object]:
        """What the tool itself reported about a phase (empty when not parsed)."""
        return {}

    def stored_bytes(self) -> int:
        """Bytes the repository occupies."""
        return tree_bytes(self.repo)


class Restic(Tool):
    name = "restic"

    def missing(self) -> str | None:
        if shutil.which("restic") is None:
            return "restic is not installed: run `apt-get install restic` (Debian/Ubuntu)."
        return None

    def version(self) -> str:
        return _first_line_version("restic", "version")

    def _compressed(self) -> bool:
        return _version_tuple(self.version()) >= (0, 14)

    def settings(self) -> str:
        if self._compressed():
            return "repository v2, --compression auto (zstd), AES-256-CTR + Poly1305"
        return "restic < 0.14: no compression available, AES-256-CTR + Poly1305"

    def _base(self) -> list[str]:
        return ["restic", "--repo", str(self.repo), "--cache-dir", str(self.home / "cache"),
                "--quiet"]

    def _env(self) -> dict[str, str]:
        return {"RESTIC_PASSWORD": PASSPHRASE}

    def init_command(self) -> Command:
        version_args = ["--repository-version", "2"] if self._compressed() else []
        return Command([*self._base(), "init", *version_args], self._env())

    def backup_command(self, source: Path, run: int) -> Command:
        compression = ["--compression", "auto"] if self._compressed() else []
        return Command([*self._base(), *compression, "backup", str(source)], self._env())

    def restore_command(self, target: Path) -> Command:
        return Command([*self._base(), "restore", "latest", "--target", str(target)],
                       self._env())


def _has_sha_instructions() -> bool:
    try:
        with open("/proc/cpuinfo") as fh:
            return " sha_ni" in fh.read()
    except OSError:
        return False


class Borg(Tool):
    name = "borg"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.last_archive = ""
        # borg's own advice: HMAC-SHA256 ('repokey') is faster where the CPU has SHA
        # instructions, BLAKE2b ('repokey-blake2') everywhere else.
        self.encryption = "repokey" if _has_sha_instructions() else "repokey-blake2"

    def missing(self) -> str | None:
        if shutil.which("borg") is None:
            return "borg is not installed: run `apt-get install borgbackup` (Debian/Ubuntu)."
        if _version_tuple(self.version())[:1] != (1,):
            return f"borg {self.version()} is installed; this benchmark drives borg 1.x only."
        return None

    def version(self) -> str:
        return _first_line_version("borg", "--version")

    def settings(self) -> str:
        return f"--compression zstd,3, encryption {self.encryption}"

    def _env(self) -> dict[str, str]:
        return {"BORG_PASSPHRASE": PASSPHRASE, "BORG_BASE_DIR": str(self.home / "base")}

    def init_command(self) -> Command:
        return Command(["borg", "init", "--encryption", self.encryption, str(self.repo)],
                       self._env())

    def backup_command(self, source: Path, run: int) -> Command:
        self.last_archive = f"run{run}"
        return Command(["borg", "create", "--compression", "zstd,3",
                        f"{self.repo}::{self.last_archive}", str(source)], self._env())

    def restore_command(self, target: Path) -> Command:
        return Command(["borg", "extract", f"{self.repo}::{self.last_archive}"], self._env(),
                       cwd=target)


class Cairn(Tool):
    name = "cairn"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.exe = Path(sys.executable).parent / "cairn"
        self.dest = str(self.repo)

    def missing(self) -> str | None:
        if not self.exe.exists():
            return (f"Cairn's CLI is not installed next to {sys.executable}: run the benchmark "
                    "with the project's .venv/bin/python (`python3 dev.py test --co -q` "
                    "creates it).")
        probe = subprocess.run([str(self.exe), "backup", "--help"], capture_output=True,
                               text=True)
        if probe.returncode != 0:
            last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
            return f"Cairn's CLI at {self.exe} does not work (`cairn backup --help`: {last})."
        return None

    def prepare(self) -> None:
        """Byte-compile Cairn's modules, as ``pip install`` does for an installed package.

        The development checkout is an editable install, which is never compiled, and
        with PYTHONDONTWRITEBYTECODE set every run would compile its modules again.
        """
        import agent

        subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(agent.__file__).parent)],
                       check=True, stdout=subprocess.DEVNULL)

    def version(self) -> str:
        try:
            return importlib.metadata.version("cairn")
        except importlib.metadata.PackageNotFoundError:
            return "unknown"

    def settings(self) -> str:
        return "its defaults (zstd, AES-256-GCM, ~1 MiB FastCDC chunks)"

    def _env(self) -> dict[str, str]:
        return {"CAIRN_PASSPHRASE": PASSPHRASE, "CAIRN_HOME": str(self.home / "state")}

    def backup_command(self, source: Path, run: int) -> Command:
        return Command([str(self.exe), "backup", str(source), "--dest", self.dest, "--json"],
                       self._env())

    def restore_command(self, target: Path) -> Command:
        return Command([str(self.exe), "restore", "latest", "--target", str(target),
                        "--dest", self.dest, "--json"], self._env())

    def parse_report(self, stdout: str) -> dict[str, object]:
        lines = [line for line in stdout.strip().splitlines() if line.strip()]
        for text in (stdout, *(reversed(lines))):
            try:
                report = json.loads(text)
            except ValueError:
                continue
            if isinstance(report, dict):
                return report
        return {}


DRIVERS: dict[str, type[Tool]] = {"cairn": Cairn, "restic": Restic, "borg": Borg}
