"""A Cairn server as a destination: the device's user's archive over HTTP.

Objects map to ``/api/v1/archive/objects/{kind}/{name}`` (docs/server-api.md):
GET (with ``Range`` for parts), PUT (raw bytes with ``Content-Length``; the
server checks the SHA-256 against the name and never overwrites, so a repeated
upload is a success), list by kind, ``DELETE`` for locks and
``POST /api/v1/archive/trash`` for every other removal (the server keeps
trashed objects for a grace period). Failures are the agent's errors carrying
the server's sentence; wrap this in ``RetryingDestination`` for transient ones.

Packs are staged in the agent home (``staging_dir``), streamed up in 256 KiB
pieces, and deleted locally only once the server confirmed them. An optional
``pace(n)`` callable (``agent.dest.throttle.RateLimiter.take``) is called for
every piece sent or received, which is how the bandwidth limit applies.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from agent.dest.base import KINDS, ObjectMissing, check_name
from agent.errors import ServerRefused
from agent.remote.http import ServerClient

PIECE = 256 * 1024
OBJECTS = "/api/v1/archive/objects"
STALE_STAGING_S = 24 * 3600
RANGE_NOT_SATISFIABLE = 416


def _no_pace(_n: int) -> None:
    return None


class ServerDestination:
    """The calling device's archive on a Cairn server."""

    def __init__(self, client: ServerClient, staging: Path,
                 pace: Callable[[int], None] | None = None, *, objects: str = OBJECTS) -> None:
        self._client = client
        self._objects = objects  # the object routes' base path
        self._staging = staging
        self._pace = pace or _no_pace
        self.description = client.config.url

    def is_empty(self) -> bool:
        return not any(self.list(kind) for kind in KINDS)

    def list(self, kind: str) -> dict[str, int]:
        if kind not in KINDS:
            return {}
        doc = self._client.request("GET", f"{self._objects}/{kind}").json()
        return {obj["name"]: int(obj["size"]) for obj in doc["objects"]}

    def read(self, kind: str, name: str, offset: int = 0, length: int | None = None) -> bytes:
        check_name(kind, name)
        if length == 0:
            return b""
        headers = {}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            headers["Range"] = f"bytes={offset}-{end}"
        pieces = []
        try:
            for piece in self._client.get_chunks(f"{self._objects}/{kind}/{name}", headers,
                                                 self._missing(kind, name)):
                self._pace(len(piece))
                pieces.append(piece)
        except ServerRefused as exc:
            if exc.status == RANGE_NOT_SATISFIABLE:  # the range starts past the end
                return b""
            raise
        return b"".join(pieces)

    def _missing(self, kind: str, name: str) -> Callable[[str], Exception]:
        def build(_detail: str) -> Exception:
            return ObjectMissing(f"{kind}/{name} is missing from the archive on "
                                 f"{self.description}.")
        return build

    def put_bytes(self, kind: str, name: str, data: bytes) -> None:
        check_name(kind, name)
        self._pace(len(data))
        # bytes(): httpx would stream a bytearray (a sealed object) as an iterable of ints.
        self._client.request("PUT", f"{self._objects}/{kind}/{name}", content=bytes(data),
                             headers={"Content-Type": "application/octet-stream"})

    def put_file(self, kind: str, name: str, path: Path) -> None:
        check_name(kind, name)
        size = path.stat().st_size
        self._client.request("PUT", f"{self._objects}/{kind}/{name}", content=self._pieces(path),
                             headers={"Content-Length": str(size),
                                      "Content-Type": "application/octet-stream"})
        path.unlink(missing_ok=True)

    def _pieces(self, path: Path) -> Iterator[bytes]:
        with open(path, "rb") as f:
            while piece := f.read(PIECE):
                self._pace(len(piece))
                yield piece

    def remove(self, kind: str, name: str) -> None:
        check_name(kind, name)
        if kind == "locks":
            with contextlib.suppress(ObjectMissing):  # already gone: removing is idempotent
                self._client.request("DELETE", f"{self._objects}/{kind}/{name}",
                                     missing=ObjectMissing)
            return
        self._client.request("POST", "/api/v1/archive/trash",
                             json={"objects": [{"kind": kind, "name": name}]})

    def staging_dir(self) -> Path:
        self._staging.mkdir(parents=True, exist_ok=True)
        return self._staging

    def clean_staging(self) -> None:
        """Remove staged packs a killed run left behind (a day old, so never a live run's)."""
        if not self._staging.is_dir():
            return
        cutoff = time.time() - STALE_STAGING_S
        for leftover in self._staging.glob("*.tmp"):
            try:
                if leftover.stat().st_mtime < cutoff:
                    os.unlink(leftover)
            except OSError:
                continue
