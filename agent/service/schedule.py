"""When a backup set is due: pure functions of its config, its history and the time.

Times are wall-clock Unix seconds; windows and the daily verification time are
local times of day. A run missed while the computer slept or was off is simply
overdue, so it runs at the first tick after waking (inside the allowed window).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from agent.service.config import SetConfig
from agent.service.durations import Window, parse_clock

BACKOFF_MIN_S = 30
BACKOFF_MAX_S = 30 * 60

SUCCESS, PARTIAL, CANCELLED, PAUSED = "success", "partial", "cancelled", "paused"
INTERRUPTED, FAILED = "interrupted", "failed"


@dataclass(frozen=True)
class History:
    """What the service remembers of a set's runs (see ``state.SetState``)."""

    last_success_start: float | None = None
    last_attempt_end: float | None = None
    last_result: str | None = None
    failures: int = 0  # consecutive failed runs
    last_full_scan: float | None = None


@dataclass(frozen=True)
class Due:
    at: float
    verification: bool  # a daily verification run: walks everything
    reason: str


def backoff_s(failures: int) -> float:
    return min(BACKOFF_MIN_S * 2 ** max(failures - 1, 0), BACKOFF_MAX_S)


def next_due(cfg: SetConfig, hist: History, now: float) -> Due:
    """When ``cfg`` should run next, and why."""
    regular, reason = _regular(cfg, hist, now)
    regular = allowed_from(cfg.window_list, regular)
    if cfg.verify_at:
        base = hist.last_full_scan if hist.last_full_scan is not None else now
        verify = allowed_from(cfg.window_list, next_time_of_day(parse_clock(cfg.verify_at), base))
        if verify <= regular and hist.last_result is not None:
            return Due(verify, True, "daily verification scan")
    if reason == "scheduled" and now - regular > max(60.0, cfg.every_s / 2):
        reason = "catching up a run missed while the computer slept or was off"
    return Due(regular, False, reason)


def _regular(cfg: SetConfig, hist: History, now: float) -> tuple[float, str]:
    result, end = hist.last_result, hist.last_attempt_end
    if result is None or end is None:
        return now, "first backup"
    if result == FAILED:
        return end + backoff_s(hist.failures), "retrying after an error"
    if result in (PAUSED, INTERRUPTED):
        return end, "resuming an interrupted backup"
    if result == CANCELLED or hist.last_success_start is None:
        start = end
    else:
        start = hist.last_success_start
    start = min(start, now)  # the clock was set back: do not wait for the old future
    return start + cfg.every_s, "scheduled"


def allowed_from(windows: tuple[Window, ...], at: float) -> float:
    """The first moment at or after ``at`` inside one of ``windows`` (all day if none)."""
    if not windows:
        return at
    lt = time.localtime(at)
    minute = lt.tm_hour * 60 + lt.tm_min
    if any(w.contains(minute) for w in windows):
        return at
    return min(next_time_of_day(w.start, at) for w in windows)


def next_time_of_day(minute: int, after: float) -> float:
    """The first local time ``HH:MM`` (as minutes after midnight) strictly after ``after``."""
    lt = time.localtime(after)

    def on_day(offset: int) -> float:
        return time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday + offset, minute // 60,
                            minute % 60, 0, 0, 0, -1))

    candidate = on_day(0)
    return candidate if candidate > after else on_day(1)
