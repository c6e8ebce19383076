"""Where the agent keeps its state, read once from the environment at start-up.

``CAIRN_HOME`` selects the agent's state folder; the default is the platform's
per-user data folder (platformdirs): ``~/.local/share/cairn`` on Linux,
``%LOCALAPPDATA%\\Cairn\\cairn`` on Windows, ``~/Library/Application Support/cairn``
on macOS. Below it: ``cache/`` (index caches, one folder per archive, safe to
delete), ``logs/``, and ``archive/``, the default local destination when no
``--dest`` is given.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs


@dataclass(frozen=True)
class AgentPaths:
    home: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> AgentPaths:
        home = env.get("CAIRN_HOME") or platformdirs.user_data_dir("cairn", "Cairn")
        return cls(Path(home).expanduser().absolute())

    @property
    def cache(self) -> Path:
        return self.home / "cache"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def default_destination(self) -> Path:
        return self.home / "archive"
