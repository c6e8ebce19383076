"""Real-time change watching (watchdog) feeding the change journal.

Every backup set's paths are watched recursively for changes that alter what a
backup would store (create, modify, attributes, delete, move, close after
write); reads are not watched. Each event's path goes to the journal of every
set that contains it, except paths below the agent home or a destination.

Lost events force a full scan of the sets concerned: a kernel queue overflow
(watchdog logs it; ``_OverflowSpy`` catches that record), a watched folder that
disappears or a watcher that dies (the service restarts it), and sleep (the
service's ``SleepDetector``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from watchdog.events import (
    DirAttribEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from agent.service.journal import ChangeJournal

log = logging.getLogger("cairn.service.watcher")

EVENTS = [FileCreatedEvent, FileModifiedEvent, FileAttribEvent, FileDeletedEvent,
          FileMovedEvent, FileClosedEvent, DirCreatedEvent, DirDeletedEvent, DirMovedEvent,
          DirAttribEvent]
#: Journal entry meaning "this folder's own metadata changed": its parent lists it
#: again without walking below it. NUL never occurs in a real file name.
DIR_SELF = "\x00"


class _OverflowSpy(logging.Handler):
    """Watchdog reports a kernel queue overflow only in its log; turn that into a call."""

    def __init__(self, on_overflow: Callable[[], None]) -> None:
        super().__init__(logging.WARNING)
        self._on_overflow = on_overflow

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self._on_overflow()


class _Handler(FileSystemEventHandler):
    def __init__(self, route: Callable[[list[str]], None]) -> None:
        self._route = route

    def on_any_event(self, event: FileSystemEvent) -> None:
        src = os.fsdecode(event.src_path)
        paths = [os.path.join(src, DIR_SELF) if isinstance(event, DirAttribEvent) else src]
        if event.dest_path:
            paths.append(os.fsdecode(event.dest_path))
        self._route([p for p in paths if p])


class Watcher:
    """Watches the sets' roots; ``lost`` is told which sets missed events and why."""

    def __init__(self, journal: ChangeJournal, lost: Callable[[str | None, str], None]) -> None:
        self._journal, self._lost = journal, lost
        self._lock = threading.Lock()
        self._observer: Observer | None = None  # type: ignore[valid-type]
        self._roots: list[tuple[str, str]] = []  # (root path, set name)
        self._ignored: tuple[str, ...] = ()
        self._watched: set[str] = set()
        self._wanted: dict[str, tuple[str, ...]] = {}
        self._spy = _OverflowSpy(lambda: lost(None, "file change events overflowed"))
        watchdog_log = logging.getLogger("watchdog")
        watchdog_log.setLevel(logging.WARNING)
        watchdog_log.addHandler(self._spy)

    def watching(self, name: str) -> bool:
        return name in self._watched

    def start(self, sets: dict[str, tuple[str, ...]], ignored: tuple[str, ...]) -> None:
        """(Re)start watching ``sets`` (name → paths); paths below ``ignored`` are skipped."""
        with self._lock:
            self._stop_observer()
            self._wanted, self._ignored = dict(sets), tuple(os.path.join(p, "") for p in ignored)
            self._roots = sorted(((os.path.abspath(p), name) for name, paths in sets.items()
                                  for p in paths), reverse=True)
            self._observer = Observer()
            self._watched = set()
            for name, paths in sets.items():
                if self._schedule(name, paths):
                    self._watched.add(name)
            self._observer.start()

    def _schedule(self, name: str, paths: tuple[str, ...]) -> bool:
        handler = _Handler(self._route)
        ok = True
        for path in paths:
            if not os.path.exists(path):
                log.info("%s (set %s) does not exist; watching it once it does.", path, name)
                ok = False
                continue
            recursive = os.path.isdir(path)
            target = path if recursive else os.path.dirname(path)
            try:
                self._observer.schedule(handler, target, recursive=recursive,  # type: ignore
                                        event_filter=EVENTS)
            except OSError as exc:
                log.warning("Cannot watch %s for set %s (%s); it will be scanned in full.",
                            path, name, exc.strerror or exc)
                ok = False
        return ok

    def healthy(self) -> bool:
        """True while the observer and every watch it holds are alive."""
        observer = self._observer
        if observer is None or not observer.is_alive():
            return False
        return all(e.is_alive() for e in list(observer.emitters))

    def retry_unwatched(self) -> list[str]:
        """Try again to watch sets whose folders were missing; returns those now watched."""
        added = []
        with self._lock:
            for name, paths in self._wanted.items():
                if name in self._watched or not all(os.path.exists(p) for p in paths):
                    continue
                self._lost(name, "its folders are watched only from now on")
                if self._schedule(name, paths):
                    self._watched.add(name)
                    added.append(name)
        return added

    def restart(self) -> None:
        """Restart after a failure; every set is scanned in full by its next run."""
        self._lost(None, "the file watcher restarted")
        self.start(self._wanted, tuple(p.rstrip(os.sep) for p in self._ignored))

    def stop(self) -> None:
        with self._lock:
            self._stop_observer()
        logging.getLogger("watchdog").removeHandler(self._spy)

    def _stop_observer(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=2)

    def _route(self, paths: list[str]) -> None:
        by_set: dict[str, list[str]] = {}
        for path in paths:
            if path.startswith(self._ignored):
                continue
            for root, name in self._roots:
                if path == root or path.startswith(root + os.sep):
                    by_set.setdefault(name, []).append(path)
        for name, changed in by_set.items():
            self._journal.record(name, changed)
