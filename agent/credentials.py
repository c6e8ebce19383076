"""What a registered agent remembers: its server profile and its secrets.

In the agent home:

- ``device-guid``: this installation's stable device GUID (made once);
- ``server.json``: server URL, certificate pin, device id and GUID, user,
  organization and the archive's key level (nothing secret);
- ``secrets/``: only when no OS keyring is usable (folder 0700, files 0600).

Secrets (the device token, the device's X25519 private key, the archive master
key) go to the OS keyring (``keyring``: macOS Keychain, Windows Credential
Manager, Secret Service) when a real backend exists; headless machines and
services fall back to the files. ``CAIRN_SECRET_STORE=file`` forces the files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import tempfile
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from agent.errors import UsageError

PROFILE_FILE = "server.json"
GUID_FILE = "device-guid"
SECRETS_DIR = "secrets"
KEYRING_SERVICE = "Cairn backup agent"
SECRET_NAMES = ("device-token", "device-key", "archive-key")


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` atomically into a file only its owner can read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        os.chmod(tmp, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def device_guid(home: Path) -> str:
    """This installation's device GUID, created on first use."""
    path = home / GUID_FILE
    if path.is_file():
        return path.read_text().strip()
    guid = secrets.token_hex(16)
    _write_private(path, guid + "\n")
    return guid


def set_device_guid(home: Path, guid: str) -> None:
    """Take over another device's GUID (replace-device)."""
    _write_private(home / GUID_FILE, guid + "\n")


@dataclass(frozen=True)
class Profile:
    """The server this agent is registered with, and as whom."""

    url: str
    device_id: str
    device_guid: str
    device_name: str
    username: str
    user_id: str
    org_id: str
    org_name: str
    registered_at: str
    pin_sha256: str | None = None
    key_level: str | None = None
    archive_key_id: str | None = None

    @classmethod
    def load(cls, home: Path) -> Profile | None:
        path = home / PROFILE_FILE
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise UsageError(f"{path} is damaged ({exc}); run `cairn register` again.") from exc
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in doc.items() if k in known})
        except TypeError as exc:
            raise UsageError(f"{path} is incomplete; run `cairn register` again.") from exc

    def save(self, home: Path) -> None:
        _write_private(home / PROFILE_FILE, json.dumps(asdict(self), indent=1) + "\n")

    def with_key(self, level: str, archive_key_id: str) -> Profile:
        return replace(self, key_level=level, archive_key_id=archive_key_id)

    @staticmethod
    def delete(home: Path) -> None:
        (home / PROFILE_FILE).unlink(missing_ok=True)


def keyring_usable() -> bool:
    """True when ``keyring`` has a real (not failing, not null) backend."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return False
    try:
        backend = keyring.get_keyring()
    except Exception:  # a broken keyring setup means "none"
        return False
    return not isinstance(backend, fail.Keyring) and getattr(backend, "priority", 0) > 0


class SecretStore:
    """Named secrets of one agent home, in the OS keyring or in 0600 files."""

    def __init__(self, home: Path, mode: str = "auto") -> None:
        if mode not in ("auto", "file", "keyring"):
            raise UsageError("CAIRN_SECRET_STORE must be auto, file or keyring.")
        self.home = home
        self.uses_keyring = mode == "keyring" or (mode == "auto" and keyring_usable())
        # Several agent homes (users, services) may share one keyring: key entries by home.
        self._account = hashlib.sha256(str(home).encode()).hexdigest()[:16]

    @property
    def where(self) -> str:
        return "the OS keyring" if self.uses_keyring else str(self.home / SECRETS_DIR)

    def _check(self, name: str) -> None:
        if name not in SECRET_NAMES:
            raise ValueError(f"unknown secret {name!r}")

    def get(self, name: str) -> str | None:
        self._check(name)
        if self.uses_keyring:
            import keyring

            return keyring.get_password(KEYRING_SERVICE, f"{self._account}:{name}")
        try:
            return (self.home / SECRETS_DIR / name).read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None

    def set(self, name: str, value: str) -> None:
        self._check(name)
        if self.uses_keyring:
            import keyring

            keyring.set_password(KEYRING_SERVICE, f"{self._account}:{name}", value)
            return
        folder = self.home / SECRETS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        _write_private(folder / name, value + "\n")

    def delete(self, name: str) -> None:
        self._check(name)
        if self.uses_keyring:
            import keyring
            from keyring.errors import PasswordDeleteError

            with contextlib.suppress(PasswordDeleteError):
                keyring.delete_password(KEYRING_SERVICE, f"{self._account}:{name}")
            return
        (self.home / SECRETS_DIR / name).unlink(missing_ok=True)
