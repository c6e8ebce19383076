"""The storage interface every server backend implements (filesystem, S3).

Objects are opaque ciphertext. An object is addressed by
``(namespace, kind, name)``:

- ``namespace``: the archive's opaque id (one archive per user), chosen by the
  server, ``[0-9a-f]{32}``.
- ``kind``: one of ``KINDS``.
- ``name``: 64 lowercase hex characters, the SHA-256 of the object's bytes.

Every method is idempotent where that makes sense and raises only the errors
named in its docstring; anything else is a bug.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

KINDS = frozenset({"keys", "data", "index", "snapshots", "locks"})
# \A…\Z rather than ^…$: "$" also matches before a trailing newline.
NAME_RE = re.compile(r"\A[0-9a-f]{64}\Z")
NAMESPACE_RE = re.compile(r"\A[0-9a-f]{32}\Z")


class StorageError(Exception):
    """Base class of storage errors."""


class ObjectNotFound(StorageError):
    """The object does not exist (or is in the trash)."""


class ObjectCorrupt(StorageError):
    """The uploaded bytes do not hash to the object's name; nothing was stored."""


def check_namespace(namespace: object) -> str:
    """Return namespace if it is 32 lowercase hex characters; raise ValueError otherwise."""
    if not isinstance(namespace, str) or not NAMESPACE_RE.match(namespace):
        raise ValueError(f"Invalid namespace {namespace!r}: expected 32 lowercase hex characters.")
    return namespace


def check_address(namespace: object, kind: object, name: object) -> None:
    """Raise ValueError unless (namespace, kind, name) is a valid object address.

    Backends call this before touching storage, so no hostile value (``..``,
    slashes, NUL, uppercase, overlong) can ever reach a path or a key.
    """
    check_namespace(namespace)
    if not isinstance(kind, str) or kind not in KINDS:
        raise ValueError(f"Invalid kind {kind!r}: expected one of {', '.join(sorted(KINDS))}.")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError(f"Invalid object name {name!r}: expected 64 lowercase hex characters.")


@dataclass(frozen=True)
class ObjectInfo:
    kind: str
    name: str
    size: int


class BlobStore(Protocol):
    """Where the server keeps archive objects. Implementations: filesystem, S3.

    Every method first validates its address with ``check_address`` /
    ``check_namespace`` and raises ValueError for anything invalid, before any
    I/O. A failure of the underlying storage (disk full, S3 unreachable) raises
    StorageError with a sentence saying what failed. Implementations are safe to
    call from several threads at once.
    """

    def put(self, namespace: str, kind: str, name: str, body: BinaryIO) -> int:
        """Store an object atomically; verify SHA-256(body) == name while streaming.

        Returns the stored size. If the object already exists, the body is still
        verified and the call succeeds without overwriting. Raises ObjectCorrupt
        when the hash does not match (nothing is left under the final name).
        An interrupted put (crash, kill) never leaves a partial object visible.
        """
        ...

    def get(self, namespace: str, kind: str, name: str,
            offset: int = 0, length: int | None = None) -> bytes:
        """Read an object or a byte range of it. Raises ObjectNotFound.

        ``length=None`` reads to the end. A range reaching past the end is cut
        at the end; an offset at or past the end gives ``b""``. A negative
        offset or length raises ValueError.
        """
        ...

    def size(self, namespace: str, kind: str, name: str) -> int:
        """Size in bytes. Raises ObjectNotFound."""
        ...

    def list(self, namespace: str, kind: str) -> Iterator[ObjectInfo]:
        """Every live object of a kind (not those in the trash), in no set order."""
        ...

    def trash(self, namespace: str, kind: str, name: str) -> None:
        """Move an object to the trash (recoverable until purged). Missing: no-op."""
        ...

    def restore_from_trash(self, namespace: str, kind: str, name: str) -> None:
        """Bring a trashed object back. Raises ObjectNotFound.

        Succeeds without change when the object is live already.
        """
        ...

    def purge_trash(self, namespace: str, older_than_s: float) -> int:
        """Delete objects trashed at least older_than_s seconds ago; return how many.

        ``older_than_s=0`` empties the namespace's trash.
        """
        ...

    def delete_namespace(self, namespace: str) -> None:
        """Delete every object of a namespace at once, trash included (deactivation).

        No grace period. Deleting a namespace that holds nothing is a no-op.
        """
        ...

    def namespace_bytes(self, namespace: str) -> int:
        """Bytes stored by live objects of a namespace (for quotas and reports)."""
        ...
