"""The event stream behind ``GET /v1/events``: a numbered ring buffer readers wait on."""

from __future__ import annotations

import threading
from collections import deque
from datetime import UTC, datetime
from typing import Any

from agent.api.schemas import Event

KEEP = 1000


class EventBus:
    def __init__(self) -> None:
        self._events: deque[Event] = deque(maxlen=KEEP)
        self._seq = 0
        self._cond = threading.Condition()
        self._closed = False

    @property
    def last_seq(self) -> int:
        with self._cond:
            return self._seq

    def publish(self, type_: str, data: dict[str, Any] | None = None) -> None:
        with self._cond:
            self._seq += 1
            self._events.append(Event(self._seq, datetime.now(UTC).isoformat(timespec="seconds"),
                                      type_, data or {}))
            self._cond.notify_all()

    def since(self, after: int, wait_s: float) -> list[Event]:
        """Events numbered above ``after``, waiting up to ``wait_s`` for the first one."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > after or self._closed, timeout=wait_s)
            return [e for e in self._events if e.seq > after]

    def close(self) -> None:
        """Wake every waiting reader (the service is stopping)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
