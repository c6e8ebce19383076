"""Lists folders on a few threads ahead of a depth-first walker.

On a cold cache a walk is bound by the disk and the kernel (reading directory
blocks and inodes), not by Python: several folders must be in flight at once to
keep the disk busy. The crawler lists folders in the walker's own order (a
depth-first pre-order, names sorted), always taking the earliest folder still
pending, so the listings it holds are the ones the walker needs next. It stops
while ``max_entries`` listed entries wait unclaimed (more before the walk
starts, while Cairn is still loading), which bounds its memory whatever the
size of the tree; the walker lists a folder itself when it gets
there first. Lister processes end when the crawl has run dry, or when the
bound has held it back for a second (the walker is then the slower part, and
one thread keeps up without the processes' memory). When the backup starts its
worker processes for many new files, all but one end (``retire_processes``):
the seal workers need the cores, but folder-dense stretches of a first backup
still outrun a crawl thread, whose every system call hands the GIL away.

A lister process answers a request with the folder's listing and those of the
subfolders below it, up to ``SUBTREE_ENTRIES`` entries (``agent.scan.listproc``);
the crawl keeps those the walker's picker wants and queues the subfolders the
answer stopped short of.

``cairn backup`` starts a crawl of the named folders before it imports the rest
of Cairn and derives the archive key (``start_early``); the walker adopts it and
tells it what to leave out (``set_picker``, ``forget``).
"""

from __future__ import annotations

import heapq
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from agent.scan.listing import Entry, PackedListing, list_dir, subfolder_names
from agent.scan.listproc import ListerProcess, can_fork

Listing = list[Entry] | PackedListing | OSError  # as held; ``take`` gives no PackedListing
ChildPicker = Callable[[str, Sequence[Entry]], list[tuple[str, str]]]  # → (name, path) to crawl
CRAWL_THREADS = 4  # lister processes (else threads); 4 beat 2 and 3 in paired cold runs here
MAX_ENTRIES = 20_000
HEAD_START_ENTRIES = 60_000  # the bound until the walker's first take (start-up overlaps)
PIPELINE = 4  # requests outstanding per lister process
# Entries a lister process lists below a requested folder before it answers
# (``agent.scan.listproc``): 250-2000 all ran the same; this bounds what the crawl
# holds beyond ``max_entries`` to PIPELINE * SUBTREE_ENTRIES per process.
SUBTREE_ENTRIES = 500
RETIRE_AFTER_S = 1.0  # lister processes end once the bound has held the crawl back this long
# Crawl threads that go on listing once the lister processes are retired: the walker is
# then the slower part, and each thread's system calls hand the GIL away (ten interleaved
# cold first backups: one thread 6.14-6.36 s and 10.1 CPU s, four 6.33-6.59 s and 10.6).
THREADS_AFTER_RETIRING = 1
# Lister processes kept while seal workers read many new files (four interleaved pairs of
# cold first backups each: one process 5.78-6.03 s, two 5.75-6.06 s, four 5.51-5.74 s but
# 28 MiB more at the peak, none (a crawl thread) 6.07-6.60 s).
PROCESSES_WHILE_READING = 1

_RUNNING = object()
_early: tuple[list[str], Crawler] | None = None


def every_subfolder(path: str, listing: Sequence[Entry]) -> list[tuple[str, str]]:
    """The crawl's default: every subfolder, until the walker says what it leaves out."""
    prefix = path if path.endswith(os.sep) else path + os.sep
    return [(name, prefix + name) for name in subfolder_names(listing)]


def start_early(roots: list[str]) -> None:
    """Start crawling ``roots`` (absolute folder paths) for a walk that starts later.

    Call it while the process has one thread: it forks the lister processes.
    """
    global _early
    processes = [ListerProcess() for _ in range(CRAWL_THREADS)] if can_fork() else []
    crawler = Crawler(every_subfolder, processes=processes)
    crawler.seed(roots)
    _early = (sorted(roots), crawler)


def adopt_early(roots: list[str], pick_children: ChildPicker, *,
                subtree_entries: int = SUBTREE_ENTRIES) -> Crawler | None:
    """The early crawl, if it was started for exactly these roots (else it is stopped)."""
    global _early
    early, _early = _early, None
    if early is None:
        return None
    if early[0] != sorted(roots):
        early[1].close()
        return None
    early[1].set_picker(pick_children, subtree_entries=subtree_entries)
    return early[1]


class Crawler:
    """Lists folders ahead of the walker; ``take`` returns each folder's listing once."""

    def __init__(self, pick_children: ChildPicker, *, threads: int = CRAWL_THREADS,
                 max_entries: int = MAX_ENTRIES,
                 processes: list[ListerProcess] | None = None) -> None:
        self._pick_children, self._max_entries = pick_children, max_entries
        self._limit = max(max_entries, HEAD_START_ENTRIES)  # until the first take
        # One lock, two waits: crawl threads wait for work (``_cond``), the walker for a
        # folder being listed (``_ready``). Waking only who can act on a change saves
        # the rest a futex call and a GIL hand-off for every folder listed.
        lock = threading.RLock()
        self._cond = threading.Condition(lock)
        self._ready = threading.Condition(lock)
        self._heap: list[tuple[tuple, str]] = []
        self._pending: dict[str, tuple] = {}  # queued folder → its order key
        self._done: dict[str, object] = {}  # folder → listing, or _RUNNING while listed
        self._buffered = 0
        self._roots = 0
        self._listing_now = 0  # folders being listed by crawl threads
        self._pending_ever = False  # anything queued yet (before that, nothing ran dry)
        self._processes = list(processes or [])  # retired once the crawl has run dry
        self._retired = False
        self._let_go: set[int] = set()  # indexes of processes ended while others go on
        self._subtree_entries = SUBTREE_ENTRIES
        self._forgotten: list[str] = []
        self._closed = False
        self._threads = [threading.Thread(target=self._run_process, args=(p, i),
                                          name=f"crawl-{i}", daemon=True)
                         for i, p in enumerate(self._processes)]
        self._threads += [threading.Thread(target=self._run, name=f"crawl-{i}", daemon=True)
                          for i in range(len(self._threads), threads)]
        for thread in self._threads:
            thread.start()

    def seed(self, roots: list[str]) -> None:
        """Queue top folders to crawl, in the order the walker visits them."""
        with self._cond:
            for root in sorted(roots, key=lambda p: p.split(os.sep)):
                key = self._new_root_key()
                self._pending[root] = key
                self._pending_ever = True
                heapq.heappush(self._heap, (key, root))
            self._cond.notify_all()

    def _new_root_key(self) -> tuple:
        """Order key of a new top folder, after every earlier one (lock held)."""
        self._roots += 1
        return (self._roots,)

    def set_picker(self, pick_children: ChildPicker, *,
                   subtree_entries: int = SUBTREE_ENTRIES) -> None:
        """Choose which subfolders to crawl from now on (see ``forget`` for the earlier),
        and how many entries a lister process may list below a folder it is asked for
        (0 when the walk skips most subfolders: they would be listed for nothing)."""
        self._pick_children = pick_children
        self._subtree_entries = subtree_entries

    def forget(self, path: str) -> None:
        """Drop a folder the walker will not list, and all the crawl holds below it."""
        with self._cond:
            if path not in self._pending and path not in self._done:
                return  # never queued: nothing below it either
            below = path if path.endswith(os.sep) else path + os.sep
            self._forgotten.append(below)
            for held in (self._pending, self._done):
                for known in [k for k in held if k == path or k.startswith(below)]:
                    value = held.pop(known)
                    if isinstance(value, list | PackedListing):
                        self._buffered -= len(value)
            self._cond.notify_all()

    def take(self, path: str) -> list[Entry] | OSError:
        """The folder's listing: from the crawl if it got there, else read now."""
        with self._cond:
            self._limit = self._max_entries
            key = self._pending.pop(path, None)
            state = self._done.get(path)
            while state is _RUNNING:
                self._ready.wait()
                state = self._done.get(path)
            if state is not None:
                del self._done[path]
                if not isinstance(state, OSError):
                    held_back = self._buffered >= self._limit
                    self._buffered -= len(state)  # type: ignore[arg-type]
                    if held_back and self._buffered < self._limit:
                        self._cond.notify_all()  # the bound no longer holds the crawl
                if isinstance(state, PackedListing):
                    return state.entries()  # unpacked on the walker's thread, as it needs it
                return state  # type: ignore[return-value]
            if key is None:
                key = self._new_root_key()  # a folder the crawl did not know
            self._listing_now += 1  # its subfolders are still to come: the crawl is not dry
        try:
            listing = list_dir(path)
            self._queue_children(path, key, listing)
        finally:
            with self._cond:
                self._listing_now -= 1
                self._wake_if_idle()
        return listing

    def retire_processes(self, keep: int = 0) -> None:
        """End all lister processes but ``keep``; with none kept, list on one thread
        from now on. Their threads end too, once their folders in flight are listed."""
        with self._cond:
            if not keep:
                self._retire_processes()
                return
            ending, self._processes = self._processes[keep:], self._processes[:keep]
            self._let_go.update(range(keep, keep + len(ending)))
            self._cond.notify_all()  # their threads, if waiting for work
        for process in ending:
            process.close()

    def close(self) -> None:
        """Stop the crawl; folders being listed finish first."""
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify_all()
            self._ready.notify_all()
        for thread in self._threads:
            thread.join()
        self._retire_processes()

    def _run(self) -> None:
        """A crawl thread that lists folders itself."""
        while True:
            with self._cond:
                job = self._next_job(wait=True)
                if job is None:
                    return
            self._finish(*job, [(job[1], list_dir(job[1]))])

    def _run_process(self, process: ListerProcess | None, index: int) -> None:
        """A crawl thread that keeps up to PIPELINE folders queued at a lister process."""
        in_flight: deque[tuple[tuple, str]] = deque()
        while True:
            with self._cond:
                jobs = []
                while len(in_flight) + len(jobs) < PIPELINE:
                    job = self._next_job(wait=not in_flight and not jobs, thread=index)
                    if job is None:
                        break
                    jobs.append(job)
            if jobs and process is not None:
                try:
                    process.send([path for _key, path in jobs], self._subtree_entries)
                except OSError:
                    process = None
            in_flight.extend(jobs)
            if not in_flight:
                return
            key, path = in_flight.popleft()
            answer = None
            if process is not None:
                try:
                    answer = process.receive()
                    if not answer or answer[0][0] != path:
                        raise EOFError("the lister process answered out of order")
                except (EOFError, OSError):
                    answer, process = None, None
            if answer is None:  # the helper died: list the rest here
                for job in (*in_flight, (key, path)):
                    self._finish(*job, [(job[1], list_dir(job[1]))])
                in_flight.clear()
                if index in self._let_go:
                    return
                if not self._retired or index < THREADS_AFTER_RETIRING:
                    self._run()
                return
            self._finish(key, path, answer)

    def _next_job(self, *, wait: bool, thread: int = -1) -> tuple[tuple, str] | None:
        """The earliest pending folder, marked as being listed (lock held); None if closed
        or if ``thread`` was let go with its process (or, when not waiting, if there is
        none right now)."""
        cond = self._cond
        held_back_since = None
        while True:
            while not self._closed and (not self._heap or self._buffered >= self._limit):
                if thread in self._let_go:
                    return None
                if self._processes and not self._listing_now:
                    if not self._heap and self._pending_ever:
                        self._retire_processes()  # every folder found so far is listed
                    elif self._heap:  # held back by the bound: the walker is the slow part
                        held_back_since = held_back_since or time.monotonic()
                        if time.monotonic() - held_back_since >= RETIRE_AFTER_S:
                            self._retire_processes()  # a thread keeps up with such a walker
                if not wait:
                    return None
                cond.wait(RETIRE_AFTER_S if self._processes else None)
            if self._closed or thread in self._let_go:
                return None
            key, path = heapq.heappop(self._heap)
            if self._pending.pop(path, None) is not None:
                self._done[path] = _RUNNING
                self._listing_now += 1
                return key, path
            # else the walker took it already

    def _finish(self, key: tuple, path: str, answer: list[tuple[str, Listing]]) -> None:
        """Hand the walker a folder's listing, and those a lister process listed below it
        (``answer``: the folder first), and queue its subfolders.

        Only listings of folders the walker will take are kept (its picker decides,
        as for any folder); a picked subfolder the answer does not hold is queued.
        """
        listings = dict(answer)
        kept: list[tuple[str, Listing]] = []
        queued: list[tuple[tuple, str]] = []
        stack = [(key, path)]
        while stack:
            folder_key, folder = stack.pop()
            listing = listings[folder]
            kept.append((folder, listing))
            if isinstance(listing, OSError):
                continue
            for name, child in reversed(self._pick_children(folder, listing)):
                child_key = (*folder_key, name)
                (stack if child in listings else queued).append((child_key, child))
        with self._cond:
            self._listing_now -= 1
            self._wake_if_idle()
            for folder, listing in kept:
                if self._is_forgotten(folder) or (folder != path and folder in self._done):
                    continue  # left out, or a folder also crawled on its own (a nested root)
                self._pending.pop(folder, None)
                self._done[folder] = listing
                if not isinstance(listing, OSError):
                    self._buffered += len(listing)
            self._ready.notify_all()  # the walker, if it waits for one of them
            if not self._closed:
                self._queue(queued)

    def _wake_if_idle(self) -> None:
        """Nothing is being listed: crawl threads waiting with lister processes check
        whether to retire them (lock held)."""
        if not self._listing_now and self._processes:
            self._cond.notify_all()

    def _retire_processes(self) -> None:
        """End the lister processes (called with the lock held, or after the threads)."""
        self._retired = self._retired or bool(self._processes)
        for process in self._processes:
            process.close()
        self._processes = []  # only now: an empty list means every process is reaped

    def _is_forgotten(self, path: str) -> bool:
        if not self._forgotten:
            return False
        below = path if path.endswith(os.sep) else path + os.sep
        return any(below.startswith(f) for f in self._forgotten)

    def _queue_children(self, path: str, key: tuple, listing: Listing) -> None:
        if isinstance(listing, OSError):
            return
        children = self._pick_children(path, listing)
        if not children:
            return
        with self._cond:
            if not self._closed:
                self._queue([((*key, name), child) for name, child in children])

    def _queue(self, children: list[tuple[tuple, str]]) -> None:
        """Queue folders to crawl, unless forgotten meanwhile (lock held)."""
        children = [(k, child) for k, child in children if not self._is_forgotten(child)]
        for child_key, child in children:
            self._pending[child] = child_key
            self._pending_ever = True
            heapq.heappush(self._heap, (child_key, child))
        if children:
            self._cond.notify(len(children))
