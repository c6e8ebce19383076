"""The archive key of a server archive under its three security levels.

- ``standard``: the master key is sealed to the organization's X25519 public
  key and deposited with the server ("escrow"); a signed-in device of the user
  gets it re-sealed to its own X25519 key. Admins can recover.
- ``password``: the master key is wrapped by an archive password (a passphrase
  key file, docs/format.md) stored as a ``keys`` object; the server cannot open
  it. A new device asks for the password.
- ``custom``: nothing key-related leaves the devices; move the key with
  ``cairn key export`` / ``cairn key import``.

Each device keeps the master key in its secret store once it has it. Levels
only move up (standard → password → custom); moving up changes only where the
key is kept, never the key itself, so no data is re-uploaded. Wire formats are
in docs/agent-server.md.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.archive.repository import sha256_hex
from agent.codec.keys import ArchiveKeys, checked_key_file, make_key_file, unwrap_key_file
from agent.credentials import SecretStore
from agent.dest.base import Destination
from agent.dest.retry import INTERACTIVE, retrying
from agent.errors import (
    IntegrityError,
    KeyNotAvailable,
    KeyPolicyRefused,
    ServerRefused,
    UsageError,
    WrongPassphrase,
)
from agent.remote import sealing
from agent.remote.levels import LEVELS, rank

if TYPE_CHECKING:
    from agent.remote.http import ServerClient

EXPORT_KIND = "cairn-archive-key"
CONFLICT = 409
#: ``ask(confirm)`` returns the archive password (from the environment or a prompt).
AskPassword = Callable[[bool], str]


@dataclass(frozen=True)
class KeyStatus:
    """The server's view of the user's archive key."""

    level: str | None
    archive_key_id: str | None
    required_level: str
    org_public_key: bytes

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> KeyStatus:
        return cls(doc.get("level"), doc.get("archive_key_id"), doc["required_level"],
                   sealing.unb64(doc["org_public_key"], 32))

    @property
    def below_policy(self) -> bool:
        return self.level is not None and rank(self.level) < rank(self.required_level)


class KeyManager:
    """Gets, creates and moves the archive key of the device's server archive."""

    def __init__(self, client: ServerClient, dest: Destination, store: SecretStore,
                 ask_password: AskPassword) -> None:
        self._client, self._dest, self._store = client, dest, store
        self._ask = ask_password

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = retrying(lambda: self._client.request(method, path, **kwargs),
                            INTERACTIVE, f"{method} {path}")
        return response.json() if response.content else {}

    def status(self) -> KeyStatus:
        return KeyStatus.from_json(self._call("GET", "/api/v1/keys"))

    def register_device_key(self) -> bytes:
        """Make this device's X25519 key pair and tell the server its public half."""
        private, public = sealing.new_key_pair()
        self._call("PUT", "/api/v1/keys/device", json={"public_key": sealing.b64(public)})
        self._store.set("device-key", sealing.b64(private))
        return private

    # --- getting the key -------------------------------------------------------------

    def local_keys(self) -> ArchiveKeys | None:
        raw = self._store.get("archive-key")
        return ArchiveKeys.from_master(sealing.unb64(raw, 32)) if raw else None

    def keys(self, status: KeyStatus) -> ArchiveKeys:
        """The archive keys: this device's copy, or obtained as the level allows."""
        if status.level is None:
            raise KeyNotAvailable("The archive on the server has no key yet; run `cairn "
                                  "register` again to create it.")
        local = self.local_keys()
        if local is not None and local.archive_id == status.archive_key_id:
            return local
        if status.level == "standard":
            keys = self._from_escrow()
        elif status.level == "password":
            keys = self._from_password()
        else:
            raise KeyNotAvailable(
                "This archive uses a custom key, which never leaves your devices: on a device "
                "that has it run `cairn key export FILE`, then here `cairn key import FILE`.")
        self._keep(keys, status)
        return keys

    def _keep(self, keys: ArchiveKeys, status: KeyStatus) -> None:
        if keys.archive_id != status.archive_key_id:
            raise IntegrityError("The key obtained for this archive is not its key (its "
                                 "fingerprint differs from the server's record).")
        self._store.set("archive-key", sealing.b64(keys.master))

    def _from_escrow(self) -> ArchiveKeys:
        raw = self._store.get("device-key")
        private = sealing.unb64(raw, 32) if raw else self.register_device_key()
        doc = self._call("GET", "/api/v1/keys/escrow")
        return ArchiveKeys.from_master(sealing.open_sealed(private, doc["sealed"],
                                                           sealing.DEVICE))

    def _from_password(self) -> ArchiveKeys:
        names = self._dest.list("keys")
        files = [doc for name in sorted(names)
                 if (doc := checked_key_file(name, self._dest.read("keys", name))) is not None]
        if not files:
            raise KeyNotAvailable("The archive password key file is missing from the server."
                                  if not names else "The archive password key file on the "
                                  "server is damaged; no password can open it.")
        password = self._ask(False)
        for doc in files:
            keys = unwrap_key_file(doc, password)
            if keys is not None:
                return keys
        raise WrongPassphrase("The archive password is wrong: it opens none of this "
                              "archive's key files.")

    # --- creating the key (first device) -------------------------------------------

    def setup(self, wanted: str | None) -> tuple[KeyStatus, ArchiveKeys | None]:
        """At registration: create the archive key, or get the existing one if possible."""
        status = self.status()
        if status.level is None:
            level = wanted or status.required_level
            self._check_policy(level, status)
            try:
                return self._create(level, status)
            except ServerRefused as exc:
                if exc.status != CONFLICT:  # another device of the user was first
                    raise
                status = self.status()
        if wanted is not None and rank(wanted) < rank(status.level or wanted):
            raise KeyPolicyRefused(f"This archive already uses the {status.level} key level; "
                                   "levels only move up.")
        try:
            keys = self.keys(status)
        except (KeyNotAvailable, KeyPolicyRefused):  # registered; the key comes later
            return status, None
        if wanted is not None and wanted != status.level:
            status = self.raise_level(wanted)
        return status, keys

    def _check_policy(self, level: str, status: KeyStatus) -> None:
        if rank(level) < rank(status.required_level):
            raise KeyPolicyRefused(
                f"Your organization requires the {status.required_level} key level or "
                f"stronger; choose --key-level {status.required_level} or "
                f"{' or '.join(LEVELS[rank(status.required_level) + 1:]) or 'nothing weaker'}.")

    def _create(self, level: str, status: KeyStatus) -> tuple[KeyStatus, ArchiveKeys]:
        keys = ArchiveKeys.generate()
        body: dict[str, Any] = {"level": level, "archive_key_id": keys.archive_id, "escrow": None}
        key_file = None
        if level == "standard":
            body["escrow"] = sealing.seal(status.org_public_key, keys.master, sealing.ORG_ESCROW)
        elif level == "password":
            key_file = self._upload_key_file(keys, self._ask(True))
        try:
            done = KeyStatus.from_json(self._call("POST", "/api/v1/keys/init", json=body))
        except ServerRefused as exc:
            done = self.status() if exc.status == CONFLICT else None
            if done is None or done.archive_key_id != keys.archive_id:  # not our own retry
                if key_file is not None:
                    self._dest.remove("keys", key_file)
                raise
        self._keep(keys, done)
        return done, keys

    def _upload_key_file(self, keys: ArchiveKeys, password: str) -> str:
        key_file = make_key_file(keys, password)
        name = sha256_hex(key_file)
        self._dest.put_bytes("keys", name, key_file)
        return name

    # --- moving up ----------------------------------------------------------------------

    def raise_level(self, level: str) -> KeyStatus:
        """Move the archive to a stronger level; no data is re-encrypted or re-uploaded."""
        status = self.status()
        keys = self.keys(status)
        current = status.level or level
        if rank(level) < rank(current):
            raise KeyPolicyRefused(f"This archive uses the {current} key level; levels only "
                                   "move up (standard → password → custom).")
        self._check_policy(level, status)
        if level == "password" and current != "password":
            self._upload_key_file(keys, self._ask(True))
        if level != current:
            status = KeyStatus.from_json(self._call("POST", "/api/v1/keys/level",
                                                    json={"level": level}))
        if level == "custom":
            for name in self._dest.list("keys"):
                self._dest.remove("keys", name)
        return status

    # --- custom keys ---------------------------------------------------------------------

    def export(self, path: Path) -> None:
        """Write the archive key to a new file only its owner can read."""
        status = self.status()
        keys = self.keys(status)
        doc = {"version": 1, "kind": EXPORT_KIND, "archive_key_id": keys.archive_id,
               "created": datetime.now(UTC).isoformat(timespec="seconds"),
               "master_key": sealing.b64(keys.master)}
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise UsageError(f"{path} already exists; choose a new file name.") from None
        except OSError as exc:
            raise UsageError(f"Cannot create {path}: {exc.strerror or exc}.") from exc
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(doc, out, indent=1)
            out.write("\n")

    def import_file(self, path: Path) -> KeyStatus:
        """Take the archive key from an exported file (checked against the server)."""
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            master = base64.b64decode(doc["master_key"], validate=True)
            kind = doc["kind"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{path} is not a Cairn key file made by `cairn key export`.") \
                from exc
        if kind != EXPORT_KIND or len(master) != 32:
            raise UsageError(f"{path} is not a Cairn key file made by `cairn key export`.")
        keys = ArchiveKeys.from_master(master)
        status = self.status()
        if status.archive_key_id != keys.archive_id:
            raise WrongPassphrase(f"The key in {path} belongs to another archive, not to this "
                                  "user's archive on the server.")
        self._keep(keys, status)
        return status
