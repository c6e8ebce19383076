"""Where the service keeps its files, per user or system-wide.

Per user, the agent home is ``agent.config.AgentPaths`` (``CAIRN_HOME`` or the
platform's per-user data folder). System-wide (``--system``) it is the service
manager's state folder when it passes one (systemd's ``STATE_DIRECTORY``), else
``/var/lib/cairn``, ``%ProgramData%\\Cairn`` or ``/Library/Application
Support/Cairn``; logs go to ``LOGS_DIRECTORY`` when given.

Inside the home: ``config.toml``, ``device-guid``, ``agent.sock`` (the control
socket) and ``api.json`` (how to reach the API), ``api-token`` (TCP transport
only), ``service/`` (state and change journals), ``cache/`` and ``logs/``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from agent.api.endpoint import system_home
from agent.config import AgentPaths
from agent.credentials import device_guid
from agent.errors import UsageError


@dataclass(frozen=True)
class ServiceLayout:
    home: Path
    logs: Path
    system: bool = False

    @classmethod
    def for_user(cls, paths: AgentPaths) -> ServiceLayout:
        return cls(paths.home, paths.logs)

    @classmethod
    def for_system(cls, env: Mapping[str, str]) -> ServiceLayout:
        home = system_home(env)
        logs = env.get("LOGS_DIRECTORY")
        return cls(home, Path(logs.split(":")[0]) if logs else home / "logs", system=True)

    @property
    def mode(self) -> str:
        return "system" if self.system else "user"

    @property
    def config_file(self) -> Path:
        return self.home / "config.toml"

    @property
    def state_dir(self) -> Path:
        return self.home / "service"

    @property
    def journal_dir(self) -> Path:
        return self.state_dir / "journal"

    @property
    def cache(self) -> Path:
        return self.home / "cache"

    @property
    def default_destination(self) -> Path:
        return self.home / "archive"

    @property
    def socket(self) -> Path:
        return self.home / "agent.sock"

    @property
    def endpoint_file(self) -> Path:
        return self.home / "api.json"

    @property
    def token_file(self) -> Path:
        return self.home / "api-token"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "service.lock"

    def device_id(self) -> str:
        """This device's GUID (``agent.credentials``; created on first use)."""
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            return device_guid(self.home)
        except OSError as exc:
            raise UsageError(f"Cannot keep the device GUID in {self.home}: "
                             f"{exc.strerror}.") from exc

    def prepare(self) -> None:
        """Create the folders; a system home stays traversable so users reach the socket."""
        for folder in (self.home, self.state_dir, self.journal_dir, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        if os.name != "nt":
            os.chmod(self.home, 0o755 if self.system else 0o700)
            os.chmod(self.state_dir, 0o700)
