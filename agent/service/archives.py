"""Opening each backup set's archive: destination, passphrase, keys cached per archive.

A set's ``dest`` is a folder (a local disk, an external drive, a network
mount), empty for the agent home's ``archive/``, or ``server`` for the Cairn
server this agent home is registered with (``cairn register``; until then the
set reports "not registered"). Keys are unwrapped once per archive (Argon2id
is deliberately slow) and reused for every run and API call.
"""

from __future__ import annotations

import getpass
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.api.schemas import SnapshotInfo, TreeEntry
from agent.archive.repository import Repository
from agent.codec.keys import ArchiveKeys
from agent.config import AgentPaths
from agent.credentials import Profile
from agent.dest.base import Destination
from agent.dest.local import LocalDestination
from agent.errors import CairnError, UsageError
from agent.model.snapshot import Snapshot
from agent.model.tree import decode_name
from agent.remote.session import RemoteSession, open_session
from agent.scan.walker import path_components
from agent.service.config import ServiceConfig, SetConfig
from agent.service.layout import ServiceLayout
from agent.service.secrets import SECRETS, read_passphrase_file

log = logging.getLogger("cairn.service.archives")


def log_warnings(repo: Repository) -> None:
    """Log what the repository passed over (see ``Repository.warnings``)."""
    for warning in repo.warnings():
        log.warning("%s", warning)

LOCAL, SERVER = "local folder", "cairn server"


class NotRegistered(CairnError):
    exit_code = 10


@dataclass(frozen=True)
class DestSpec:
    kind: str
    path: Path | None  # local folders only
    description: str
    registered: bool = True  # server destinations: this agent home is registered

    def unreachable(self, used_before: bool) -> str:
        """Why a run cannot reach a local destination now ("" when it can).

        A folder that held the set's archive before must still exist: when it does not,
        its drive is unplugged (or unmounted), and recreating it would put the backup on
        the wrong disk. A new destination needs only its parent folder.
        """
        if self.path is None or self.path.is_dir():
            return ""
        if not used_before and self.path.parent.is_dir():
            return ""
        return f"{self.path} is not available (is the drive connected?)"


def dest_spec(cfg: SetConfig, layout: ServiceLayout) -> DestSpec:
    if cfg.dest == "server":
        try:
            profile = Profile.load(layout.home)
        except UsageError:
            profile = None
        if profile is None:
            return DestSpec(SERVER, None, "a Cairn server (not registered)", registered=False)
        return DestSpec(SERVER, None, profile.url)
    path = Path(cfg.dest).expanduser() if cfg.dest else layout.default_destination
    return DestSpec(LOCAL, path, str(path))


class Archives:
    """Opens repositories for sets; thread-safe."""

    def __init__(self, layout: ServiceLayout, env: Mapping[str, str],
                 prompt: Callable[[], str] | None = None) -> None:
        self._layout, self._prompt = layout, prompt
        self._env_passphrase = env.get("CAIRN_PASSPHRASE", "")
        self._archive_password = env.get("CAIRN_ARCHIVE_PASSWORD", "")
        self._secret_mode = env.get("CAIRN_SECRET_STORE", "auto")
        for secret in (self._env_passphrase, self._archive_password):
            if secret:
                SECRETS.add(secret)
        self._keys: dict[str, ArchiveKeys] = {}
        self._session: RemoteSession | None = None
        self._lock = threading.RLock()

    def passphrase(self, cfg: SetConfig, config: ServiceConfig) -> str:
        for file in (cfg.passphrase_file, config.service.passphrase_file):
            if file:
                value = read_passphrase_file(Path(file).expanduser())
                SECRETS.add(value)
                return value
        if self._env_passphrase:
            return self._env_passphrase
        if self._prompt is not None:
            return self._prompt()
        raise UsageError(f"No archive passphrase for set {cfg.name}: set passphrase_file "
                         "(`cairn config set service.passphrase_file FILE`) or start the "
                         "service with CAIRN_PASSPHRASE.")

    # --- the Cairn server -------------------------------------------------------------

    def _server(self) -> RemoteSession:
        with self._lock:
            if self._session is None:
                session = open_session(AgentPaths(self._layout.home), self._secret_mode,
                                       self._ask_archive_password, None)
                if session is None:
                    raise NotRegistered("This computer is not registered with a Cairn server; "
                                        "run `cairn register` first.")
                self._session = session
            return self._session

    def _ask_archive_password(self, _confirm: bool) -> str:
        if not self._archive_password:
            raise UsageError("This server archive is protected by an archive password: start "
                             "the service with CAIRN_ARCHIVE_PASSWORD.")
        return self._archive_password

    def backup_fields(self, cfg: SetConfig) -> dict[str, Any]:
        """BackupOptions fields the destination needs (device and user for the server)."""
        return self._server().backup_fields() if cfg.dest == "server" else {}

    def after_backup(self, cfg: SetConfig, snapshot: Snapshot) -> None:
        if cfg.dest == "server":
            self._server().report_backup(snapshot)

    # --- repositories ------------------------------------------------------------------

    def destination(self, cfg: SetConfig) -> Destination:
        if cfg.dest == "server":
            return self._server().dest
        spec = dest_spec(cfg, self._layout)
        return LocalDestination(spec.path or self._layout.default_destination)

    def open(self, cfg: SetConfig, config: ServiceConfig, dest: Destination | None = None,
             create: bool = False) -> Repository:
        """The set's archive through ``dest`` (a wrapper of its destination, or itself)."""
        dest = dest or self.destination(cfg)
        cache = self._layout.cache
        with self._lock:
            keys = self._keys.get(dest.description)
            if keys is None:
                keys = self._unlock(cfg, config, dest, create)
                self._keys[dest.description] = keys
            return Repository(dest, keys, cache)

    def _unlock(self, cfg: SetConfig, config: ServiceConfig, dest: Destination,
                create: bool) -> ArchiveKeys:
        if cfg.dest == "server":
            repo = self._server().open_repo()
        elif create and not dest.list("keys"):
            repo = Repository.create(dest, self.passphrase(cfg, config), self._layout.cache)
        else:
            repo = Repository.open(dest, self.passphrase(cfg, config), self._layout.cache)
        repo.close()
        return repo.keys

    def snapshots(self, cfg: SetConfig, config: ServiceConfig,
                  every_path: bool = False) -> list[SnapshotInfo]:
        """The set's snapshots, newest first (all of the archive's with ``every_path``)."""
        repo = self.open(cfg, config)
        try:
            snaps = repo.readable_snapshots()
        finally:
            repo.close()
        log_warnings(repo)
        wanted = sorted(cfg.paths)
        return [SnapshotInfo(s.id, s.time, s.host, s.device, s.paths,
                             int(s.summary.get("files_total", 0)),
                             int(s.summary.get("bytes_total", 0)))
                for s in snaps if every_path or sorted(s.paths) == wanted]

    def browse(self, cfg: SetConfig, config: ServiceConfig, ref: str,
               path: str) -> list[TreeEntry]:
        """The entries of the folder ``path`` (an original absolute path, or "/") in a snapshot."""
        repo = self.open(cfg, config)
        try:
            repo.sync_index()
            snap = repo.find_snapshot(ref)
            log_warnings(repo)
            tree = snap.tree
            parts = path_components(Path(path)) if path.strip("/\\") else []
            for depth, part in enumerate(parts):
                node = next((n for n in repo.tree(tree) if decode_name(n, "name") == part), None)
                if node is None or node["type"] != "dir":
                    where = "/" + "/".join(parts[: depth + 1])
                    raise UsageError(f"{where} is not a folder in snapshot {snap.id[:8]}.")
                tree = node["subtree"]
            base = "/" + "/".join(parts)
            return [TreeEntry(decode_name(n, "name"),
                              base.rstrip("/") + "/" + decode_name(n, "name"), n["type"],
                              n.get("size", 0), n.get("mode"), n.get("mtime_ns"))
                    for n in repo.tree(tree)]
        finally:
            repo.close()


def username() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""
