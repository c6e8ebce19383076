"""Plain-language numbers and times for the tray's labels (no Qt, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

from agent.api import schemas as s


def size(nbytes: float) -> str:
    """``1.5 MB``: decimal units, as file managers show them."""
    value = float(nbytes)
    if value < 1000:
        return f"{value:.0f} bytes"
    for unit in ("KB", "MB", "GB"):
        value /= 1000
        if value < 1000:
            return f"{value:.1f} {unit}"
    return f"{value / 1000:.1f} TB"


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3 h 5 min``, ``2 days``."""
    secs = max(0, round(seconds))
    if secs < 60:
        return f"{secs} s"
    if secs < 3600:
        return f"{secs // 60} min"
    if secs < 86400:
        hours, minutes = divmod(secs // 60, 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days = secs // 86400
    return f"{days} day" if days == 1 else f"{days} days"


def parse_time(iso: str | None) -> datetime | None:
    """An API time (ISO 8601 UTC) as an aware datetime; None when absent or unreadable."""
    if not iso:
        return None
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def when(iso: str | None, now: datetime | None = None, never: str = "never") -> str:
    """A past or future API time relative to now: ``5 min ago``, ``in 2 h``, else a date."""
    moment = parse_time(iso)
    if moment is None:
        return never
    now = now or datetime.now(UTC)
    delta = (moment - now).total_seconds()
    if abs(delta) < 45:
        return "just now" if delta <= 0 else "in a moment"
    if abs(delta) < 86400 * 2:
        return f"in {duration(delta)}" if delta > 0 else f"{duration(-delta)} ago"
    return moment.astimezone().strftime("%a %d %b %Y, %H:%M")


def local_time(iso: str) -> str:
    """A snapshot time as the user's local date and time."""
    moment = parse_time(iso)
    return moment.astimezone().strftime("%a %d %b %Y, %H:%M:%S") if moment else iso


def progress(p: s.ProgressInfo) -> str:
    """``1.2 MB of 5.0 MB · 30 of 100 files · 2.1 MB/s · about 3 min left``."""
    if p.totals_known and p.bytes_total:
        parts = [f"{size(p.bytes_done)} of {size(p.bytes_total)}",
                 f"{p.files_done} of {p.files_total} files"]
    else:
        files = "1 file" if p.files_done == 1 else f"{p.files_done} files"
        parts = [f"{size(p.bytes_done)} read", f"{files} so far"]
    if p.rate_bps > 0:
        parts.append(f"{size(p.rate_bps)}/s")
    if p.eta_s is not None and p.totals_known:
        parts.append(f"about {duration(p.eta_s)} left")
    if p.errors:
        parts.append(f"{p.errors} file(s) could not be read")
    return " · ".join(parts)


def percent(p: s.ProgressInfo | None) -> int | None:
    """How far a job is, 0..100, once its totals are known."""
    if p is None or not p.totals_known:
        return None
    if p.bytes_total:
        return min(100, p.bytes_done * 100 // p.bytes_total)
    if p.files_total:
        return min(100, p.files_done * 100 // p.files_total)
    return None
