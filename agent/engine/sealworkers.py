"""Small files on worker processes: read, hash, skip known, compress, encrypt.

Many small files are bound by per-file Python work, which threads serialize on
the GIL; worker processes run it on every core. A worker is a fresh, lean
Python (``python -m agent.engine.sealworkers``) that imports only the codec and
what reads files: 22.6 MiB resident after its imports, against 25.3 MiB when
it also imported pyfastcdc (needed only if a small file grew past the chunking
minimum), the thread pool and SQLite. Measured on the full benchmark set, this
design replaced ``ProcessPoolExecutor`` with ``forkserver``, whose server and
resource-tracker processes added 25 MB to a first backup's memory and whose
workers were 32 MB each. ``subprocess`` starts it safely from a threaded
process, on every platform.

Each worker gets the archive keys and a read-only snapshot of the known blob IDs
once, at start; it returns, per batch, each file's blob IDs and extended
attributes (or why it could not be read) and the sealed blobs it did not know.
The parent's ``PackSink`` drops the few duplicates two workers both sealed.
Each worker opens a batch's files ahead of the sealing and has the kernel start
reading them (``agent.scan.source.open_ahead``), so a cold disk has many reads
in flight rather than one, without reader threads; where the kernel takes no
such advice (Windows, macOS), a few reader threads read ahead instead.
Large files stay on threads (zstd releases the GIL there, and their sealed
chunks would otherwise cross a pipe in bulk); while they do, idle workers are
ended and started again when small files queue up (``SealPool.shrink``, ``grow``).

Wire format on the worker's stdin and stdout (private to one run): every
message is a 4-byte big-endian length and a pickle. The first request is
``(master_key, known_ids_raw)``; each later one a list of paths. Each answer is
``(outcomes, blobs)`` for one request, in request order (``FileOutcome`` and
``SealedBlob`` below), or ``("error", text)`` when the worker failed. A worker
exits when its stdin closes. If a worker dies, its unanswered batches are
reported as ``WorkerLost`` (the caller reads them on a thread instead) and it
takes no more work.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, BinaryIO

from agent.allocator import worker_environment
from agent.archive.known_ids import KnownIds
from agent.chunk.chunker import MIN_SIZE, Chunker
from agent.codec.envelope import ObjectType, seal
from agent.codec.keys import ArchiveKeys
from agent.scan.source import ADVISES_READ_AHEAD, open_ahead, open_source, read_small
from agent.scan.xattrs import read_xattrs

if TYPE_CHECKING:
    from concurrent.futures import Executor

FileOutcome = tuple[list[bytes] | None, int, str | None, dict[str, str] | None]
"""A file's blob IDs, bytes read, error (or None), extended attributes (or None).
IDs are None for a file that grew past ``MIN_SIZE`` since the walk: a worker reads
only small files whole, so the parent reads that one again, streaming."""
SealedBlob = tuple[bytes, bytes, int]  # ID, sealed bytes, plaintext length
BatchResult = tuple[list[FileOutcome], list[SealedBlob]]
Callback = Callable[[BatchResult | BaseException], None]

_LENGTH = struct.Struct(">I")
READ_AHEAD = 64  # files a worker opens ahead: a whole batch (backup.BATCH_FILES)
READER_THREADS = 4  # without read-ahead advice: files read at once (11 % faster cold than one)


class WorkerLost(Exception):
    """A worker process ended before answering; its batch was not sealed."""


def _send(stream: BinaryIO, message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)))
    stream.write(data)
    stream.flush()


def _receive(stream: BinaryIO) -> object:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError
    (length,) = _LENGTH.unpack(head)
    body = stream.read(length)
    if len(body) < length:
        raise EOFError
    return pickle.loads(body)


_started_early: list[subprocess.Popen] = []


def _start_process() -> subprocess.Popen:
    return subprocess.Popen(  # -P: never import from the current folder
        [sys.executable, "-P", "-m", "agent.engine.sealworkers"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=64 * 1024,
        env=worker_environment(),
    )


def start_early(count: int) -> None:
    """Start ``count`` workers now, for the next ``SealPool`` to adopt.

    ``cairn backup`` calls this at start-up for a first backup into an archive
    (``agent.launch``): the workers' interpreters start and import while the
    process derives its key and the crawl waits on the disk, so the run's
    small files go to ready workers from its first batch. Workers no pool
    adopted are ended when the process exits.
    """
    if not _started_early:
        atexit.register(_end_unadopted)
    _started_early.extend(_start_process() for _ in range(count))


def started_early() -> bool:
    """True while workers started by ``start_early`` wait for a pool."""
    return bool(_started_early)


def _end_unadopted() -> None:
    while _started_early:
        proc = _started_early.pop()
        proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]


class SealWorker:
    """One worker process; batches are answered in order on a reader thread."""

    def __init__(self, keys: ArchiveKeys, known_raw: bytes,
                 proc: subprocess.Popen | None = None) -> None:
        """Start a worker, or adopt ``proc`` (one from ``start_early``)."""
        self._proc = proc or _start_process()
        self._lock = threading.Lock()
        self._waiting: deque[Callback] = deque()
        self.alive = True
        with contextlib.suppress(OSError):  # an adopted worker that died: its reader sees
            _send(self._proc.stdin, (keys.master, known_raw))  # EOF and fails its batches
        self._reader = threading.Thread(target=self._read_answers, name="seal-answers",
                                        daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def pending(self) -> int:
        return len(self._waiting)

    def submit(self, paths: list[str], done: Callback) -> bool:
        """Seal ``paths`` in the worker; ``done`` gets the result or ``WorkerLost``.
        False (and ``done`` is not called) if the worker has ended or was retired."""
        with self._lock:
            if not self.alive:
                return False
            self._waiting.append(done)
            with contextlib.suppress(OSError):  # it died: the reader fails what waits
                _send(self._proc.stdin, paths)  # type: ignore[arg-type]
        return True

    def retire(self) -> bool:
        """End the worker if it has nothing to do (it takes no more work); True if so."""
        with self._lock:
            if self._waiting or not self.alive:
                return False
            self.alive = False
            with contextlib.suppress(OSError):
                self._proc.stdin.close()  # type: ignore[union-attr]
        return True

    def _read_answers(self) -> None:
        stdout = self._proc.stdout
        while True:
            try:
                answer = _receive(stdout)  # type: ignore[arg-type]
            except (EOFError, OSError):
                break
            except Exception:  # an answer that does not decode: the stream is out of step
                with contextlib.suppress(OSError):
                    self._proc.kill()
                break
            done = self._waiting.popleft()
            if isinstance(answer, tuple) and answer and answer[0] == "error":
                done(RuntimeError(f"A backup worker process failed: {answer[1]}"))
            else:
                done(answer)  # type: ignore[arg-type]
        with self._lock:
            self.alive = False
            lost, self._waiting = list(self._waiting), deque()
        for done in lost:
            done(WorkerLost("the worker process ended"))

    def close(self) -> None:
        """Let the worker finish what it was given, then reap it."""
        with contextlib.suppress(OSError):
            self._proc.stdin.close()  # type: ignore[union-attr]
        self._reader.join()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()  # type: ignore[union-attr]

    def kill(self) -> None:
        """End the worker now (a cancelled run); waiting batches get ``WorkerLost``."""
        with contextlib.suppress(OSError):
            self._proc.kill()
        self.close()


class SealPool:
    """Worker processes started on demand (or adopted from ``start_early``); each
    batch goes to the least busy one.

    Idle workers can be ended while the run has other work for the cores
    (``shrink``: a first backup's large files, which chunk on threads) and
    started again when small files queue up (``grow``). Each worker holds ~30 MiB,
    so this keeps them out of memory while they would only wait. A pool shrinks
    at most ``MAX_SHRINKS`` times, so a tree that alternates large files and many
    small ones costs at most that many worker start-ups.
    """

    MAX_SHRINKS = 4

    def __init__(self, keys: ArchiveKeys, known_raw: bytes, processes: int) -> None:
        self._keys, self._known_raw, self._processes = keys, known_raw, processes
        adopted = [_started_early.pop() for _ in range(min(processes, len(_started_early)))]
        self.workers = [SealWorker(keys, known_raw, proc) for proc in adopted]
        self.workers += [SealWorker(keys, known_raw) for _ in range(processes - len(adopted))]
        self._resize = threading.Lock()
        self._shrinks = 0
        self._shrunk = False  # workers were ended by ``shrink`` and not started again

    def submit(self, paths: list[str], done: Callback) -> None:
        while True:
            alive = [w for w in self.workers if w.alive]
            if not alive:
                done(WorkerLost("every worker process ended"))
                return
            if min(alive, key=lambda w: w.pending).submit(paths, done):
                return  # else it ended just now (retired, or died): choose again

    def shrink(self) -> int:
        """End idle workers while more than one is left; how many were ended."""
        with self._resize:
            if self._shrinks >= self.MAX_SHRINKS:
                return 0
            alive = [w for w in self.workers if w.alive]
            ended = 0
            for worker in alive:
                if len(alive) - ended > 1:
                    ended += worker.retire()
            if ended:
                self._shrinks += 1
                self._shrunk = True
            return ended

    def grow(self) -> bool:
        """Start again the workers ``shrink`` ended; True if it started any."""
        with self._resize:
            if not self._shrunk:
                return False
            self._shrunk = False
            missing = self._processes - sum(w.alive for w in self.workers)
            self.workers += [SealWorker(self._keys, self._known_raw) for _ in range(missing)]
            return missing > 0

    def close(self, cancel: bool = False) -> None:
        for worker in self.workers:
            worker.kill() if cancel else worker.close()


Read = tuple[bytes | None, dict[str, str] | None] | OSError
"""A small file's bytes (None if it grew past ``MIN_SIZE`` since the walk) and
extended attributes, or why it could not be read."""


def _read_open(opened: BinaryIO) -> Read:
    try:
        with opened as f:
            return read_small(f, MIN_SIZE), read_xattrs(f.fileno())
    except OSError as exc:
        return exc


def _read_path(path: str) -> Read:
    try:
        return _read_open(open_source(path))
    except OSError as exc:
        return exc


def read_in_order(paths: list[str], readers: Executor | None) -> Iterator[tuple[str, Read]]:
    """Each small file of a batch read, in order, with many reads in flight.

    Where the kernel takes read-ahead advice (``readers`` None) the files are
    opened ahead on this thread; elsewhere ``readers`` threads read them ahead.
    """
    if readers is not None:
        yield from zip(paths, readers.map(_read_path, paths), strict=True)
        return
    for path, opened in open_ahead(paths, READ_AHEAD):
        yield path, opened if isinstance(opened, OSError) else _read_open(opened)


def seal_files(keys: ArchiveKeys, known: KnownIds, seen: set[bytes], paths: list[str],
               readers: Executor | None = None) -> BatchResult:
    """Read and seal a batch of small files; ``seen`` holds IDs this worker sealed.

    On a cold cache each small file is a wait for the disk: the files are read
    ahead of the sealing (``read_in_order``), so many waits overlap.
    """
    outcomes: list[FileOutcome] = []
    blobs: list[SealedBlob] = []
    for path, read in read_in_order(paths, readers):
        if isinstance(read, OSError):
            outcomes.append(([], 0, f"{path}: {read.strerror or read}", None))
            continue
        data, xattrs = read
        if data is None:
            outcomes.append((None, 0, None, None))
            continue
        chunks = [data] if len(data) < MIN_SIZE else Chunker(keys.chunker_seed).chunks_of(data)
        ids = []
        for chunk in chunks:
            if not chunk:
                continue
            blob_id = keys.blob_id(chunk)
            if blob_id not in seen and blob_id not in known:
                seen.add(blob_id)
                blobs.append((blob_id, seal(keys, ObjectType.DATA, blob_id, chunk), len(chunk)))
            ids.append(blob_id)
        outcomes.append((ids, len(data), None, xattrs))
    return outcomes, blobs


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """The worker's loop: the keys first, then one answer per batch of paths."""
    master, known_raw = _receive(requests)  # type: ignore[misc]
    keys, known, seen = ArchiveKeys.from_master(master), KnownIds(known_raw), set()
    readers = None
    if not ADVISES_READ_AHEAD:  # imported only here: logging and all cost each worker memory
        from concurrent.futures import ThreadPoolExecutor

        readers = ThreadPoolExecutor(READER_THREADS, thread_name_prefix="read")
    while True:
        try:
            paths = _receive(requests)
        except EOFError:
            return
        try:
            answer: object = seal_files(keys, known, seen, paths, readers)  # type: ignore[arg-type]
        except Exception as exc:  # reported to the parent, which fails the run with it
            answer = ("error", f"{type(exc).__name__}: {exc}")
        _send(answers, answer)


if __name__ == "__main__":
    stdout = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing may write into the answer stream by accident
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError, EOFError):
        serve(sys.stdin.buffer, stdout)  # EOFError: the parent ended before the keys came
    os._exit(0)
