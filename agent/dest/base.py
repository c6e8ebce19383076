"""The Destination interface: a flat store of named, immutable objects.

Objects are addressed by ``(kind, name)``: ``kind`` is one of ``KINDS`` and
``name`` is 64 lowercase hex characters, the SHA-256 of the object's bytes.
Implementations must:

- ``put_*``: store atomically (never a partial object under a final name) and
  treat an existing object of the same name as success (it has the same bytes);
- ``read``: raise ``ObjectMissing`` for an absent object; a range past the end is
  returned short;
- ``remove``: be idempotent;
- translate their own failures into ``DestinationError`` / ``DestinationFull``.

Retry, rate limiting and fault injection are wrappers around this interface.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

from agent.errors import DestinationError

KINDS = ("keys", "data", "index", "snapshots", "locks")
NAME_RE = re.compile(r"^[0-9a-f]{64}$")


class ObjectMissing(DestinationError):
    """An object the archive refers to is not at the destination."""


def check_name(kind: str, name: str) -> None:
    if kind not in KINDS or not NAME_RE.match(name):
        raise DestinationError(f"Refusing an invalid object name {kind}/{name!r}.")


class Destination(Protocol):
    description: str

    def is_empty(self) -> bool:
        """True when nothing at all is stored there yet (a new archive may be created)."""
        ...

    def list(self, kind: str) -> dict[str, int]:
        """Names and sizes of every object of ``kind``."""
        ...

    def read(self, kind: str, name: str, offset: int = 0, length: int | None = None) -> bytes:
        ...

    def put_bytes(self, kind: str, name: str, data: bytes) -> None:
        ...

    def put_file(self, kind: str, name: str, path: Path) -> None:
        """Store a finished local file (from ``staging_dir``) and remove the local copy."""
        ...

    def remove(self, kind: str, name: str) -> None:
        ...

    def staging_dir(self) -> Path:
        """A local folder for temp files that ``put_file`` can take cheaply."""
        ...
