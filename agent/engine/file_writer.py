"""Restore's file writer: reads each needed pack once, in order, and writes its blobs.

The tree walk hands over files; ``run`` then locates every blob they need in
one batched index lookup and groups the blobs by pack. Worker threads take
whole packs: the pack's needed blobs are read in order, in spans of at most
4 MiB (sequential I/O, a few requests per pack on a server, bounded memory),
each blob decrypted and verified once, and written with ``pwrite`` at every
offset where it is used. A file made of one blob (most files) is created,
written and closed by the worker that holds its blob, in one open; longer files
are created and sized before the workers start. A file is finished (metadata
applied) when its last blob lands; a file with a damaged or missing blob is
reported and not left behind (removed if this restore created it; a file that
could not be created, e.g. a folder in the way, is left as it was), and every
other file still restores. A restore cancelled (or failed) midway keeps the
files it finished and removes the ones it had created but not finished, so no
full-size file with holes of zeros is left looking restored.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from agent.archive.index_cache import BlobLocation
from agent.archive.repository import Repository
from agent.codec.envelope import open_blob
from agent.engine.progress import Progress
from agent.errors import CairnError, Interrupted

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # opening a FIFO planted meanwhile fails, not waits
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NOFOLLOW | getattr(os, "O_BINARY", 0)
_WRITE_FLAGS = os.O_WRONLY | _NOFOLLOW | getattr(os, "O_BINARY", 0)
SPARSE_BLOCK = 16 * 1024
_ZEROS = memoryview(bytes(SPARSE_BLOCK))
MAX_SPAN_GAP = 4 * 1024 * 1024  # read around unneeded blobs smaller than this
MAX_SPAN = 4 * 1024 * 1024  # bytes of a pack held per read (a bigger blob is read alone)

OnDone = Callable[[str, dict, "str | None", int], None]


class _File:
    """One file being restored: how many of its blob uses are still to land."""

    __slots__ = ("created", "error", "node", "path", "remaining", "whole")

    def __init__(self, path: str, node: dict) -> None:
        self.path, self.node = path, node
        self.remaining = len(node.get("content", ()))
        self.error: str | None = None
        self.whole = self.remaining == 1  # one blob: the worker creates and writes it at once
        self.created = False  # only a file this restore created is removed when it fails


class _Stopped(Exception):
    """A pack left unfinished because another pack's restore failed."""


# Where one blob goes: the files (and offsets in them) that use it.
_Uses = list[tuple[_File, int]]


class PackOrderedWriter:
    """Collects files during the tree walk, then restores them pack by pack."""

    def __init__(self, repo: Repository, workers: int, progress: Progress,
                 cancel: threading.Event, on_done: OnDone) -> None:
        self._repo, self._workers, self._progress, self._cancel = repo, workers, progress, cancel
        self._on_done = on_done
        self._files: list[_File] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()  # a pack failed (or the run stops): start no more
        self._error: BaseException | None = None  # the first pack's failure

    def add(self, path: str, node: dict) -> None:
        """Plan a file; an empty one is created at once."""
        entry = _File(path, node)
        if entry.remaining:
            self._files.append(entry)
            return
        _create_planned(entry)
        self._finish(entry)

    def run(self) -> None:
        """Locate every planned blob, create the multi-blob files, restore pack by pack."""
        files, self._files = self._files, []
        packs = self._plan(files)
        for entry in files:
            if entry.remaining == 0:
                self._finish(entry)  # none of its blobs is in the index
            elif not entry.whole and entry.error is None:
                _create_planned(entry)
        sized = [entry for entry in files if entry.created and not entry.whole]
        del files
        pool = ThreadPoolExecutor(self._workers, thread_name_prefix="restore")
        try:
            for future in [pool.submit(self._restore_pack, name, packs.pop(name))
                           for name in sorted(packs)]:
                future.result()
        except BaseException as exc:  # cancelled, interrupted or failed: stop, and leave
            self._stop.set()          # no file half written
            pool.shutdown(cancel_futures=True)
            for entry in sized:
                if entry.remaining:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
            raise self._error or exc  # noqa: B904 - the first failure, not a pack it stopped
        finally:
            pool.shutdown()

    def _plan(self, files: list[_File]) -> dict[str, dict[bytes, tuple[BlobLocation, _Uses]]]:
        """Group every blob use by pack: pack → blob ID → (location, uses)."""
        found = self._repo.cache.lookup_many(
            {bytes.fromhex(h) for entry in files for h in entry.node["content"]})
        packs: dict[str, dict[bytes, tuple[BlobLocation, _Uses]]] = defaultdict(dict)
        for entry in files:
            offset = 0
            for blob_id in map(bytes.fromhex, entry.node["content"]):
                loc = found.get(blob_id)
                if loc is None:
                    entry.error = f"blob {blob_id.hex()[:16]} is not in the archive's index"
                    entry.remaining -= 1
                    continue
                blobs = packs[loc.pack]
                if blob_id not in blobs:
                    blobs[blob_id] = (loc, [])
                blobs[blob_id][1].append((entry, offset))
                offset += loc.raw_length
        return packs

    def _restore_pack(self, pack: str, blobs: dict[bytes, tuple[BlobLocation, _Uses]]) -> None:
        """Restore a pack's blobs, span by span; stop between spans when cancelled, or
        when another pack failed."""
        try:
            self._check_stop()
            for start, data, group in self._spans(pack, blobs):
                for blob_id, (loc, uses) in group:
                    self._write_blob(blob_id, loc, uses, data, start)
                self._check_stop()
        except _Stopped:
            raise
        except BaseException as exc:
            with self._lock:
                self._error = self._error or exc
            self._stop.set()
            raise

    def _check_stop(self) -> None:
        if self._cancel.is_set():
            raise Interrupted("Restore cancelled.")
        if self._stop.is_set():
            raise _Stopped

    def _spans(self, pack: str, blobs: dict[bytes, tuple[BlobLocation, _Uses]]):
        """Read the pack in few requests (gaps under MAX_SPAN_GAP merged), each at most
        MAX_SPAN long unless one blob is longer: memory stays bounded per worker."""
        items = sorted(blobs.items(), key=lambda kv: kv[1][0].offset)
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

    def _write_blob(self, blob_id: bytes, loc: BlobLocation, uses: _Uses,
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
        for entry, offset in uses:
            if error is None and entry.error is None:
                try:
                    _write_file(entry, plain, offset)
                    self._progress.bytes_done += len(plain)
                except OSError as exc:
                    entry.error = entry.error or exc.strerror or str(exc)
            elif entry.error is None:
                entry.error = error
            with self._lock:
                entry.remaining -= 1
                last = entry.remaining == 0
            if last:
                self._finish(entry)

    def _finish(self, entry: _File) -> None:
        if entry.error and entry.created:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
        self._progress.files_done += 1
        self._on_done(entry.path, entry.node, entry.error, entry.node.get("size", 0))


def _end(loc: BlobLocation) -> int:
    return loc.offset + loc.length


def _create(path: str, size: int) -> int:
    """Create (or truncate) a regular file at ``path``, sized; never through a symlink.

    Anything else already at ``path`` but a folder (a symlink, FIFO, socket or
    device) is replaced, never opened: a FIFO would block the restore until a
    reader came, and a device would swallow the data. ``O_NONBLOCK`` and the check
    after opening cover one swapped in meanwhile; a folder in the way is an error.
    """
    with contextlib.suppress(FileNotFoundError):
        mode = os.lstat(path).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            os.unlink(path)
    fd = _open_regular(path, _CREATE_FLAGS)
    if size:
        try:
            os.ftruncate(fd, size)
        except OSError:
            os.close(fd)
            raise
    return fd


def _open_regular(path: str, flags: int) -> int:
    """Open ``path`` with ``flags``, failing (never blocking) unless it is a regular file."""
    fd = os.open(path, flags | _NONBLOCK, 0o600)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "something other than a file is in the way", path)
    return fd


def _create_planned(entry: _File) -> None:
    """Create (sized) a file that gets its blobs later, or record why it cannot be."""
    try:
        os.close(_create(entry.path, entry.node.get("size", 0)))
        entry.created = True
    except OSError as exc:
        entry.error = exc.strerror or str(exc)


def _write_file(entry: _File, plain: bytes, offset: int) -> None:
    size = entry.node.get("size", 0)
    sparse = entry.node.get("sparse")
    if entry.whole:
        fd = _create(entry.path, size if sparse else 0)
        entry.created = True
    else:
        fd = _open_regular(entry.path, _WRITE_FLAGS)
    try:
        if sparse:
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
