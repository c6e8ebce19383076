"""The tray's state and words for statuses the service reports (no Qt, no service)."""

from __future__ import annotations

import pytest

from agent.api import schemas as s
from ui import text
from ui.summary import NOT_RUNNING_MESSAGE, TrayState, summarize

RUNNING = s.SetStatus("docs", state=s.BACKING_UP, progress=s.ProgressInfo(
    files_done=3, files_total=10, bytes_done=2_500_000, bytes_total=10_000_000,
    totals_known=True, rate_bps=1_200_000, eta_s=190))


@pytest.mark.parametrize(("status", "state", "tooltip"), [
    (None, TrayState.NOT_RUNNING, f"Cairn: {NOT_RUNNING_MESSAGE}\nTrying"),
    (s.Status(s.PAUSED, paused_until="forever"), TrayState.PAUSED,
     "Cairn: Paused until you resume"),
    (s.Status(s.BACKING_UP, sets=[RUNNING]), TrayState.BACKING_UP,
     "Cairn: Backing up docs: 25%\n2.5 MB of 10.0 MB · 3 of 10 files · 1.2 MB/s · about 3 min"),
    (s.Status(s.WAITING_FOR_DESTINATION, sets=[s.SetStatus(
        "docs", state=s.WAITING_FOR_DESTINATION, why="the drive /media/usb is not connected")]),
     TrayState.ATTENTION, "Cairn: Needs attention\nDocs: the drive /media/usb is not connected."),
    (s.Status(s.IDLE, sets=[s.SetStatus("docs")], warnings=["docs: not backed up for 4d"]),
     TrayState.ATTENTION, "Cairn: Needs attention\nDocs: not backed up for 4d."),
    (s.Status(s.IDLE, sets=[s.SetStatus("docs")]), TrayState.UP_TO_DATE,
     "Cairn: Up to date\nNo backup has completed yet."),
])
def test_summary(status: s.Status | None, state: TrayState, tooltip: str) -> None:
    summary = summarize(status)
    assert summary.state == state and summary.tooltip.startswith(tooltip)


@pytest.mark.parametrize(("value", "words"), [
    (999, "999 bytes"), (1500, "1.5 KB"), (2_000_000_000, "2.0 GB"), (3e15, "3000.0 TB")])
def test_sizes(value: float, words: str) -> None:
    assert text.size(value) == words


@pytest.mark.parametrize(("seconds", "words"), [
    (5, "5 s"), (125, "2 min"), (3 * 3600 + 300, "3 h 5 min"), (7200, "2 h"),
    (86400, "1 day"), (3 * 86400, "3 days")])
def test_durations(seconds: float, words: str) -> None:
    assert text.duration(seconds) == words
