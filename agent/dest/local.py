"""A local folder (or external drive) as a destination.

Layout: ``keys/N``, ``data/NN/N`` (first two hex digits fan out), ``index/N``,
``snapshots/N``, ``locks/N``, and ``tmp/`` for staging. Writes go to ``tmp/``,
are fsynced, renamed into place and the folder is fsynced, so a crash leaves
either no object or a whole one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.dest.base import KINDS, ObjectMissing, check_name
from agent.errors import DestinationError, DestinationFull

STALE_TEMP_S = 2 * 60 * 60  # four lock leases


@contextmanager
def _translated(action: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DestinationFull(f"The destination is full while {action}.") from exc
        raise DestinationError(f"Could not {action}: {exc.strerror or exc}.") from exc


def _fsync_dir(path: Path) -> None:
    if os.name == "nt":  # Windows cannot open directories; NTFS journals renames.
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalDestination:
    """Objects as files below ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().absolute()
        self.description = str(self.root)
        self._cleaned = False

    def _path(self, kind: str, name: str) -> Path:
        check_name(kind, name)
        if kind == "data":
            return self.root / kind / name[:2] / name
        return self.root / kind / name

    def creation_claimed(self) -> bool:
        """True once some run has claimed this folder to create an archive in it."""
        return (self.root / "keys").is_dir()

    def claim_creation(self) -> bool:
        """True for the one process that may create an archive here (it made the keys
        folder, atomically); False when another one did so first, at the same moment."""
        with _translated(f"create {self.root}"):
            self.root.mkdir(parents=True, exist_ok=True)
            try:
                (self.root / "keys").mkdir()
            except FileExistsError:
                return False
        return True

    def is_empty(self) -> bool:
        if self.root.exists() and not self.root.is_dir():
            raise DestinationError(f"{self.root} is a file, not a folder: an archive needs a "
                                   "folder of its own.")
        with _translated(f"read {self.root}"):
            return not self.root.exists() or not any(self.root.iterdir())

    def list(self, kind: str) -> dict[str, int]:
        folder = self.root / kind
        if kind not in KINDS or not folder.is_dir():
            return {}
        found: dict[str, int] = {}
        with _translated(f"list {folder}"):
            dirs = [folder] if kind != "data" else [d for d in folder.iterdir() if d.is_dir()]
            for d in dirs:
                with os.scandir(d) as it:
                    for entry in it:
                        if len(entry.name) == 64 and entry.is_file():
                            found[entry.name] = entry.stat().st_size
        return found

    def read(self, kind: str, name: str, offset: int = 0, length: int | None = None) -> bytes:
        path = self._path(kind, name)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except FileNotFoundError as exc:
            raise ObjectMissing(f"{kind}/{name} is missing from {self.description}.") from exc
        except OSError as exc:
            raise DestinationError(f"Could not read {path}: {exc.strerror}.") from exc
        with _translated(f"read {path}"):
            try:
                if length is None:
                    length = os.fstat(fd).st_size - offset
                return os.pread(fd, length, offset) if hasattr(os, "pread") else _seek_read(
                    fd, offset, length
                )
            finally:
                os.close(fd)

    def staging_dir(self) -> Path:
        path = self.root / "tmp"
        with _translated(f"create {path}"):
            path.mkdir(parents=True, exist_ok=True)
        if not self._cleaned:
            self._cleaned = True
            self.clean_staging()
        return path

    def put_file(self, kind: str, name: str, path: Path) -> None:
        final = self._path(kind, name)
        with _translated(f"store {final.name}"):
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():
                path.unlink(missing_ok=True)
                return
            try:
                os.replace(path, final)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                tmp = self._copy_to_staging(path)
                os.replace(tmp, final)
                path.unlink()
            _fsync_dir(final.parent)

    def _copy_to_staging(self, path: Path) -> Path:
        fd, tmp = tempfile.mkstemp(dir=self.staging_dir(), suffix=".tmp")
        with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
            shutil.copyfileobj(src, out, 1024 * 1024)
            out.flush()
            os.fsync(out.fileno())
        return Path(tmp)

    def put_bytes(self, kind: str, name: str, data: bytes) -> None:
        check_name(kind, name)
        with _translated(f"write {kind}/{name[:12]}"):
            fd, tmp = tempfile.mkstemp(dir=self.staging_dir(), suffix=".tmp")
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
        self.put_file(kind, name, Path(tmp))

    def remove(self, kind: str, name: str) -> None:
        path = self._path(kind, name)
        with _translated(f"remove {path}"):
            path.unlink(missing_ok=True)

    def clean_staging(self) -> None:
        """Remove temp files a killed run left behind.

        Only files untouched for longer than a lock lease (plus margin) go, so a
        backup running at the same time never loses a pack it is still writing.
        """
        folder = self.root / "tmp"
        cutoff = time.time() - STALE_TEMP_S
        if folder.is_dir():
            for leftover in folder.glob("*.tmp"):
                with contextlib.suppress(OSError):
                    if leftover.stat().st_mtime < cutoff:
                        leftover.unlink()


def _seek_read(fd: int, offset: int, length: int) -> bytes:
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, length)
