"""Archive locks with leases (docs/format.md, "Locks").

A lock is a sealed JSON object under ``locks/``: who holds it, whether it is
exclusive, and until when its lease runs. Backups take shared locks; prune
takes an exclusive one. A lock whose lease has expired is stale: holders
refresh theirs (writing a new lock, then removing the old one) well before
expiry, so a lock only goes stale when its holder died or slept. A lock of this
computer whose process is gone is stale too. A process that finds a stale lock
may ignore it, but never removes data on its account: prune also keeps a grace
period for anything written recently, and a holder whose lease lapsed checks
the archive again before relying on it (``ArchiveLock.lapsed``).

Taking a lock is write-then-check: after writing its lock a process lists the
locks again and backs off if a conflicting one appeared meanwhile, so two
processes racing can both fail but never both succeed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass

from agent.codec.envelope import NO_ID, ObjectType, open_sealed, seal
from agent.codec.keys import ArchiveKeys
from agent.dest.base import Destination, ObjectMissing
from agent.errors import ArchiveError, CairnError

LEASE_S = 30 * 60
REFRESH_S = 5 * 60


@dataclass(frozen=True)
class LockInfo:
    name: str
    host: str
    pid: int
    exclusive: bool
    created: float
    expires: float

    @property
    def stale(self) -> bool:
        """Past its lease, or held by a process of this computer that is gone."""
        if self.expires < time.time():
            return True
        return self.host == socket.gethostname() and not _pid_alive(self.pid)


def _pid_alive(pid: int) -> bool:
    if os.name != "posix" or pid <= 0:
        return True  # cannot tell: trust the lease
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ArchiveLock:
    """A held lock; refresh it periodically and release it when done."""

    def __init__(self, dest: Destination, keys: ArchiveKeys, exclusive: bool) -> None:
        self._dest, self._keys, self.exclusive = dest, keys, exclusive
        self.name = ""
        self._written = self._expires = 0.0
        self._lapsed = False

    def acquire(self) -> ArchiveLock:
        """Take the lock, or renew a held one; refuses while a conflicting live lock exists."""
        self._refuse_conflicts()
        self._write()
        try:
            self._refuse_conflicts()  # another process may have written its lock meanwhile
        except ArchiveError:
            self.release()
            raise
        return self

    def _refuse_conflicts(self) -> None:
        for other in list_locks(self._dest, self._keys):
            if other.name != self.name and not other.stale and (self.exclusive or other.exclusive):
                kind = "an exclusive" if other.exclusive else "a"
                raise ArchiveError(
                    f"The archive has {kind} lock held by {other.host} (pid {other.pid}) until "
                    f"{time.strftime('%H:%M', time.localtime(other.expires))}; try again later."
                )

    @property
    def lapsed(self) -> bool:
        """True if the lease ran out at some point while held (the computer slept)."""
        return self._lapsed or (bool(self.name) and time.time() > self._expires)

    def _write(self) -> None:
        now = time.time()
        if self.name and now > self._expires:
            self._lapsed = True
        doc = {"host": socket.gethostname(), "pid": os.getpid(), "exclusive": self.exclusive,
               "created": now, "expires": now + LEASE_S}
        sealed = seal(self._keys, ObjectType.LOCK, NO_ID, json.dumps(doc).encode())
        name = hashlib.sha256(sealed).hexdigest()
        self._dest.put_bytes("locks", name, sealed)
        old, self.name, self._written, self._expires = self.name, name, now, doc["expires"]
        if old:
            self._dest.remove("locks", old)

    def refresh_if_due(self) -> None:
        if self.name and time.time() - self._written > REFRESH_S:
            self._write()

    def release(self) -> None:
        if self.name:
            with contextlib.suppress(CairnError):  # an unreleased lock expires with its lease
                self._dest.remove("locks", self.name)
            self.name = ""


def list_locks(dest: Destination, keys: ArchiveKeys) -> list[LockInfo]:
    """Every readable lock; unreadable ones are treated as expired."""
    found = []
    for name in dest.list("locks"):
        try:
            plain = open_sealed(keys, ObjectType.LOCK, NO_ID, dest.read("locks", name), 1 << 16)
            doc = json.loads(plain)
            found.append(LockInfo(name, str(doc["host"]), int(doc["pid"]), bool(doc["exclusive"]),
                                  float(doc["created"]), float(doc["expires"])))
        except (ObjectMissing, CairnError, ValueError, KeyError):
            continue
    return found
