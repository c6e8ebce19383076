"""A user's archive on a Cairn server, read by an administrator (admin restore).

Read-only ``Destination`` over the admin routes (docs/server-api.md, "Admin
restore"): ``/api/v1/users/{user_id}/archive/objects/{kind}[/{name}]`` with an
admin session token. Writes and removals raise ``DestinationError``, so the
engine's restore runs without its shared lock. Also here: the admin's sign-in,
the username lookup and fetching the archive key at the standard level, sealed
to a one-time X25519 key made for this run (the server never sees it unsealed).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from pathlib import Path

from agent.codec.keys import ArchiveKeys
from agent.dest.server import ServerDestination
from agent.errors import DestinationError, IntegrityError, ServerRefused
from agent.remote import sealing
from agent.remote.http import ServerClient, ServerConfig

ADMIN_RESTORE = "admin-restore"
_ID_RE = re.compile(r"\A[0-9a-f]{32}\Z")


def _no_user(username: str) -> Callable[[str], Exception]:
    def build(_detail: str) -> Exception:
        return ServerRefused(f"No user {username!r} in the organizations you administer.",
                             status=404)
    return build


def admin_login(config: ServerConfig, username: str, password: str) -> ServerClient:
    """A client carrying a fresh admin session token (WrongCredentials when refused)."""
    anonymous = ServerClient(config)
    try:
        doc = anonymous.request("POST", "/api/v1/auth/login",
                                json={"username": username, "password": password}).json()
    finally:
        anonymous.close()
    return ServerClient(config, token=str(doc["token"]))


def admin_logout(client: ServerClient) -> None:
    """End the session (best effort: it expires on its own anyway)."""
    with contextlib.suppress(DestinationError):
        client.request("POST", "/api/v1/auth/logout")
    client.close()


def find_user(client: ServerClient, user: str) -> str:
    """The id of a user the admin administers: ``user`` is a username or a 32-hex id."""
    missing = _no_user(user)
    if _ID_RE.match(user):
        return str(client.request("GET", f"/api/v1/users/{user}", missing=missing).json()["id"])
    for org in client.request("GET", "/api/v1/orgs").json():
        if not org.get("users_active"):
            continue
        for found in client.request("GET", f"/api/v1/orgs/{org['id']}/users",
                                    missing=missing).json():
            if found["username"].lower() == user.lower() and found["active"]:
                return str(found["id"])
    raise missing("")


def fetch_keys(client: ServerClient, user_id: str, username: str) -> ArchiveKeys:
    """The user's archive keys, released by the server's escrow to a one-time key pair."""
    private, public = sealing.new_key_pair()
    doc = client.request("POST", f"/api/v1/users/{user_id}/archive/key",
                         json={"public_key": sealing.b64(public)},
                         missing=_no_user(username)).json()
    master = sealing.open_sealed(private, doc.get("sealed"), ADMIN_RESTORE)
    keys = ArchiveKeys.from_master(master)
    if keys.archive_id != doc.get("archive_key_id"):
        raise IntegrityError("The key the server released is not this archive's key.")
    return keys


class AdminArchiveDestination(ServerDestination):
    """One user's archive, read-only, through an admin session."""

    def __init__(self, client: ServerClient, user_id: str, staging: Path) -> None:
        super().__init__(client, staging, objects=f"/api/v1/users/{user_id}/archive/objects")
        self.description = f"{client.config.url} (user {user_id}, read-only)"

    def _refuse(self) -> None:
        raise DestinationError("An administrator's access to a user's archive is read-only.")

    def put_bytes(self, kind: str, name: str, data: bytes) -> None:
        self._refuse()

    def put_file(self, kind: str, name: str, path: Path) -> None:
        self._refuse()

    def remove(self, kind: str, name: str) -> None:
        self._refuse()
