"""Restore: snapshot → trees → blobs (read, decrypt, verify, decompress) → files.

The calling thread walks the snapshot's trees, creates directories and
symlinks, and hands files to a thread pool (small files in batches). Workers
fetch each blob, verify it against its ID and write it; zero blobs of sparse
files become holes. Directory metadata is applied last, deepest first, so
writing files does not disturb directory mtimes. A file with damaged data is
removed and reported; the other files are still restored.
"""

from __future__ import annotations

import base64
import contextlib
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from agent.archive.index_cache import BlobLocation
from agent.archive.locks import ArchiveLock
from agent.archive.repository import Repository
from agent.engine.progress import Progress
from agent.errors import CairnError, DestinationError, Interrupted
from agent.model.snapshot import Snapshot
from agent.model.tree import decode_name
from agent.scan.walker import path_components

_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(
    os, "O_BINARY", 0
)
SPARSE_BLOCK = 16 * 1024
_ZEROS = memoryview(bytes(SPARSE_BLOCK))
BATCH_FILES = 64


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
    writer = _FileWriter(repo, options, progress, result)
    dirs: list[tuple[Path, dict]] = []
    options.target.mkdir(parents=True, exist_ok=True)
    try:
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
        writer.finish()
    finally:
        writer.shutdown()
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


class _FileWriter:
    """Writes files on a thread pool, small ones in batches."""

    def __init__(self, repo: Repository, options: RestoreOptions, progress: Progress,
                 result: RestoreResult) -> None:
        self._repo, self._progress, self._result = repo, progress, result
        self._cancel = options.cancel
        self._pool = ThreadPoolExecutor(options.workers, thread_name_prefix="restore")
        self._slots = threading.Semaphore(options.workers * 4)
        self._futures: list[Future] = []
        self._batch: list[tuple[Path, dict, list]] = []
        self._lock = threading.Lock()

    def add(self, path: Path, node: dict) -> None:
        ids = [bytes.fromhex(h) for h in node.get("content", ())]
        locations = [(blob_id, self._repo.locate(blob_id)) for blob_id in ids]
        self._batch.append((path, node, locations))
        if len(self._batch) >= BATCH_FILES or node.get("size", 0) >= 1024 * 1024:
            self._submit()

    def _submit(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        self._slots.acquire()
        future = self._pool.submit(self._run, batch)
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append(future)

    def finish(self) -> None:
        self._submit()
        for future in self._futures:
            future.result()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self, batch: list[tuple[Path, dict, list]]) -> None:
        for path, node, locations in batch:
            if self._cancel.is_set():
                raise Interrupted("Restore cancelled.")
            self._progress.current = str(path)
            try:
                written = _write_file(self._repo, path, node, locations)
            except (CairnError, OSError) as exc:
                path.unlink(missing_ok=True)
                reason = exc.strerror if isinstance(exc, OSError) else str(exc)
                with self._lock:
                    self._result.errors.append(f"{path}: {reason}")
                continue
            with self._lock:
                self._result.files += 1
                self._result.bytes += written
            self._progress.files_done += 1
            self._progress.bytes_done += written


def _write_file(repo: Repository, path: Path,
                node: dict, locations: list[tuple[bytes, BlobLocation]]) -> int:
    if path.is_symlink():
        path.unlink()
    sparse = node.get("sparse", False)
    fd = os.open(path, _OPEN_FLAGS, 0o600)
    written = 0
    try:
        for blob_id, loc in locations:
            try:
                data = repo.read_blob(blob_id, loc)
            except DestinationError as exc:
                raise DestinationError(f"data is missing ({exc})") from exc
            if sparse:
                _write_sparse(fd, data)
            else:
                _write_all(fd, data)
            written += len(data)
        os.ftruncate(fd, written)
    finally:
        os.close(fd)
    _apply_metadata(path, node, follow=True)
    return written


def _write_sparse(fd: int, data: bytes) -> None:
    """Write ``data``, leaving holes where whole 16 KiB blocks are zero."""
    view = memoryview(data)
    for start in range(0, len(view), SPARSE_BLOCK):
        block = view[start : start + SPARSE_BLOCK]
        if block == _ZEROS[: len(block)]:
            os.lseek(fd, len(block), os.SEEK_CUR)
        else:
            _write_all(fd, block)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
