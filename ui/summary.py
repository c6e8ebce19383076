"""What the tray shows at a glance: the service's status reduced to one of five states."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from agent.api import schemas as s
from ui import text

NOT_RUNNING_MESSAGE = "Cairn's backup service is not running."


class TrayState(StrEnum):
    UP_TO_DATE = "up to date"
    BACKING_UP = "backing up"
    PAUSED = "paused"
    ATTENTION = "needs attention"
    NOT_RUNNING = "not running"


_ATTENTION_STATES = (s.ERROR, s.WAITING_FOR_DESTINATION, s.NOT_REGISTERED)


@dataclass(frozen=True)
class Summary:
    """The tray's state, a one-line headline, a detail sentence and the running percent."""

    state: TrayState
    headline: str
    detail: str = ""
    percent: int | None = None

    @property
    def tooltip(self) -> str:
        return f"Cairn: {self.headline}" + (f"\n{self.detail}" if self.detail else "")


def summarize(status: s.Status | None, lost: str = "") -> Summary:
    """The summary of ``status``; ``None`` means the service does not answer (``lost`` says why)."""
    if status is None:
        return Summary(TrayState.NOT_RUNNING, NOT_RUNNING_MESSAGE,
                       lost or "Trying to reach it again in the background.")
    if status.state == s.PAUSED:
        return Summary(TrayState.PAUSED, _paused_headline(status.paused_until), status.why)
    if status.state in (s.BACKING_UP, s.SCANNING):
        return _running(status)
    problems = attention(status)
    if problems:
        return Summary(TrayState.ATTENTION, "Needs attention", problems[0])
    last = max((st.last_completed or "" for st in status.sets), default="")
    detail = f"Last backup {text.when(last)}." if last else "No backup has completed yet."
    return Summary(TrayState.UP_TO_DATE, "Up to date", detail)


def attention(status: s.Status) -> list[str]:
    """Every problem the user should know about, as sentences."""
    out = []
    for st in status.sets:
        if st.state in _ATTENTION_STATES:
            out.append(sentence(f"{st.name}: {st.why or st.state}"))
    out.extend(sentence(w) for w in status.warnings)
    return out


def sentence(words: str) -> str:
    """``words`` with a capital letter and a full stop."""
    words = words.strip()
    if not words:
        return words
    words = words[0].upper() + words[1:]
    return words if words[-1] in ".!?)" else words + "."


def _paused_headline(until: str | None) -> str:
    if until is None or until == "forever":
        return "Paused until you resume"
    moment = text.parse_time(until)
    return f"Paused until {moment.astimezone():%H:%M}" if moment else "Paused"


def _running(status: s.Status) -> Summary:
    running = next((st for st in status.sets if st.state in (s.BACKING_UP, s.SCANNING)), None)
    if running is None:
        return Summary(TrayState.BACKING_UP, "Backing up", status.why)
    if running.state == s.SCANNING:
        return Summary(TrayState.BACKING_UP, f"Looking for changes in {running.name}")
    pct = text.percent(running.progress)
    headline = f"Backing up {running.name}" + (f": {pct}%" if pct is not None else "")
    detail = text.progress(running.progress) if running.progress else ""
    return Summary(TrayState.BACKING_UP, headline, detail, pct)
