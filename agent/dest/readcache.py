"""Small reads of packs served from aligned windows, so restores make few round trips.

Tree walks (restore, ``ls``, a backup's parent snapshot) read one blob at a
time, and most such blobs are small and sit next to each other in their pack,
because backup packs a folder's trees and files together. Over HTTP each read
is a round trip, which costs far more than the bytes. So a read of a data pack of at most ``small``
bytes fetches the whole ``window``-aligned window around it (one range request)
and keeps the last ``capacity`` windows; the next blobs usually come from
memory. Larger reads, reads crossing a window edge and other kinds pass
straight through. At most ``window`` bytes are read beyond what was asked per
request. Every blob is still verified by the caller (envelope and ID), so a
cached window cannot smuggle in wrong data.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from agent.dest.base import Destination

WINDOW = 1024 * 1024
SMALL = 256 * 1024
CAPACITY = 32  # windows kept: 32 MiB at most


class _Pending:
    """A window being fetched by one thread; others wait for it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.data: bytes | None = None


class WindowedReads:
    """Wraps a Destination; see the module docstring."""

    def __init__(self, inner: Destination, window: int = WINDOW, small: int = SMALL,
                 capacity: int = CAPACITY) -> None:
        self.inner = inner
        self.description = inner.description
        self._window, self._small, self._capacity = window, small, capacity
        self._cache: OrderedDict[tuple[str, int], bytes | _Pending] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, kind: str, name: str, offset: int = 0, length: int | None = None) -> bytes:
        start = offset - offset % self._window
        if kind != "data" or length is None or length > self._small \
                or offset + length > start + self._window:
            return self.inner.read(kind, name, offset, length)
        data = self._window_at(name, start)
        return data[offset - start: offset - start + length]

    def _window_at(self, name: str, start: int) -> bytes:
        key = (name, start)
        with self._lock:
            entry = self._cache.get(key)
            if isinstance(entry, bytes):
                self._cache.move_to_end(key)
                return entry
            if entry is None:
                entry = self._cache[key] = _Pending()
                mine = True
            else:
                mine = False
        if not mine:
            entry.done.wait()
            if entry.data is not None:
                return entry.data
            return self.inner.read("data", name, start, self._window)  # the fetcher failed
        try:
            entry.data = self.inner.read("data", name, start, self._window)
        finally:
            entry.done.set()
            with self._lock:
                if entry.data is None:
                    self._cache.pop(key, None)
                else:
                    self._cache[key] = entry.data
                    while len(self._cache) > self._capacity:
                        self._cache.popitem(last=False)
        return entry.data

    def is_empty(self) -> bool:
        return self.inner.is_empty()

    def list(self, kind: str) -> dict[str, int]:
        return self.inner.list(kind)

    def put_bytes(self, kind: str, name: str, data: bytes) -> None:
        self.inner.put_bytes(kind, name, data)

    def put_file(self, kind: str, name: str, path: Path) -> None:
        self.inner.put_file(kind, name, path)

    def remove(self, kind: str, name: str) -> None:
        with self._lock:
            for key in [k for k in self._cache if k[0] == name]:
                if isinstance(self._cache[key], bytes):
                    del self._cache[key]
        self.inner.remove(kind, name)

    def staging_dir(self) -> Path:
        return self.inner.staging_dir()
