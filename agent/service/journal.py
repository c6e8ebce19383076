"""The change journal: paths the watcher saw change, per backup set, kept on disk.

A run ``take``s a set's journal: either the changed paths (the engine then
lists only the folders on their way, reusing the rest from the parent
snapshot) or a pending full scan with its reason (overflowed events, sleep, a
watcher restart, changed exclusions...). A successful run ``commit``s; a
failed one ``rollback``s, merging what it took back into the journal.

On disk (``service/journal/``): ``NAME.jsonl`` holds one JSON value per line —
a string is a changed path, ``{"full": reason}`` marks a pending full scan —
and ``NAME.taken.jsonl`` what a run in progress took, so a crash loses nothing.
Writes are buffered and flushed every service tick.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

MAX_PATHS = 100_000  # beyond this many distinct changes a full scan is cheaper


@dataclass(frozen=True)
class Taken:
    name: str
    dirty: frozenset[str] | None  # None: walk everything
    reason: str  # why a full scan, or how many paths changed


class ChangeJournal:
    """Thread-safe: the watcher records, the runner takes and commits."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._lock = threading.Lock()
        self._paths: dict[str, set[str]] = {}
        self._full: dict[str, str] = {}
        self._unflushed: dict[str, list[str]] = {}

    def _file(self, name: str, taken: bool = False) -> Path:
        return self._folder / (f"{name}.taken.jsonl" if taken else f"{name}.jsonl")

    def load(self, names: list[str]) -> None:
        """Read what earlier runs of the service left, including an unfinished take."""
        with self._lock:
            for name in names:
                for path in (self._file(name, taken=True), self._file(name)):
                    self._read(name, path)
                if name in self._full:
                    self._paths.pop(name, None)
                self._rewrite(name)
                self._file(name, taken=True).unlink(missing_ok=True)

    def _read(self, name: str, path: Path) -> None:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError):
            self._full[name] = "the change journal could not be read"
            return
        for line in lines:
            try:
                value = json.loads(line)
            except ValueError:
                self._full.setdefault(name, "the change journal was damaged")
                continue
            if isinstance(value, dict):
                self._full.setdefault(name, str(value.get("full", "unknown")))
            elif isinstance(value, str):
                self._paths.setdefault(name, set()).add(value)

    def record(self, name: str, paths: list[str]) -> None:
        with self._lock:
            if name in self._full:
                return
            known = self._paths.setdefault(name, set())
            fresh = [p for p in paths if p not in known]
            if not fresh:
                return
            known.update(fresh)
            if len(known) > MAX_PATHS:
                self._set_full(name, f"more than {MAX_PATHS} changes since the last backup")
                return
            self._unflushed.setdefault(name, []).extend(json.dumps(p) for p in fresh)

    def mark_full(self, name: str, reason: str) -> None:
        with self._lock:
            if name not in self._full:
                self._set_full(name, reason)

    def _set_full(self, name: str, reason: str) -> None:
        self._full[name] = reason
        self._paths.pop(name, None)
        self._unflushed[name] = [json.dumps({"full": reason})]

    def pending(self, name: str) -> tuple[str | None, int]:
        """The reason a full scan is pending (or None), and how many paths changed."""
        with self._lock:
            return self._full.get(name), len(self._paths.get(name, ()))

    def take(self, name: str) -> Taken:
        with self._lock:
            self._flush(name)
            full = self._full.pop(name, None)
            paths = self._paths.pop(name, set())
            current, taken = self._file(name), self._file(name, taken=True)
            if current.exists():
                os.replace(current, taken)
        if full is not None:
            return Taken(name, None, full)
        return Taken(name, frozenset(paths), f"{len(paths)} changed paths")

    def commit(self, taken: Taken) -> None:
        self._file(taken.name, taken=True).unlink(missing_ok=True)

    def rollback(self, taken: Taken) -> None:
        """Merge a failed run's take back, so the next run sees those changes again."""
        if taken.dirty is None:
            self.mark_full(taken.name, taken.reason)
        else:
            self.record(taken.name, sorted(taken.dirty))
        self.flush()
        self.commit(taken)

    def forget(self, name: str) -> None:
        with self._lock:
            self._paths.pop(name, None)
            self._full.pop(name, None)
            self._unflushed.pop(name, None)
            for taken in (False, True):
                self._file(name, taken).unlink(missing_ok=True)

    def flush(self) -> None:
        with self._lock:
            for name in list(self._unflushed):
                self._flush(name)

    def _flush(self, name: str) -> None:
        lines = self._unflushed.pop(name, None)
        if not lines:
            return
        if lines[0].startswith("{"):  # a full-scan marker replaces the file
            self._rewrite(name)
            return
        with contextlib.suppress(OSError), open(self._file(name), "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")

    def _rewrite(self, name: str) -> None:
        lines = ([json.dumps({"full": self._full[name]})] if name in self._full
                 else [json.dumps(p) for p in sorted(self._paths.get(name, ()))])
        tmp = self._file(name).with_suffix(".tmp")
        with contextlib.suppress(OSError):
            tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
            os.replace(tmp, self._file(name))
