"""Restore: snapshot → trees → blobs (read, decrypt, verify, decompress) → files.

The calling thread walks the snapshot's trees, creates directories, symlinks
and (empty, sized) files, and plans which blobs each file needs. The
``PackOrderedWriter`` then reads each pack once and writes its blobs where they
belong; zero blocks of sparse files stay holes. Directory metadata is applied
last, deepest first, so writing files does not disturb directory mtimes. A file
with damaged data is removed and reported; the other files are still restored.
"""

from __future__ import annotations

import base64
import contextlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from agent.archive.locks import ArchiveLock
from agent.archive.repository import Repository
from agent.engine.file_writer import PackOrderedWriter
from agent.engine.progress import Progress
from agent.errors import DestinationError, Interrupted
from agent.model.snapshot import Snapshot
from agent.model.tree import decode_name
from agent.scan.walker import path_components


@dataclass(frozen=True)
class RestoreOptions:
    target: Path
    includes: tuple[str, ...] = ()
    workers: int = max(2, os.cpu_count() or 1)
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass
class RestoreResult:
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes: int = 0
    duration_s: float = 0.0
    errors: list[str] = field(default_factory=list)


class _Selection:
    """Which original paths to restore: everything, or the named subtrees."""

    def __init__(self, includes: tuple[str, ...]) -> None:
        self._wanted = [tuple(path_components(Path(p))) for p in includes]

    def wants(self, parts: tuple[str, ...]) -> bool:
        """True if ``parts`` is inside, or on the way to, an included path."""
        if not self._wanted:
            return True
        return any(w[: len(parts)] == parts or parts[: len(w)] == w for w in self._wanted)


def _walk(repo: Repository, tree_id: str, parts: tuple[str, ...],
          select: _Selection) -> Iterator[tuple[tuple[str, ...], dict]]:
    """Pre-order (path parts, node) of the selected part of a tree."""
    for node in repo.tree(tree_id):
        child = (*parts, decode_name(node, "name"))
        if not select.wants(child):
            continue
        yield child, node
        if node["type"] == "dir" and node.get("subtree"):
            yield from _walk(repo, node["subtree"], child, select)


def run_restore(repo: Repository, snap: Snapshot, options: RestoreOptions,
                progress: Progress | None = None) -> RestoreResult:
    """Restore the selected paths of ``snap`` under ``options.target``.

    Holds a shared lock so a prune cannot remove packs mid-restore; on a
    destination that cannot be written (read-only media) it restores without one.
    """
    lock = ArchiveLock(repo.dest, repo.keys, exclusive=False)
    with contextlib.suppress(DestinationError):
        lock.acquire()
    try:
        return _restore(repo, snap, options, progress or Progress())
    finally:
        lock.release()


def _restore(repo: Repository, snap: Snapshot, options: RestoreOptions,
             progress: Progress) -> RestoreResult:
    started = time.monotonic()
    repo.sync_index()
    select = _Selection(options.includes)
    progress.phase = "counting"
    for _parts, node in _walk(repo, snap.tree, (), select):
        if node["type"] == "file":
            progress.files_total += 1
            progress.bytes_total += node.get("size", 0)
    progress.totals_known = True
    progress.phase = "restoring"
    result = RestoreResult()
    lock = threading.Lock()

    def file_done(path: Path, node: dict, error: str | None, size: int) -> None:
        if error is None:
            _apply_metadata(path, node, follow=True)
        with lock:
            if error is None:
                result.files += 1
                result.bytes += size
            else:
                result.errors.append(f"{path}: {error}")

    writer = PackOrderedWriter(repo, options.workers, progress, options.cancel, file_done)
    dirs: list[tuple[Path, dict]] = []
    options.target.mkdir(parents=True, exist_ok=True)
    for parts, node in _walk(repo, snap.tree, (), select):
        if options.cancel.is_set():
            raise Interrupted("Restore cancelled.")
        path = options.target.joinpath(*parts)
        if node["type"] == "dir":
            _make_dir(path)
            dirs.append((path, node))
            result.dirs += 1
        elif node["type"] == "symlink":
            _make_symlink(path, node, result)
        else:
            writer.add(path, node)
    writer.run()
    for path, node in reversed(dirs):
        _apply_metadata(path, node, follow=True)
    result.duration_s = time.monotonic() - started
    progress.phase = "done"
    return result


def _make_dir(path: Path) -> None:
    if path.is_symlink():
        path.unlink()
    path.mkdir(parents=True, exist_ok=True)


def _make_symlink(path: Path, node: dict, result: RestoreResult) -> None:
    try:
        if path.is_symlink() or path.is_file():
            path.unlink()
        os.symlink(decode_name(node, "target"), path)
        _apply_metadata(path, node, follow=False)
        result.symlinks += 1
    except OSError as exc:
        result.errors.append(f"{path}: {exc.strerror}")


def _apply_metadata(path: Path, node: dict, *, follow: bool) -> None:
    """Owner (when root), permissions, xattrs and mtime; best effort, never fatal."""
    try:
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            os.chown(path, node.get("uid", -1), node.get("gid", -1), follow_symlinks=follow)
        if follow:
            os.chmod(path, node.get("mode", 0o644))
        for name, value in node.get("xattrs", {}).items():
            if hasattr(os, "setxattr"):
                os.setxattr(path, name, base64.b64decode(value), follow_symlinks=follow)
        mtime = node.get("mtime_ns", 0)
        os.utime(path, ns=(mtime, mtime), follow_symlinks=follow)
    except (OSError, NotImplementedError):
        pass
