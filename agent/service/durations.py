"""Durations (``10s``, ``15m``, ``1h30m``, ``2d``), times of day and time windows."""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_RE = re.compile(r"^(?:\d+[smhd])+$")
_PART_RE = re.compile(r"(\d+)([smhd])")
_CLOCK_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_duration(text: str, what: str = "duration") -> int:
    """Seconds in ``text`` (e.g. ``15m``); raises UsageError with an example otherwise."""
    value = text.strip().lower()
    if not _DURATION_RE.match(value):
        raise UsageError(f"{what} must be a duration like 10s, 15m, 1h or 1h30m, not {text!r}.")
    seconds = sum(int(n) * _UNITS[u] for n, u in _PART_RE.findall(value))
    if seconds <= 0:
        raise UsageError(f"{what} must be longer than zero, not {text!r}.")
    return seconds


def format_duration(seconds: float) -> str:
    """A short human form: ``45s``, ``15m``, ``2h5m``, ``3d``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts[:2])


def parse_clock(text: str, what: str = "time") -> int:
    """Minutes after midnight of ``HH:MM``."""
    m = _CLOCK_RE.match(text.strip())
    if not m:
        raise UsageError(f"{what} must be a time of day like 03:00 or 18:30, not {text!r}.")
    return int(m.group(1)) * 60 + int(m.group(2))


@dataclass(frozen=True)
class Window:
    """Allowed minutes of the day ``[start, end)``; wraps past midnight when end <= start."""

    start: int
    end: int

    @classmethod
    def parse(cls, text: str) -> Window:
        start, sep, end = text.partition("-")
        if not sep:
            raise UsageError(f"A time window must look like 18:00-07:00, not {text!r}.")
        window = cls(parse_clock(start, "A window's start"), parse_clock(end, "A window's end"))
        if window.start == window.end:
            raise UsageError(f"The time window {text!r} is empty; leave windows out for always.")
        return window

    def contains(self, minute: int) -> bool:
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end
