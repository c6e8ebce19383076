"""Retries with exponential backoff and jitter, as a Destination wrapper and a helper.

Only errors that say so are retried: ``ServerUnreachable`` (network errors,
timeouts, HTTP 5xx and 429). Everything else (a refusal, a missing object, a
full quota) is final and raised at once. Every Destination call is safe to
repeat: uploads of the same name are idempotent on the server, removals too.

Delays grow ``base_s × 2ⁿ`` up to ``cap_s``; each is drawn uniformly from its
upper half ("equal jitter") so many devices retrying after an outage spread
out. A server's ``Retry-After`` is honoured up to ``cap_s``. A call gives up
after ``attempts`` tries or once ``budget_s`` seconds have passed since its
first try, whichever comes first, raising the last error.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from agent.dest.base import Destination
from agent.errors import ServerUnreachable

T = TypeVar("T")
log = logging.getLogger("cairn.retry")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 10
    base_s: float = 0.5
    cap_s: float = 30.0
    budget_s: float = 300.0

    def delay(self, attempt: int, hint: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        ceiling = min(self.cap_s, self.base_s * 2 ** (attempt - 1))
        wait = rng.uniform(ceiling / 2, ceiling)
        return min(self.cap_s, max(wait, hint or 0.0))


#: For transfers: rides out a server restart or a short network outage (~5 minutes).
TRANSFER = RetryPolicy()
#: For interactive one-off calls (registration): a few quick tries.
INTERACTIVE = RetryPolicy(attempts=3, base_s=0.5, cap_s=2.0, budget_s=10.0)


def retrying(call: Callable[[], T], policy: RetryPolicy, what: str,
             sleep: Callable[[float], None] = time.sleep,
             rng: random.Random | None = None) -> T:
    """Run ``call``, retrying ServerUnreachable as ``policy`` allows."""
    rng = rng or random.Random()
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except ServerUnreachable as exc:
            wait = policy.delay(attempt, exc.retry_after, rng)
            spent = time.monotonic() - started
            if attempt >= policy.attempts or spent + wait > policy.budget_s:
                log.warning("%s failed after %d attempt(s) in %.0f s: %s", what, attempt,
                            spent, exc)
                raise
            log.info("%s failed (%s); retry %d in %.1f s", what, exc, attempt, wait)
            sleep(wait)


class RetryingDestination:
    """Wraps a Destination so transient failures are retried (see module docstring)."""

    def __init__(self, inner: Destination, policy: RetryPolicy = TRANSFER) -> None:
        self.inner = inner
        self.policy = policy
        self.description = inner.description

    def _do(self, what: str, call: Callable[[], T]) -> T:
        return retrying(call, self.policy, what)

    def is_empty(self) -> bool:
        return self._do("checking the archive", self.inner.is_empty)

    def list(self, kind: str) -> dict[str, int]:
        return self._do(f"listing {kind}", lambda: self.inner.list(kind))

    def read(self, kind: str, name: str, offset: int = 0, length: int | None = None) -> bytes:
        return self._do(f"reading {kind}/{name[:12]}",
                        lambda: self.inner.read(kind, name, offset, length))

    def put_bytes(self, kind: str, name: str, data: bytes) -> None:
        self._do(f"storing {kind}/{name[:12]}", lambda: self.inner.put_bytes(kind, name, data))

    def put_file(self, kind: str, name: str, path: Path) -> None:
        self._do(f"storing {kind}/{name[:12]}", lambda: self.inner.put_file(kind, name, path))

    def remove(self, kind: str, name: str) -> None:
        self._do(f"removing {kind}/{name[:12]}", lambda: self.inner.remove(kind, name))

    def staging_dir(self) -> Path:
        return self.inner.staging_dir()
