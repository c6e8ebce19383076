"""Backup: scan → chunk → id → dedup → compress → encrypt → pack → store → index → snapshot.

Threads and their jobs:

- crawl threads list folders ahead of the walker (``agent.scan.crawler``), through
  lister processes when ``cairn backup`` forked them at start-up;
- the walker thread walks the sources (``agent.scan.walker``) and hands changed
  files to the worker pool in batches (small files) or one by one (large ones);
- worker threads each take whole large files: read, chunk, hash, skip known
  blobs, compress and encrypt the rest, and give sealed blobs to the ``PackSink``;
  a thread left without a file seals chunks the reader of another lends it
  (``agent.engine.lending``), so one big file still keeps every thread busy;
  batches of small files go to worker processes (``agent.engine.sealworkers``)
  once a run has many (from the first batch when ``cairn backup`` started the
  workers early, for a first backup), and their sealed blobs are packed as soon
  as a batch returns (a batch whose worker died is read on the calling thread
  instead); a large file ends the workers that sit idle, and a walk held up by
  small files starts them again (``GROW_AFTER_S``);
- uploader threads (inside the sink) store full packs and checkpoint the index;
- the calling thread builds tree blobs in post-order as their files complete,
  then writes the final index and the snapshot.

Queues are bounded, so memory stays bounded whatever the tree or file sizes.
Whole files per worker keep GIL hand-offs rare: zstd, BLAKE3 and AES-GCM all
release the GIL on large buffers.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from agent import __version__
from agent.archive.cache_db import IN_MEMORY
from agent.archive.locks import ArchiveLock
from agent.archive.reach import count_missing
from agent.archive.repository import Repository
from agent.chunk.chunker import MIN_SIZE, Chunker
from agent.codec.envelope import OVERHEAD, ObjectType, seal
from agent.engine import sealworkers
from agent.engine.lending import LentChunks
from agent.engine.progress import Progress
from agent.engine.sealworkers import BatchResult, SealPool, WorkerLost
from agent.engine.sink import PackSink
from agent.errors import ArchiveError, CacheNotWritable, IntegrityError, Interrupted
from agent.model.snapshot import Snapshot, now_iso
from agent.model.tree import decode_name, encode_tree, sort_nodes
from agent.scan.dircache import DirCache
from agent.scan.source import open_source, read_small
from agent.scan.walker import DirTask, ScanCounts, Walker
from agent.scan.xattrs import read_xattrs

BATCH_FILES = 64
PROCESS_THRESHOLD = 1000  # small files seen before worker processes pay for their start-up
BATCH_BYTES = 2 * 1024 * 1024
SEAL_BUFFER = 1024 * 1024 + OVERHEAD  # per chunk thread: compressed chunks seal into it
# A walk held up this long by full worker processes, while no large file is being read,
# starts again the workers that large files had ended (``SealPool.shrink``).
GROW_AFTER_S = 0.25
FOLDER_QUEUE = 4096  # folders walked and waiting for their tree blob
_DONE = object()


@dataclass(frozen=True)
class BackupOptions:
    paths: tuple[Path, ...]
    host: str = field(default_factory=socket.gethostname)
    device: str = ""
    username: str = ""
    excludes: tuple[str, ...] = ()
    skip_paths: tuple[Path, ...] = ()
    workers: int = os.cpu_count() or 1  # threads for large files (a third added memory, not speed)
    processes: int = os.cpu_count() or 1  # worker processes for many small files; 0 = threads
    uploaders: int = 1
    count_totals: bool = False
    dirty_paths: frozenset[str] | None = None  # from a change journal; None = full scan
    exclude_if_present: tuple[str, ...] = ()  # skip folders holding one of these names
    cancel: threading.Event = field(default_factory=threading.Event)
    snapshot_time: datetime | None = None  # the snapshot's time; None = now (tests, imports)


@dataclass
class BackupResult:
    snapshot: Snapshot
    counts: ScanCounts
    bytes_stored: int
    duration_s: float
    errors: list[str]


class _Batch:
    """Files read by one worker job; the tree builder waits on it."""

    __slots__ = ("applied", "error", "future", "items", "size", "submitted")

    def __init__(self) -> None:
        self.items: list[tuple[str, dict]] = []
        self.size = 0
        self.submitted = threading.Event()
        self.future: Future | None = None
        self.applied: threading.Event | None = None  # process batches: outcome taken
        self.error: BaseException | None = None

    def wait(self) -> None:
        """Block until the batch is done (called by the tree-building thread only)."""
        self.submitted.wait()
        if self.applied is None:
            cast(Future, self.future).result()
            return
        self.applied.wait()
        if self.error is not None:
            raise self.error


class _FileReader:
    """Chunks, dedups and seals whole files on a thread pool."""

    def __init__(self, repo: Repository, sink: PackSink, options: BackupOptions,
                 progress: Progress) -> None:
        self._repo, self._sink, self._progress = repo, sink, progress
        self._cancel = options.cancel
        self.abort = threading.Event()
        self._pool = ThreadPoolExecutor(options.workers, thread_name_prefix="chunk")
        self._workers = options.workers
        self._thread_jobs = 0  # submitted to the pool and not finished (files, batches, help)
        self._process_batches = 0  # given to worker processes and not yet taken back
        self._jobs_lock = threading.Lock()
        self._slots = threading.Semaphore(options.workers * 4)  # thread jobs queued or running
        # Process batches queued, running, or with sealed bytes not yet packed: each
        # holds up to BATCH_BYTES of blobs, so this bounds that memory.
        self._proc_slots = threading.Semaphore(max(1, options.processes) * 2)
        self._local = threading.local()
        self._batch = _Batch()
        self._processes = options.processes
        self._procs: SealPool | None = None
        self.on_processes_start: Callable[[], None] = lambda: None
        self._small_files = 0

    def read_file(self, path: str, node: dict, task: DirTask) -> None:
        if node["size"] >= MIN_SIZE:
            batch = _Batch()
            batch.items.append((path, node))
            task.waits.append(batch)
            self._submit(batch)
            return
        batch = self._batch
        batch.items.append((path, node))
        batch.size += node["size"]
        self._small_files += 1
        if not task.waits or task.waits[-1] is not batch:
            task.waits.append(batch)
        if len(batch.items) >= BATCH_FILES or batch.size >= BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._batch.items:
            batch, self._batch = self._batch, _Batch()
            self._submit(batch)

    def _submit(self, batch: _Batch) -> None:
        to_process = self._wants_process(batch)
        slots = self._proc_slots if to_process else self._slots
        if not slots.acquire(timeout=GROW_AFTER_S):
            if to_process and self._procs is not None and self._thread_jobs == 0:
                self._procs.grow()  # small files queue up, and no large file needs the cores
            while not slots.acquire(timeout=0.5):
                if self._cancel.is_set() or self.abort.is_set():
                    raise Interrupted("Backup cancelled.")
        if to_process:
            if self._procs is None:
                self.on_processes_start()
                self._procs = SealPool(self._repo.keys, self._sink.known_at_start.raw,
                                       self._processes)
            batch.applied = threading.Event()
            batch.submitted.set()
            with self._jobs_lock:
                self._process_batches += 1  # taken back in ``_take_outcome``, however it ends
            self._procs.submit([path for path, _ in batch.items],
                               lambda outcome: self._take_outcome(batch, outcome))
            return
        with self._jobs_lock:
            self._thread_jobs += 1
        batch.future = self._pool.submit(self._run, batch.items)
        batch.future.add_done_callback(self._file_job_done)
        batch.submitted.set()

    def _file_job_done(self, future: Future) -> None:
        self._slots.release()
        self._thread_job_done(future)

    def _thread_job_done(self, _: Future) -> None:
        with self._jobs_lock:
            self._thread_jobs -= 1

    def _reserve_helper(self) -> bool:
        """Claim a chunk thread with nothing to do (see ``agent.engine.lending``), unless
        worker processes are sealing small files: they have the cores then, and a lent
        chunk would only add its copy to memory."""
        with self._jobs_lock:
            if self._thread_jobs >= self._workers or self._process_batches:
                return False
            self._thread_jobs += 1
            return True

    def _start_helper(self, job: Callable[[], None]) -> None:
        try:
            future = self._pool.submit(job)
        except RuntimeError:  # the pool is shutting down: the reservation lapses
            with self._jobs_lock:
                self._thread_jobs -= 1
            raise
        future.add_done_callback(self._thread_job_done)  # also when cancelled unstarted

    def _pool_crowded(self) -> bool:
        return self._thread_jobs > self._workers

    def _wants_process(self, batch: _Batch) -> bool:
        """Small-file batches go to processes once a run has many small files, or from
        the first batch when workers were started early (``sealworkers.start_early``)."""
        small = all(node["size"] < MIN_SIZE for _, node in batch.items)
        return small and self._processes > 0 and (
            self._procs is not None or self._small_files >= PROCESS_THRESHOLD
            or sealworkers.started_early())

    def _take_outcome(self, batch: _Batch, outcome: BatchResult | BaseException) -> None:
        """As soon as a process batch is done, pack its blobs and fill in its file nodes.

        Runs on the worker's answer thread, before the batch's slot is freed: the
        sealed bytes of a finished batch never wait for the tree builder, so at
        most ``processes * 2`` batches' bytes are in memory at once. A batch whose
        worker died is read here, in this process.
        """
        try:
            if isinstance(outcome, WorkerLost):
                self._run(batch.items)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                self._apply(batch, outcome)
        except BaseException as exc:  # the worker failed, or the sink: the tree builder raises
            batch.error = exc
        finally:
            cast(threading.Event, batch.applied).set()
            with self._jobs_lock:
                self._process_batches -= 1
            self._proc_slots.release()

    def _apply(self, batch: _Batch, result: BatchResult) -> None:
        """Take a process batch's outcome: its sealed blobs, then its file nodes."""
        outcomes, blobs = result
        sink, progress = self._sink, self._progress
        for blob_id, sealed, raw_length in blobs:
            sink.add(ObjectType.DATA, blob_id, sealed, raw_length)
        grown = []
        for (path, node), (ids, total, error, xattrs) in zip(batch.items, outcomes,
                                                             strict=True):
            if ids is None:  # no longer a small file: read it again here, streaming
                grown.append((path, node))
                continue
            if error:
                node["_error"] = error
            else:
                node["content"] = [i.hex() for i in ids]
                node["size"] = total
                if xattrs:
                    node["xattrs"] = xattrs
                progress.bytes_done += total
            progress.files_done += 1
        self._run(grown)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._procs is not None:
            self._procs.close(cancel=self._cancel.is_set() or self.abort.is_set())

    def _chunker(self) -> Chunker:
        chunker = getattr(self._local, "chunker", None)
        if chunker is None:
            chunker = self._local.chunker = Chunker(self._repo.keys.chunker_seed)
        return chunker

    def _run(self, items: list[tuple[str, dict]]) -> None:
        for path, node in items:
            if self._cancel.is_set() or self.abort.is_set():
                raise Interrupted("Backup cancelled.")
            self._progress.current = path
            try:
                self._store_file(path, node)
            except OSError as exc:
                node["_error"] = f"{path}: {exc.strerror or exc}"
            self._progress.files_done += 1

    def _seal_chunk(self, blob_id: bytes, chunk: bytes | memoryview) -> None:
        """Seal into this thread's reused buffer (see ``seal``) and pack the blob."""
        buffer = getattr(self._local, "sealed", None)
        if buffer is None:  # mapped: only the pages sealed blobs reach become resident
            buffer = self._local.sealed = memoryview(mmap.mmap(-1, SEAL_BUFFER))
        sealed = seal(self._repo.keys, ObjectType.DATA, blob_id, chunk, into=buffer)
        self._sink.add(ObjectType.DATA, blob_id, sealed, len(chunk))

    def _store_file(self, path: str, node: dict) -> None:
        keys, sink, progress = self._repo.keys, self._sink, self._progress
        ids, total = [], 0
        lent: LentChunks | None = None
        with open_source(path) as f:
            xattrs = read_xattrs(f.fileno())
            if xattrs:
                node["xattrs"] = xattrs
            data = read_small(f, MIN_SIZE) if node["size"] < MIN_SIZE else None
            if data is not None:
                chunks = [data] if len(data) < MIN_SIZE else self._chunker().chunks_of(data)
            else:  # a large file, or one that grew past a small file's size since the walk
                if self._procs is not None:
                    self._procs.shrink()  # idle worker processes only hold memory now
                f.seek(0)
                chunks = self._chunker().chunks(f)
                lent = LentChunks(self._seal_chunk, self._reserve_helper, self._start_helper,
                                  self._pool_crowded)
            try:
                for chunk in chunks:
                    if not chunk:
                        continue
                    if self._cancel.is_set() or self.abort.is_set():
                        raise Interrupted("Backup cancelled.")
                    blob_id = keys.blob_id(chunk)
                    if not sink.known(blob_id) and not (lent and lent.lend(blob_id, chunk)):
                        self._seal_chunk(blob_id, chunk)
                    ids.append(blob_id.hex())
                    total += len(chunk)
                    progress.bytes_done += len(chunk)
                if lent:
                    lent.finish()
            except BaseException:
                if lent:
                    lent.abandon()
                raise
        node["content"] = ids
        node["size"] = total


def find_parent(repo: Repository, options: BackupOptions) -> Snapshot | None:
    """The newest readable snapshot of the same host and paths, if any (a damaged one
    is passed over: its files are then compared with an older snapshot, or read)."""
    wanted = sorted(str(p) for p in options.paths)
    for snap in repo.readable_snapshots():
        if snap.host == options.host and sorted(snap.paths) == wanted and not snap.is_carry:
            return snap
    return None


def run_backup(repo: Repository, options: BackupOptions,
               progress: Progress | None = None) -> BackupResult:
    """Back up ``options.paths`` into ``repo``; returns the new snapshot and counts."""
    progress = progress or Progress()
    started = time.monotonic()
    lock = ArchiveLock(repo.dest, repo.keys, exclusive=False).acquire()
    try:
        progress.phase = "preparing"
        repo.sync_index()
        repo.adopt_unindexed_packs()
        parent = find_parent(repo, options)
        sink = PackSink(repo, repo.cache.known_ids(), uploaders=options.uploaders,
                        on_stored=lambda n: setattr(progress, "bytes_stored",
                                                    progress.bytes_stored + n))
        if options.count_totals:
            _start_counting(options, progress)
        progress.phase = "backing up"
        try:
            dircache = DirCache(repo.cache_dir / "dirs.sqlite")
        except CacheNotWritable as exc:  # the folder cache is a speed-up only
            repo.note_cache_problem(exc)
            dircache = DirCache(IN_MEMORY)
        try:
            root, walker = _walk_and_build(repo, sink, options, progress, parent, lock, dircache)
            progress.phase = "finishing"
            sink.close()
        except BaseException:
            sink.abort()
            dircache.close()
            raise
        counts = walker.counts
        summary = {**vars(counts), "bytes_stored": sink.bytes_stored,
                   "errors": len(progress.errors)}
        snap = Snapshot(time=_snapshot_time(options), host=options.host,
                        device=options.device or options.host,
                        username=options.username, paths=sorted(str(p) for p in options.paths),
                        tree=root, parent=parent.id if parent else None, summary=summary,
                        program_version=__version__)
        _check_after_lapse(repo, lock, root, progress)
        repo.save_snapshot(snap)
        try:
            dircache.commit()
        except CacheNotWritable as exc:  # the snapshot is saved; the next run reads trees
            repo.note_cache_problem(exc)
        dircache.close()
        progress.phase = "done"
        return BackupResult(snap, counts, sink.bytes_stored, time.monotonic() - started,
                            list(progress.errors))
    finally:
        lock.release()


def _snapshot_time(options: BackupOptions) -> str:
    when = options.snapshot_time
    return when.astimezone(UTC).isoformat(timespec="microseconds") if when else now_iso()


def _check_after_lapse(repo: Repository, lock: ArchiveLock, root: str,
                       progress: Progress) -> None:
    """If this run's lock lapsed (the computer slept), a prune may have removed blobs the
    run reused: renew the lock, re-read the index, and write no snapshot that lacks any."""
    if not lock.lapsed:
        return
    progress.phase = "verifying"
    try:
        lock.acquire()
    except ArchiveError as exc:
        raise ArchiveError(f"This backup paused longer than its lock lease and the archive is "
                           f"now in use ({exc}); no snapshot was written. The next run reuses "
                           "what was stored.") from exc
    repo.sync_index()
    missing = count_missing(repo.tree, repo.cache.known_ids(), root)
    if missing:
        raise ArchiveError(f"This backup paused longer than its lock lease and a prune removed "
                           f"{missing} blob(s) it reused; no snapshot was written. The next run "
                           "uploads them again.")


def _walk_and_build(repo: Repository, sink: PackSink, options: BackupOptions,
                    progress: Progress, parent: Snapshot | None,
                    lock: ArchiveLock, dircache: DirCache) -> tuple[str, Walker]:
    tasks: queue.Queue = queue.Queue(maxsize=FOLDER_QUEUE)
    reader = _FileReader(repo, sink, options, progress)

    def hand_over(item: object) -> bool:
        """Queue ``item`` for the tree builder; False once it has stopped (abort is set)."""
        while not reader.abort.is_set():
            with contextlib.suppress(queue.Full):
                tasks.put(item, timeout=0.5)
                return True
        return False

    def emit(task: DirTask) -> None:
        if tasks.full():
            reader.flush()  # the tree builder may be waiting on the open batch
        if not hand_over(task):
            raise Interrupted("Backup stopped.")

    walker = Walker(repo.tree, reader.read_file, emit, excludes=options.excludes,
                    skip_paths=options.skip_paths, on_error=progress.errors.append,
                    dirty=options.dirty_paths, dircache=dircache,
                    tree_known=lambda tree: sink.known(bytes.fromhex(tree)),
                    exclude_if_present=options.exclude_if_present)

    def walk() -> None:
        """Walk, then hand over the end (or the walk's error). Never a blocking put: a
        tree builder that failed stops reading a full queue, and the run must end."""
        try:
            walker.walk(list(options.paths), parent.tree if parent else None)
            reader.flush()
            hand_over(_DONE)
        except BaseException as exc:
            with contextlib.suppress(BaseException):
                reader.flush()
            hand_over(exc)

    reader.on_processes_start = walker.retire_listers  # many new files: reading is the slow part
    thread = threading.Thread(target=walk, name="walker", daemon=True)
    thread.start()
    try:
        root = _build_trees(repo, sink, tasks, progress, options, lock, dircache)
    finally:
        if thread.is_alive():
            reader.abort.set()
        thread.join()
        reader.shutdown()
    return root, walker


def _build_trees(repo: Repository, sink: PackSink, tasks: queue.Queue, progress: Progress,
                 options: BackupOptions, lock: ArchiveLock, dircache: DirCache) -> str:
    root = ""
    while True:
        task = tasks.get()
        if task is _DONE:
            return root
        if isinstance(task, BaseException):
            raise task
        if options.cancel.is_set():
            raise Interrupted("Backup cancelled.")
        for batch in task.waits:
            batch.wait()
        nodes = []
        for node in task.nodes:
            error = node.pop("_error", None)
            if error:
                progress.errors.append(error)
            else:
                nodes.append(node)
        if task.node is not None:
            _read_folder_xattrs(task.path, nodes)
        sort_nodes(nodes)
        tree_hex = _unchanged_tree(repo, task, nodes) or _store_tree(repo, sink, nodes)
        if task.fingerprint and len(nodes) == len(task.nodes):
            dircache.record(task.path, task.fingerprint, tree_hex)
        if task.node is None:
            root = tree_hex
        else:
            task.node["subtree"] = tree_hex
        lock.refresh_if_due()


def _read_folder_xattrs(folder: str, nodes: list[dict]) -> None:
    """Extended attributes of the subfolders among a rebuilt folder's nodes.

    Read only when the parent's tree is rebuilt: a folder reused whole needs none,
    and a change of a subfolder's xattrs moves its ctime, so its parent is rebuilt.
    Read here, on the tree builder, not by the walker: each ``listxattr`` hands
    the GIL away, and the walker is the thread that feeds every other.
    """
    for node in nodes:
        if node["type"] == "dir" and "xattrs" not in node:
            xattrs = read_xattrs(os.path.join(folder, decode_name(node, "name")))
            if xattrs:
                node["xattrs"] = xattrs


def _unchanged_tree(repo: Repository, task: DirTask, nodes: list[dict]) -> str | None:
    """The parent snapshot's tree ID if this folder's nodes are exactly the same."""
    if not task.old_tree:
        return None
    try:
        old = repo.tree(task.old_tree)
    except IntegrityError:  # damaged: this run stores the folder's tree anew
        return None
    if len(old) != len(nodes):
        return None
    same = all(a is b or a == b for a, b in zip(old, nodes, strict=True))
    return task.old_tree if same else None


def _store_tree(repo: Repository, sink: PackSink, nodes: list[dict]) -> str:
    keys = repo.keys
    plain = encode_tree(nodes)
    tree_id = keys.blob_id(plain)
    if not sink.known(tree_id):
        sink.add(ObjectType.TREE, tree_id, seal(keys, ObjectType.TREE, tree_id, plain), len(plain))
    return tree_id.hex()


def _start_counting(options: BackupOptions, progress: Progress) -> None:
    """Estimate totals in the background so progress can show an ETA."""

    def count() -> None:
        files = size = 0
        for top in options.paths:
            if top.is_file():
                files, size = files + 1, size + top.stat().st_size
                continue
            for folder, _dirs, names in os.walk(top):
                for name in names:
                    try:
                        size += os.lstat(os.path.join(folder, name)).st_size
                        files += 1
                    except OSError:
                        pass
        progress.files_total, progress.bytes_total, progress.totals_known = files, size, True

    threading.Thread(target=count, name="count", daemon=True).start()
