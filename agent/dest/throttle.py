"""A bandwidth limit shared by every transfer of a run (all upload connections together).

``RateLimiter.take(n)`` blocks until ``n`` more bytes fit under the limit: a
token bucket refilled at ``rate`` bytes per second holding at most one second
of tokens, so bursts stay short. The server destination calls it for every
256 KiB piece it sends or receives, which keeps the limit smooth even with
16 MiB packs on several connections.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

from agent.errors import UsageError

_RATE_RE = re.compile(r"\A(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?(?:/s)?\Z", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
MIN_RATE = 16 * 1024


def parse_rate(text: str) -> int:
    """Bytes per second from ``500K``, ``2M``, ``1.5MiB/s``, ``800000``."""
    match = _RATE_RE.match(text.strip())
    if not match:
        raise UsageError(f"{text!r} is not a rate such as 500K or 2M (bytes per second).")
    rate = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if rate < MIN_RATE:
        raise UsageError(f"A bandwidth limit below {MIN_RATE // 1024} KiB/s is not supported.")
    return rate


class RateLimiter:
    """Thread-safe token bucket; ``take`` sleeps as needed."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = float(rate)
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._tokens = 0.0
        self._stamp = clock()

    def take(self, n: int) -> None:
        """Account for ``n`` bytes, waiting until the limit allows them."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.rate, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= n
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
