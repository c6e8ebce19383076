"""BlobStore on a local filesystem: one folder tree under ``root``.

Layout (see docs/storage.md)::

    objects/<namespace>/<kind>/<name[:2]>/<name>      live objects
    objects/<namespace>/trash/<kind>/<name>.<ms>      trashed, ms = trash time (Unix ms)
    tmp/<host>-<pid>-<random>.tmp                     uploads in progress
    deleting/<namespace>-<random>                     namespaces being deleted

A put streams the body into a temp file in ``tmp/`` (same filesystem) while
hashing it, fsyncs it, and only when the SHA-256 matches the name hard-links it
under its final name (``link`` fails rather than overwrite), then fsyncs the
folder. A killed process therefore leaves at most a temp file, which the next
store opened on the same root removes.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from server.storage.base import (
    KINDS,
    NAME_RE,
    ObjectInfo,
    ObjectNotFound,
    StorageError,
    check_address,
    check_namespace,
)
from server.storage.checks import check_age, check_range, copy_verified

TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
STALE_TEMP_S = 24 * 3600.0  # temp files this old are removed whoever wrote them
TRASH_RE = re.compile(r"\A([0-9a-f]{64})\.(\d{1,20})\Z")
TEMP_RE = re.compile(r"\A([A-Za-z0-9_.]+)-(\d+)-[0-9a-f]{16}\.tmp\Z")
HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"
# errno values meaning "this filesystem cannot hard-link": fall back to rename.
NO_LINK_ERRNOS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}


@contextmanager
def _io_errors(what: str) -> Iterator[None]:
    """Turn an OSError of the underlying filesystem into a StorageError sentence."""
    try:
        yield
    except OSError as exc:
        raise StorageError(f"Filesystem storage failed while {what}: {exc}.") from exc


def _fsync_dir(path: Path) -> None:
    """Make a folder's entries (new names, renames) durable. No-op where unsupported."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _process_alive(pid: int) -> bool:
    if os.name == "nt":
        return True  # no safe probe: stale temp files go by age instead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True








class FilesystemBlobStore:
    """BlobStore in a folder. Opening it removes leftovers of killed processes."""

    def __init__(self, root: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.root = Path(root)
        self._objects = self.root / "objects"
        self._tmp = self.root / "tmp"
        self._deleting = self.root / "deleting"
        self._clock = clock
        with _io_errors(f"creating the storage folder {self.root}"):
            for folder in (self._objects, self._tmp, self._deleting):
                folder.mkdir(parents=True, exist_ok=True)
            self._clean_leftovers()

    def __repr__(self) -> str:
        return f"FilesystemBlobStore({str(self.root)!r})"

    # --- writing -------------------------------------------------------------

    def put(self, namespace: str, kind: str, name: str, body: BinaryIO) -> int:
        """Store an object atomically after verifying its SHA-256; never overwrite."""
        check_address(namespace, kind, name)
        final = self._object_path(namespace, kind, name)
        with _io_errors(f"storing {kind}/{name}"):
            try:
                existing = final.stat().st_size
            except FileNotFoundError:
                existing = None
            if existing is not None:
                copy_verified(body, None, kind, name)
                return existing
            tmp = self._tmp / f"{HOST}-{os.getpid()}-{secrets.token_hex(8)}.tmp"
            try:
                with open(os.open(tmp, TEMP_FLAGS, 0o600), "wb") as out:
                    size = copy_verified(body, out, kind, name)
                    out.flush()
                    os.fsync(out.fileno())
                self._publish(tmp, final)
            finally:
                tmp.unlink(missing_ok=True)
        return size

    def trash(self, namespace: str, kind: str, name: str) -> None:
        """Move an object into the namespace's trash, stamped with the current time."""
        check_address(namespace, kind, name)
        live = self._object_path(namespace, kind, name)
        trash_dir = self._trash_dir(namespace, kind)
        stamp = int(self._clock() * 1000)
        with _io_errors(f"moving {kind}/{name} to the trash"):
            if not live.exists():
                return
            self._ensure_dir(trash_dir)
            try:
                os.replace(live, trash_dir / f"{name}.{stamp}")
            except FileNotFoundError:
                return  # trashed concurrently
            _fsync_dir(trash_dir)
            _fsync_dir(live.parent)

    def restore_from_trash(self, namespace: str, kind: str, name: str) -> None:
        """Bring the most recently trashed copy back under its live name."""
        check_address(namespace, kind, name)
        live = self._object_path(namespace, kind, name)
        with _io_errors(f"restoring {kind}/{name} from the trash"):
            if live.exists():
                return
            entries = sorted(self._trash_entries(namespace, kind, name), key=lambda e: e[1])
            if not entries:
                raise ObjectNotFound(f"{kind}/{name} is neither stored nor in the trash.")
            newest = entries[-1][0]
            self._publish(newest, live)
            newest.unlink(missing_ok=True)
            _fsync_dir(newest.parent)

    def purge_trash(self, namespace: str, older_than_s: float) -> int:
        """Delete objects trashed at least older_than_s seconds ago; return how many."""
        check_namespace(namespace)
        check_age(older_than_s)
        cutoff_ms = (self._clock() - older_than_s) * 1000
        purged = 0
        with _io_errors("purging the trash"):
            for kind in sorted(KINDS):
                for path, stamp in self._trash_entries(namespace, kind, None):
                    if stamp <= cutoff_ms:
                        path.unlink(missing_ok=True)
                        purged += 1
        return purged

    def delete_namespace(self, namespace: str) -> None:
        """Delete a namespace at once: one atomic rename out of sight, then removal."""
        check_namespace(namespace)
        doomed = self._deleting / f"{namespace}-{secrets.token_hex(8)}"
        with _io_errors(f"deleting namespace {namespace}"):
            try:
                os.rename(self._objects / namespace, doomed)
            except FileNotFoundError:
                return
            _fsync_dir(self._objects)
            shutil.rmtree(doomed)

    # --- reading -------------------------------------------------------------

    def get(self, namespace: str, kind: str, name: str,
            offset: int = 0, length: int | None = None) -> bytes:
        """Read an object or a byte range of it (cut at the end of the object)."""
        check_address(namespace, kind, name)
        check_range(offset, length)
        with _io_errors(f"reading {kind}/{name}"):
            try:
                with open(self._object_path(namespace, kind, name), "rb") as f:
                    f.seek(offset)
                    return f.read() if length is None else f.read(length)
            except FileNotFoundError:
                raise ObjectNotFound(f"{kind}/{name} is not stored.") from None

    def size(self, namespace: str, kind: str, name: str) -> int:
        """Size of a live object in bytes."""
        check_address(namespace, kind, name)
        with _io_errors(f"reading the size of {kind}/{name}"):
            try:
                return self._object_path(namespace, kind, name).stat().st_size
            except FileNotFoundError:
                raise ObjectNotFound(f"{kind}/{name} is not stored.") from None

    def list(self, namespace: str, kind: str) -> Iterator[ObjectInfo]:
        """Every live object of a kind (arguments are checked before iteration starts)."""
        check_address(namespace, kind, "0" * 64)
        return self._iter_kind(namespace, kind)

    def namespace_bytes(self, namespace: str) -> int:
        """Bytes stored by the live objects of a namespace."""
        check_namespace(namespace)
        return sum(info.size for kind in sorted(KINDS) for info in self._iter_kind(namespace, kind))

    # --- internals -------------------------------------------------------------

    def _object_path(self, namespace: str, kind: str, name: str) -> Path:
        return self._objects / namespace / kind / name[:2] / name

    def _trash_dir(self, namespace: str, kind: str) -> Path:
        return self._objects / namespace / "trash" / kind

    def _iter_kind(self, namespace: str, kind: str) -> Iterator[ObjectInfo]:
        with _io_errors(f"listing {kind} objects"):
            try:
                shards = sorted(os.scandir(self._objects / namespace / kind), key=lambda e: e.name)
            except FileNotFoundError:
                return
            for shard in shards:
                if len(shard.name) != 2 or not shard.is_dir(follow_symlinks=False):
                    continue
                for entry in os.scandir(shard.path):
                    if not NAME_RE.match(entry.name) or entry.name[:2] != shard.name:
                        continue
                    try:
                        size = entry.stat(follow_symlinks=False).st_size
                    except FileNotFoundError:
                        continue  # trashed while we listed
                    yield ObjectInfo(kind, entry.name, size)

    def _trash_entries(self, namespace: str, kind: str,
                       name: str | None) -> Iterator[tuple[Path, int]]:
        """(path, trash time in ms) of trashed objects of a kind, optionally one name."""
        folder = self._trash_dir(namespace, kind)
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return
        for entry in entries:
            match = TRASH_RE.match(entry.name)
            if match and (name is None or match[1] == name):
                yield Path(entry.path), int(match[2])

    def _publish(self, src: Path, final: Path) -> None:
        """Give the complete file src the name final unless final exists; make it durable."""
        self._ensure_dir(final.parent)
        try:
            os.link(src, final)
        except FileExistsError:
            return  # a concurrent put of the same (verified, identical) bytes won
        except OSError as exc:
            if exc.errno not in NO_LINK_ERRNOS:
                raise
            if final.exists():
                return
            os.replace(src, final)  # no hard links here: same bytes, so a race is harmless
        _fsync_dir(final.parent)

    def _ensure_dir(self, folder: Path) -> None:
        """Create folder and missing parents, fsyncing each parent that gains an entry."""
        if folder.is_dir():
            return
        self._ensure_dir(folder.parent)
        try:
            folder.mkdir()
        except FileExistsError:
            return
        _fsync_dir(folder.parent)

    def _clean_leftovers(self) -> None:
        """Remove temp files of dead processes (or very old) and half-deleted namespaces."""
        now = time.time()
        for entry in os.scandir(self._tmp):
            if entry.is_dir(follow_symlinks=False):
                continue
            match = TEMP_RE.match(entry.name)
            dead = match is not None and match[1] == HOST and not _process_alive(int(match[2]))
            try:
                stale = now - entry.stat(follow_symlinks=False).st_mtime > STALE_TEMP_S
            except FileNotFoundError:
                continue
            if dead or stale or match is None:
                Path(entry.path).unlink(missing_ok=True)
        for entry in os.scandir(self._deleting):
            shutil.rmtree(entry.path, ignore_errors=True)
