"""The retention policy ("frequency and versions"): which snapshots to keep. Pure: no I/O.

Snapshots are grouped into **sets**: one per device and backed-up paths. Within a
set, each snapshot falls in the first tier whose age limit it is younger than:

    tier         default  keeps
    keep_within  1d       every snapshot
    hourly       7d       the newest snapshot of each clock hour
    daily        90d      the newest snapshot of each day
    weekly       1y       the newest snapshot of each ISO week
    monthly      forever  the newest snapshot of each calendar month

A snapshot older than every tier is forgotten. A limit of 0 switches a tier off;
``None`` means forever. Hours, days, weeks and months are calendar periods in
UTC, so every device cuts them the same way. "The newest of each period" counts
snapshots kept for any reason: an hour that already holds a snapshot kept by
``keep_within`` keeps no second one. Always kept, whatever the tiers say: the
newest snapshot of each set, and snapshots dated after ``now`` (clock skew).

``deleted_files`` is how long a file stays restorable after it was deleted from
the source (or excluded); prune applies it with carry snapshots
(``agent.retention.carry``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime

from agent.errors import UsageError

MINUTE, HOUR, DAY = 60, 3600, 86400
WEEK, YEAR = 7 * DAY, 365 * DAY
FOREVER = "forever"

_UNITS = {"s": 1, "m": MINUTE, "h": HOUR, "d": DAY, "w": WEEK, "y": YEAR}
_DURATION_RE = re.compile(r"^(?:\d+[smhdwy])+$")
_PART_RE = re.compile(r"(\d+)([smhdwy])")
TIERS = ("hourly", "daily", "weekly", "monthly")


def parse_duration(value: object, what: str = "duration") -> int | None:
    """Seconds in ``value`` (``90d``, ``1y``, ``1h30m``, ``0``, a number); None for forever."""
    if isinstance(value, bool):
        raise UsageError(f"{what} must be a duration like 1d, 7d, 90d, 1y or forever.")
    if isinstance(value, int | float):
        if value < 0:
            raise UsageError(f"{what} cannot be negative ({value}).")
        return int(value)
    text = str(value).strip().lower()
    if text == FOREVER:
        return None
    if text == "0":
        return 0
    if not _DURATION_RE.match(text):
        raise UsageError(f"{what} must be a duration like 1d, 7d, 90d, 1y or forever, "
                         f"not {value!r}.")
    return sum(int(n) * _UNITS[u] for n, u in _PART_RE.findall(text))


def format_duration(seconds: int | None) -> str:
    """The inverse of ``parse_duration``: ``forever``, ``0``, ``1y``, ``90d``, ``1d12h``."""
    if seconds is None:
        return FOREVER
    if seconds == 0:
        return "0"
    parts = []
    for unit in ("y", "d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)


@dataclass(frozen=True)
class RetentionPolicy:
    """Age limits in seconds (None = forever, 0 = tier off); see the module docstring."""

    keep_within: int | None = DAY
    hourly: int | None = WEEK
    daily: int | None = 90 * DAY
    weekly: int | None = YEAR
    monthly: int | None = None
    deleted_files: int | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 0):
                raise UsageError(f"Retention {f.name} must be a number of seconds >= 0 or "
                                 f"None (forever), not {value!r}.")

    @classmethod
    def from_dict(cls, doc: Mapping[str, object]) -> RetentionPolicy:
        """Build from ``to_dict``'s form (durations as strings); missing keys take defaults."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(doc) - names)
        if unknown:
            raise UsageError(f"Unknown retention setting(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(names))}.")
        return cls(**{k: parse_duration(v, f"Retention {k}") for k, v in doc.items()})

    def to_dict(self) -> dict[str, str]:
        """Every setting as a duration string (``1d``, ``forever``), for TOML or JSON."""
        return {f.name: format_duration(getattr(self, f.name)) for f in fields(self)}

    def tier_for(self, age_s: float) -> str | None:
        """``keep_within`` or a period tier for a snapshot of this age; None when too old."""
        for name in ("keep_within", *TIERS):
            limit = getattr(self, name)
            if limit is None or age_s < limit:
                return name
        return None


@dataclass(frozen=True)
class SnapshotRef:
    """What the policy needs to know about a snapshot."""

    id: str
    time: datetime
    device: str
    paths: tuple[str, ...]

    @property
    def set_key(self) -> tuple[str, tuple[str, ...]]:
        return self.device, tuple(sorted(self.paths))


@dataclass(frozen=True)
class Decision:
    snapshot: SnapshotRef
    keep: bool
    tier: str  # latest, future, keep_within, hourly, daily, weekly, monthly, expired
    reason: str


def period(when: datetime, tier: str) -> str:
    """The calendar period (UTC) a time falls in for a tier, as a label."""
    t = _utc(when)
    if tier == "hourly":
        return t.strftime("%Y-%m-%d %H:00")
    if tier == "daily":
        return t.strftime("%Y-%m-%d")
    if tier == "weekly":
        year, week, _ = t.isocalendar()
        return f"{year}-W{week:02d}"
    if tier == "monthly":
        return t.strftime("%Y-%m")
    raise ValueError(f"no period for tier {tier!r}")


def decide(snapshots: Iterable[SnapshotRef], policy: RetentionPolicy,
           now: datetime) -> list[Decision]:
    """Keep or forget every snapshot, with the reason; sets newest first, in set order."""
    sets: dict[tuple[str, tuple[str, ...]], list[SnapshotRef]] = {}
    for snap in snapshots:
        sets.setdefault(snap.set_key, []).append(snap)
    decisions: list[Decision] = []
    for key in sorted(sets):
        decisions += _decide_set(sets[key], policy, _utc(now))
    return decisions


def _decide_set(snaps: list[SnapshotRef], policy: RetentionPolicy,
                now: datetime) -> list[Decision]:
    ordered = sorted(snaps, key=lambda s: (_utc(s.time), s.id), reverse=True)
    holders: dict[str, dict[str, SnapshotRef]] = {tier: {} for tier in TIERS}
    decisions = []
    for i, snap in enumerate(ordered):
        decision = _decide_one(snap, i == 0, policy, now, holders)
        if decision.keep:
            for tier, kept in holders.items():
                kept.setdefault(period(snap.time, tier), snap)
        decisions.append(decision)
    return decisions


def _decide_one(snap: SnapshotRef, latest: bool, policy: RetentionPolicy, now: datetime,
                holders: dict[str, dict[str, SnapshotRef]]) -> Decision:
    age = (now - _utc(snap.time)).total_seconds()
    if latest:
        return Decision(snap, True, "latest", "the newest snapshot of its set")
    if age < 0:
        return Decision(snap, True, "future", "dated after now (clock skew); kept")
    tier = policy.tier_for(age)
    if tier is None:
        return Decision(snap, False, "expired", "older than every retention tier")
    limit = format_duration(getattr(policy, tier))
    if tier == "keep_within":
        return Decision(snap, True, tier, f"within {limit}: every version kept")
    label = period(snap.time, tier)
    holder = holders[tier].get(label)
    if holder is not None:
        return Decision(snap, False, tier, f"{tier} ({limit}): {label} already has "
                                           f"{holder.id[:8]}")
    return Decision(snap, True, tier, f"{tier} ({limit}): newest of {label}")


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
