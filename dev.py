#!/usr/bin/env python3
"""Set up Cairn in a local virtualenv and run its main job or its test suite.

    python3 dev.py backup [PATH ...] [cairn backup options]
    python3 dev.py test [pytest options]

Standard library only: this is what runs on a fresh machine before anything
else is installed. It creates `.venv/`, installs the project (re-installing when
`pyproject.toml` changes), and on Debian-like systems installs the few system
packages the tests need (PostgreSQL for the metadata suite, the X11 client
libraries Qt loads) when run as root.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".cairn-installed"

# Debian packages the test suite uses: a real PostgreSQL server, and the
# libraries Qt's platform plugins load.
TEST_DEB_PACKAGES = [
    "postgresql",
    "libegl1",
    "libgl1",
    "libxkbcommon0",
    "libxkbcommon-x11-0",
    "libfontconfig1",
    "libglib2.0-0",  # QtGui links it (the tray app's tests, offscreen)
    "libdbus-1-3",
    "libxcb-icccm4",
    "libxcb-keysyms1",
    "libxcb-cursor0",
]


def say(message: str) -> None:
    print(f"[dev] {message}", flush=True)


def run(cmd: list[str], **kwargs: object) -> None:
    subprocess.run(cmd, check=True, **kwargs)  # type: ignore[arg-type]


def ensure_venv(extras: str) -> None:
    """Create .venv and install the project with `extras` when anything changed."""
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    if PYTHON.exists() and STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not PYTHON.exists():
        say(f"creating virtualenv in {VENV}")
        run([sys.executable, "-m", "venv", str(VENV)])
    say(f"installing Cairn{extras} and its dependencies (first run takes a minute)")
    run([str(PYTHON), "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    run([str(PYTHON), "-m", "pip", "install", "--quiet", "-e", f".{extras}"], cwd=ROOT)
    STAMP.write_text(wanted)


def missing_deb_packages(names: list[str]) -> list[str]:
    missing = []
    for name in names:
        probe = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True
        )
        if "install ok installed" not in probe.stdout:
            missing.append(name)
    return missing


def ensure_system_packages() -> None:
    """Install the Debian packages the tests need, when we can (root + apt)."""
    if not shutil.which("dpkg-query") or not shutil.which("apt-get"):
        say("not a Debian-like system: install PostgreSQL yourself for the metadata tests")
        return
    missing = missing_deb_packages(TEST_DEB_PACKAGES)
    if not missing:
        return
    if os.geteuid() != 0:
        say("missing system packages (run as root or install them): " + " ".join(missing))
        return
    say("installing system packages: " + " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
    run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], env=env,
        stdout=subprocess.DEVNULL)


def cmd_backup(args: list[str]) -> int:
    ensure_venv("")
    if not any(not a.startswith("-") for a in args):
        documents = Path.home() / "Documents"
        source = documents if documents.is_dir() else Path.cwd()
        say(f"no folder named: backing up {source}")
        args = [str(source), *args]
    return subprocess.call([str(BIN / "cairn"), "backup", *args])


def cmd_test(args: list[str]) -> int:
    ensure_venv("[dev]")
    ensure_system_packages()
    say("ruff check")
    lint = subprocess.call([str(BIN / "ruff"), "check", "--quiet", "."], cwd=ROOT)
    if lint != 0:
        return lint
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    return subprocess.call([str(PYTHON), "-m", "pytest", *args], cwd=ROOT, env=env)


def main() -> int:
    commands = {"backup": cmd_backup, "test": cmd_test}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__)
        return 2
    return commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
