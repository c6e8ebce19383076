"""When sets are due (pure), durations and windows, and sleep detection."""

from __future__ import annotations

import time

import pytest

from agent.errors import UsageError
from agent.service.clock import SleepDetector
from agent.service.config import SetConfig
from agent.service.durations import Window, format_duration, parse_clock, parse_duration
from agent.service.schedule import (
    BACKOFF_MAX_S,
    History,
    allowed_from,
    backoff_s,
    next_due,
    next_time_of_day,
)


def _local(hour: int, minute: int = 0, day: int = 10) -> float:
    return time.mktime((2027, 3, day, hour, minute, 0, 0, 0, -1))


def _set(**kw: object) -> SetConfig:
    base: dict = {"name": "docs", "paths": ("/a",), "every": "1h", "verify_at": ""}
    return SetConfig(**{**base, **kw})


@pytest.mark.parametrize(("text", "seconds"), [("10s", 10), ("15m", 900), ("1h30m", 5400),
                                               ("2d", 172800), (" 1H ", 3600)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "1x", "0s", "-5m", "1.5h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(text)


def test_format_and_clock() -> None:
    assert [format_duration(x) for x in (45, 900, 7500, 3 * 86400)] == ["45s", "15m", "2h5m",
                                                                        "3d"]
    assert parse_clock("03:00") == 180 and parse_clock("23:59") == 1439


def test_windows_wrap_past_midnight() -> None:
    night = Window.parse("18:00-07:00")
    assert night.contains(parse_clock("23:00")) and night.contains(parse_clock("06:59"))
    assert not night.contains(parse_clock("07:00")) and not night.contains(parse_clock("12:00"))
    with pytest.raises(UsageError, match="empty"):
        Window.parse("08:00-08:00")


def test_first_backup_is_due_now() -> None:
    now = _local(12)
    due = next_due(_set(), History(), now)
    assert due.at == now and due.reason == "first backup" and not due.verification


def test_success_runs_again_after_the_interval() -> None:
    start = _local(12)
    due = next_due(_set(), History(start, start + 60, "success"), start + 120)
    assert due.at == start + 3600 and due.reason == "scheduled"


def test_missed_run_is_caught_up_at_once() -> None:
    start = _local(1)
    now = _local(9)  # slept through seven runs
    due = next_due(_set(), History(start, start + 60, "success"), now)
    assert due.at <= now and "catching up" in due.reason


def test_failures_back_off_exponentially() -> None:
    end = _local(12)
    assert [backoff_s(n) for n in (1, 2, 3)] == [30, 60, 120]
    assert backoff_s(30) == BACKOFF_MAX_S
    due = next_due(_set(), History(None, end, "failed", failures=3), end)
    assert due.at == end + 120 and "error" in due.reason


def test_cancelled_waits_and_interrupted_resumes() -> None:
    end = _local(12)
    assert next_due(_set(), History(end - 7200, end, "cancelled"), end).at == end + 3600
    assert next_due(_set(), History(end - 7200, end, "interrupted"), end).at == end
    assert next_due(_set(), History(end - 7200, end, "paused"), end).at == end


def test_clock_set_back_does_not_postpone_forever() -> None:
    now = _local(12)
    future = now + 30 * 86400  # last run stamped by a clock that was a month ahead
    assert next_due(_set(), History(future, future, "success"), now).at == now + 3600


def test_windows_delay_runs_to_the_next_opening() -> None:
    cfg = _set(windows=("18:00-07:00",))
    start = _local(6, 30)
    due = next_due(cfg, History(start, start, "success"), start + 60)
    assert due.at == _local(18)
    assert allowed_from(cfg.window_list, _local(20)) == _local(20)


def test_daily_verification_scan() -> None:
    cfg = _set(verify_at="03:00", every="1d")
    last_full = _local(2, day=10)
    start = _local(12, day=10)
    due = next_due(cfg, History(start, start, "success", last_full_scan=last_full), start + 60)
    assert due.verification and due.at == _local(3, day=10)  # missed this morning: now
    due = next_due(cfg, History(start, start, "success", last_full_scan=start), start + 60)
    assert due.verification and due.at == _local(3, day=11)
    assert next_time_of_day(180, _local(3, day=11)) == _local(3, day=12)


class FakeClock:
    def __init__(self) -> None:
        self.w, self.m = 1000.0, 50.0

    def wall(self) -> float:
        return self.w

    def monotonic(self) -> float:
        return self.m


def test_sleep_detector_sees_wall_jumps_only() -> None:
    clock = FakeClock()
    detector = SleepDetector(clock)  # type: ignore[arg-type]
    clock.w += 5
    clock.m += 5
    assert detector.check() is None
    clock.w += 3600  # suspended: monotonic time stood still
    jump = detector.check()
    assert jump is not None and jump.seconds == pytest.approx(3600)
    assert "slept" in jump.describe()
    clock.w -= 600
    back = detector.check()
    assert back is not None and "set back" in back.describe()
