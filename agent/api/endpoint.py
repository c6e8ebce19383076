"""How a client finds and authenticates to the running service: ``api.json`` in the agent home.

``{"transport": "unix", "socket": PATH, "pid": N, "api_version": 1}`` on Linux and
macOS; ``{"transport": "tcp", "host": "127.0.0.1", "port": N, "token_file":
PATH, ...}`` on Windows (or when ``api.transport = "tcp"``), where every request
carries ``Authorization: Bearer TOKEN`` read from the token file, which only the
service's user can read. The service rewrites both files at every start and
removes ``api.json`` when it stops.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import platformdirs

ENDPOINT_FILE = "api.json"


def system_home(env: Mapping[str, str]) -> Path:
    """The system-wide agent home: the service manager's state folder, else the platform's."""
    state = env.get("STATE_DIRECTORY")
    if state:
        return Path(state.split(":")[0])
    if os.name == "nt":
        return Path(env.get("PROGRAMDATA", r"C:\ProgramData")) / "Cairn"
    if sys.platform == "darwin":
        return Path("/Library/Application Support/Cairn")
    return Path("/var/lib/cairn")


def default_home(env: Mapping[str, str], system: bool = False) -> Path:
    """The agent home a client should look in (same rule as ``agent.config.AgentPaths``)."""
    if system:
        return system_home(env)
    home = env.get("CAIRN_HOME") or platformdirs.user_data_dir("cairn", "Cairn")
    return Path(home).expanduser().absolute()


@dataclass(frozen=True)
class Endpoint:
    transport: str  # "unix" or "tcp"
    socket: str = ""
    host: str = ""
    port: int = 0
    token_file: str = ""
    pid: int = 0
    api_version: int = 1

    def write(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)

    @classmethod
    def read(cls, path: Path) -> Endpoint | None:
        """The endpoint in ``path``, or None when no service has published one."""
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{k: v for k, v in doc.items() if k in cls.__dataclass_fields__})
        except (OSError, ValueError, TypeError):
            return None

    def token(self) -> str:
        if not self.token_file:
            return ""
        try:
            return Path(self.token_file).read_text(encoding="ascii").strip()
        except OSError:
            return ""
