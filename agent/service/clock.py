"""The service's clocks, and detection of sleep and wall-clock jumps.

Schedules are in wall-clock time (so a run missed while the computer slept is
due as soon as it wakes); waits use the monotonic clock, which on Linux and
macOS stops while the computer sleeps. When wall time advances much more than
monotonic time between two ticks, the computer slept (or the clock was set):
the change journal may have missed events and missed runs are due.

Test-only knob: ``CAIRN_TEST_CLOCK_FILE`` (read once by ``cairn run``) names a
file holding a number of seconds added to the wall clock, re-read at each
reading, so tests simulate a sleep by writing a larger offset.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

#: A wall-clock step larger than this (beyond the monotonic step) counts as sleep.
JUMP_THRESHOLD_S = 30.0


class Clock:
    """Wall and monotonic time, with an optional test offset file."""

    def __init__(self, offset_file: Path | None = None) -> None:
        self._offset_file = offset_file

    @property
    def simulated(self) -> bool:
        return self._offset_file is not None

    def _offset(self) -> float:
        if self._offset_file is None:
            return 0.0
        try:
            return float(self._offset_file.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0.0

    def wall(self) -> float:
        return time.time() + self._offset()

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass
class Jump:
    seconds: float  # positive: slept or clock set forward; negative: clock set back

    def describe(self) -> str:
        if self.seconds > 0:
            return f"the computer slept or the clock moved forward ({self.seconds:.0f} s)"
        return f"the clock was set back ({-self.seconds:.0f} s)"


class SleepDetector:
    """Compares wall and monotonic progress between calls to ``check``."""

    def __init__(self, clock: Clock, threshold_s: float = JUMP_THRESHOLD_S) -> None:
        self._clock, self._threshold = clock, threshold_s
        self._wall, self._mono = clock.wall(), clock.monotonic()

    def check(self) -> Jump | None:
        wall, mono = self._clock.wall(), self._clock.monotonic()
        drift = (wall - self._wall) - (mono - self._mono)
        self._wall, self._mono = wall, mono
        return Jump(drift) if abs(drift) > self._threshold else None
