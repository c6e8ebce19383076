"""Registering this computer with a Cairn server, replacing a device, unregistering.

Registration (``POST /api/v1/register``, docs/server-api.md) signs the user in
with the organization's registration key (a new username self-registers), and
returns a device token. The agent then stores the token, sends the server its
device X25519 public key and sets up the archive key (agent.remote.keylevels):
the first device of a user creates it, later devices get it as the key level
allows. ``replace_guid`` registers this computer as the replacement of one of
the user's devices: it takes over that device's GUID and slot, and the old
device is deactivated.
"""

from __future__ import annotations

import platform
import socket
from dataclasses import dataclass
from datetime import UTC, datetime

from agent.config import AgentPaths
from agent.credentials import Profile, SecretStore, device_guid, set_device_guid
from agent.dest.retry import INTERACTIVE, RetryingDestination, retrying
from agent.dest.server import ServerDestination
from agent.remote.http import ServerClient, ServerConfig
from agent.remote.keylevels import AskPassword, KeyManager, KeyStatus
from agent.remote.session import RemoteSession


@dataclass(frozen=True)
class RegistrationRequest:
    url: str
    registration_key: str
    username: str
    password: str
    device_name: str = ""
    key_level: str | None = None
    pin_sha256: str | None = None
    replace_guid: str | None = None


@dataclass(frozen=True)
class Registered:
    profile: Profile
    key_status: KeyStatus
    has_key: bool
    user_created: bool
    replaced_device_id: str | None


def os_description() -> str:
    return f"{platform.system() or 'unknown'} {platform.release()}".strip()[:200]


def register(paths: AgentPaths, req: RegistrationRequest, store: SecretStore,
             ask_password: AskPassword) -> Registered:
    """Register (or re-register) this agent home; see the module docstring."""
    config = ServerConfig(req.url, req.pin_sha256)
    guid = req.replace_guid or device_guid(paths.home)
    name = (req.device_name or socket.gethostname() or "computer")[:200]
    body = {"registration_key": req.registration_key, "username": req.username,
            "password": req.password,
            "device": {"guid": guid, "name": name, "os": os_description()},
            "replace_device": req.replace_guid}
    anonymous = ServerClient(config)
    try:
        doc = retrying(lambda: anonymous.request("POST", "/api/v1/register", json=body),
                       INTERACTIVE, "registering").json()
    finally:
        anonymous.close()
    store.set("device-token", doc["device_token"])
    if req.replace_guid:
        set_device_guid(paths.home, guid)
    profile = Profile(url=req.url, device_id=doc["device_id"], device_guid=guid,
                      device_name=name, username=doc["username"], user_id=doc["user_id"],
                      org_id=doc["org_id"], org_name=doc["org_name"],
                      registered_at=datetime.now(UTC).isoformat(timespec="seconds"),
                      pin_sha256=req.pin_sha256)
    profile.save(paths.home)
    client = ServerClient(config, doc["device_token"])
    try:
        dest = RetryingDestination(ServerDestination(client, paths.home / "staging"))
        manager = KeyManager(client, dest, store, ask_password)
        manager.register_device_key()
        status, keys = manager.setup(req.key_level)
    finally:
        client.close()
    profile = profile.with_key(status.level or "", status.archive_key_id or "")
    profile.save(paths.home)
    return Registered(profile, status, keys is not None, bool(doc["user_created"]),
                      doc.get("replaced_device_id"))


def unregister(session: RemoteSession) -> bool:
    """Deactivate this device on the server and forget its credentials.

    Returns True when the archive key was kept on this computer (custom level:
    it may be the only copy).
    """
    retrying(lambda: session.client.request("POST", "/api/v1/device/unregister"),
             INTERACTIVE, "unregistering")
    session.close()
    home, store = session.paths.home, session.store
    for name in ("device-token", "device-key"):
        store.delete(name)
    keep_key = session.profile.key_level == "custom"
    if not keep_key:
        store.delete("archive-key")
    Profile.delete(home)
    return keep_key
