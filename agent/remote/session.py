"""A registered agent's working link to its server, built once per command.

It ties together the profile and secrets (agent.credentials), the HTTP client,
the archive as a destination (paced when limited, retried, small reads served
from cached windows: agent.dest.*), and the archive key. ``agent.cli.Context``
(and the service) use it whenever the agent is registered and no ``--dest`` is
given.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from agent.archive.repository import Repository
from agent.config import AgentPaths
from agent.credentials import Profile, SecretStore
from agent.dest.readcache import WindowedReads
from agent.dest.retry import INTERACTIVE, RetryingDestination, retrying
from agent.dest.server import ServerDestination
from agent.dest.throttle import RateLimiter
from agent.errors import CairnError, DeviceNotAuthorized
from agent.model.snapshot import Snapshot
from agent.remote.http import ServerClient, ServerConfig
from agent.remote.keylevels import AskPassword, KeyManager

UPLOADERS = 4  # concurrent pack uploads; one keep-alive connection each
CONNECTIONS = 8  # pool size: uploads plus index, lock and restore reads
log = logging.getLogger("cairn.remote")


class RemoteSession:
    """Client, destination and key manager of a registered agent."""

    def __init__(self, paths: AgentPaths, profile: Profile, store: SecretStore,
                 ask_password: AskPassword, rate: int | None = None) -> None:
        token = store.get("device-token")
        if not token:
            raise DeviceNotAuthorized(
                f"This computer's device token is missing from {store.where}; run `cairn "
                "register` again (or `cairn replace-device` for a new computer).")
        self.paths, self.profile, self.store = paths, profile, store
        config = ServerConfig(profile.url, profile.pin_sha256, connections=CONNECTIONS)
        self.client = ServerClient(config, token)
        pace = RateLimiter(rate).take if rate else None
        server = ServerDestination(self.client, paths.home / "staging", pace)
        server.clean_staging()
        self.dest = WindowedReads(RetryingDestination(server))
        self.keys = KeyManager(self.client, self.dest, store, ask_password)

    def open_repo(self) -> Repository:
        """The user's archive on the server, with this device's copy of its key."""
        status = self.keys.status()
        if status.below_policy:
            print(f"cairn: warning: your organization now requires the {status.required_level} "
                  f"key level; run `cairn key set-level {status.required_level}`.",
                  file=sys.stderr)
        keys = self.keys.keys(status)
        if (status.level, status.archive_key_id) != (self.profile.key_level,
                                                     self.profile.archive_key_id):
            self.profile = self.profile.with_key(status.level or "", keys.archive_id)
            self.profile.save(self.paths.home)
        return Repository(self.dest, keys, self.paths.cache)

    def backup_fields(self) -> dict[str, Any]:
        """BackupOptions fields for a backup to the server."""
        return {"device": self.profile.device_guid, "username": self.profile.username,
                "uploaders": UPLOADERS}

    def selection(self, snapshots: list[Snapshot]) -> list[Path]:
        """The paths of this device's newest snapshot (its backup selection) that exist here.

        After ``replace-device`` this is the replaced computer's selection.
        """
        mine = [s for s in snapshots if s.device == self.profile.device_guid]
        paths = [Path(p) for p in mine[0].paths] if mine else []
        for gone in [p for p in paths if not p.exists()]:
            print(f"cairn: warning: {gone} (in this device's backup selection) does not exist "
                  "on this computer; skipped.", file=sys.stderr)
        return [p for p in paths if p.exists()]

    def report_backup(self, snapshot: Snapshot) -> None:
        """Tell the server a backup completed; a failure is only a warning."""
        try:
            retrying(lambda: self.client.request(
                "POST", "/api/v1/device/backup-completed",
                json={"completed_at": snapshot.time}), INTERACTIVE, "reporting the backup")
        except CairnError as exc:
            log.warning("could not report backup %s: %s", snapshot.id[:8], exc)
            print(f"cairn: warning: the snapshot is stored, but reporting it to the server "
                  f"failed: {exc}", file=sys.stderr)

    def close(self) -> None:
        self.client.close()


def open_session(paths: AgentPaths, secret_mode: str, ask_password: AskPassword,
                 rate: int | None) -> RemoteSession | None:
    """The session of a registered agent; None when this agent home is not registered."""
    profile = Profile.load(paths.home)
    if profile is None:
        return None
    return RemoteSession(paths, profile, SecretStore(paths.home, secret_mode), ask_password,
                         rate)
