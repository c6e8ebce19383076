"""Upload bandwidth limiting as a wrapper around any Destination.

``RateLimiter`` is a virtual-time token bucket (GCRA) with a one-second burst;
its rate can change while a run is in progress (someone sat down at the
computer). ``ThrottledDestination`` spends the object's size before each
``put_*`` in small steps, so a cancel request is honoured within one step.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.dest.base import Destination
from agent.errors import Interrupted

STEP = 256 * 1024
BURST_S = 1.0


class RateLimiter:
    def __init__(self, rate_bps: int = 0, now: Callable[[], float] = time.monotonic) -> None:
        self._rate, self._now = rate_bps, now
        self._next = now()
        self._lock = threading.Lock()

    @property
    def rate_bps(self) -> int:
        return self._rate

    def set_rate(self, rate_bps: int) -> None:
        with self._lock:
            self._rate = rate_bps

    def reserve(self, nbytes: int) -> float:
        """Account for ``nbytes``; returns how long to wait before sending them."""
        with self._lock:
            if self._rate <= 0:
                return 0.0
            now = self._now()
            self._next = max(self._next, now - BURST_S) + nbytes / self._rate
            return max(0.0, self._next - now - BURST_S)


class ThrottledDestination:
    """Delegates to ``inner``; writes wait for the limiter first."""

    def __init__(self, inner: Destination, limiter: RateLimiter, cancel: threading.Event) -> None:
        self._inner, self._limiter, self._cancel = inner, limiter, cancel

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _spend(self, nbytes: int) -> None:
        while nbytes > 0:
            step = min(nbytes, STEP)
            wait = self._limiter.reserve(step)
            if (wait and self._cancel.wait(wait)) or self._cancel.is_set():
                raise Interrupted("Backup cancelled.")
            nbytes -= step

    def put_file(self, kind: str, name: str, path: Path) -> None:
        self._spend(path.stat().st_size)
        self._inner.put_file(kind, name, path)

    def put_bytes(self, kind: str, name: str, data: bytes) -> None:
        self._spend(len(data))
        self._inner.put_bytes(kind, name, data)
