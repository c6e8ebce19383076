"""Restore's file writer: reads each needed pack once, in order, and writes its blobs.

Files are created (and sized) as the tree walk meets them; their blobs are
grouped by pack. Worker threads then take whole packs: the pack's needed blobs
are read in order, in spans of at most 4 MiB (sequential I/O, a few requests
per pack on a server, bounded memory), each blob decrypted and verified once,
and written with ``pwrite`` at every offset where it is used. A file is
finished (metadata applied) when its last blob lands; a file with a damaged or
missing blob is removed and reported, and every other file still restores.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from agent.archive.index_cache import BlobLocation
from agent.archive.repository import Repository
from agent.codec.envelope import open_blob
from agent.engine.progress import Progress
from agent.errors import CairnError, Interrupted

_CREATE_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
                 | getattr(os, "O_BINARY", 0))
_WRITE_FLAGS = os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
SPARSE_BLOCK = 16 * 1024
_ZEROS = memoryview(bytes(SPARSE_BLOCK))
MAX_SPAN_GAP = 4 * 1024 * 1024  # read around unneeded blobs smaller than this
MAX_SPAN = 4 * 1024 * 1024  # bytes of a pack held per read (a bigger blob is read alone)


@dataclass
class _File:
    path: Path
    node: dict
    remaining: int
    error: str | None = None


@dataclass
class _Use:
    """One place a blob is written: which file, at which offset."""

    file: _File
    offset: int


@dataclass
class _Plan:
    """What one pack contributes: blob → location and uses."""

    blobs: dict[bytes, tuple[BlobLocation, list[_Use]]] = field(default_factory=dict)


class PackOrderedWriter:
    """Collects files during the tree walk, then restores them pack by pack."""

    def __init__(self, repo: Repository, workers: int, progress: Progress,
                 cancel: threading.Event, on_done: Callable[[Path, dict, str | None, int], None],
                 ) -> None:
        self._repo, self._workers, self._progress, self._cancel = repo, workers, progress, cancel
        self._on_done = on_done
        self._packs: dict[str, _Plan] = defaultdict(_Plan)
        self._lock = threading.Lock()

    def add(self, path: Path, node: dict) -> None:
        """Create the file now (sized, sparse) and plan its blobs."""
        ids = [bytes.fromhex(h) for h in node.get("content", ())]
        entry = _File(path, node, remaining=len(ids))
        try:
            if path.is_symlink():
                path.unlink()
            fd = os.open(path, _CREATE_FLAGS, 0o600)
            try:
                os.ftruncate(fd, node.get("size", 0))
            finally:
                os.close(fd)
        except OSError as exc:
            self._on_done(path, node, exc.strerror or str(exc), 0)
            return
        offset = 0
        for blob_id in ids:
            try:
                loc = self._repo.locate(blob_id)
            except CairnError as exc:
                entry.error = str(exc)
                entry.remaining -= 1
                continue
            plan = self._packs[loc.pack]
            uses = plan.blobs.setdefault(blob_id, (loc, []))[1]
            uses.append(_Use(entry, offset))
            offset += loc.raw_length
        if entry.remaining == 0:
            self._finish(entry)

    def run(self) -> None:
        """Restore every planned pack on the worker threads."""
        packs, self._packs = self._packs, defaultdict(_Plan)
        with ThreadPoolExecutor(self._workers, thread_name_prefix="restore") as pool:
            for future in [pool.submit(self._restore_pack, name, plan)
                           for name, plan in sorted(packs.items())]:
                future.result()

    def _restore_pack(self, pack: str, plan: _Plan) -> None:
        if self._cancel.is_set():
            raise Interrupted("Restore cancelled.")
        for start, data, blobs in self._spans(pack, plan):
            for blob_id, (loc, uses) in blobs:
                self._write_blob(blob_id, loc, uses, data, start)

    def _spans(self, pack: str, plan: _Plan):
        """Read the pack in few requests (gaps under MAX_SPAN_GAP merged), each at most
        MAX_SPAN long unless one blob is longer: memory stays bounded per worker."""
        items = sorted(plan.blobs.items(), key=lambda kv: kv[1][0].offset)
        group: list = []
        for item in items:
            loc = item[1][0]
            if group and (loc.offset - _end(group[-1][1][0]) > MAX_SPAN_GAP
                          or _end(loc) - group[0][1][0].offset > MAX_SPAN):
                yield self._read_span(pack, group)
                group = []
            group.append(item)
        if group:
            yield self._read_span(pack, group)

    def _read_span(self, pack: str, group: list):
        start, end = group[0][1][0].offset, _end(group[-1][1][0])
        try:
            data = self._repo.dest.read("data", pack, start, end - start)
        except CairnError as exc:
            data = exc
        return start, data, group

    def _write_blob(self, blob_id: bytes, loc: BlobLocation, uses: list[_Use],
                    data: bytes | CairnError, start: int) -> None:
        error = None
        plain = b""
        if isinstance(data, CairnError):
            error = f"data is missing ({data})"
        else:
            sealed = memoryview(data)[loc.offset - start : _end(loc) - start]
            try:
                if len(sealed) != loc.length:
                    raise CairnError(f"pack {loc.pack[:12]} is shorter than its index says")
                plain = open_blob(self._repo.keys, loc.type, blob_id, sealed, loc.raw_length)
            except CairnError as exc:
                error = str(exc)
        for use in uses:
            if error is None and use.file.error is None:
                try:
                    _pwrite_file(use.file, plain, use.offset)
                    self._progress.bytes_done += len(plain)
                except OSError as exc:
                    error_here = exc.strerror or str(exc)
                    use.file.error = use.file.error or error_here
            elif use.file.error is None:
                use.file.error = error
            with self._lock:
                use.file.remaining -= 1
                last = use.file.remaining == 0
            if last:
                self._finish(use.file)

    def _finish(self, entry: _File) -> None:
        if entry.error:
            entry.path.unlink(missing_ok=True)
        self._progress.files_done += 1
        self._on_done(entry.path, entry.node, entry.error, entry.node.get("size", 0))


def _end(loc: BlobLocation) -> int:
    return loc.offset + loc.length


def _pwrite_file(entry: _File, plain: bytes, offset: int) -> None:
    fd = os.open(entry.path, _WRITE_FLAGS)
    try:
        if entry.node.get("sparse"):
            _pwrite_sparse(fd, plain, offset)
        else:
            _pwrite_all(fd, memoryview(plain), offset)
    finally:
        os.close(fd)


def _pwrite_sparse(fd: int, data: bytes, offset: int) -> None:
    """Write ``data`` at ``offset``, leaving holes where whole 16 KiB blocks are zero."""
    view = memoryview(data)
    for start in range(0, len(view), SPARSE_BLOCK):
        block = view[start : start + SPARSE_BLOCK]
        if block != _ZEROS[: len(block)]:
            _pwrite_all(fd, block, offset + start)


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        written = _pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _pwrite(fd: int, view: memoryview, offset: int) -> int:
    if hasattr(os, "pwrite"):
        return os.pwrite(fd, view, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # Windows
    return os.write(fd, view)
