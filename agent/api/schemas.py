"""Wire types of the local control API (docs/local-api.md).

Standard library only, and nothing from the engine: the tray app imports this
module and the client, never the agent's internals. Every type is a dataclass
that travels as a JSON object; ``to_json`` and ``from_json`` convert, ignoring
unknown keys so older clients keep working against newer agents.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

API_VERSION = 1

# Overall and per-set states (``Status.state``, ``SetStatus.state``).
IDLE = "idle"
QUEUED = "queued"  # per set only: waiting for another set's run to finish
SCANNING = "scanning"
BACKING_UP = "backing up"
PAUSED = "paused"
WAITING_FOR_DESTINATION = "waiting for destination"
ERROR = "error"
NOT_REGISTERED = "not registered"
STOPPED = "stopped"  # reported by the CLI when no service is running
STATES = (IDLE, QUEUED, SCANNING, BACKING_UP, PAUSED, WAITING_FOR_DESTINATION, ERROR,
          NOT_REGISTERED, STOPPED)

# Task statuses (``Task.status``).
TASK_RUNNING, TASK_CANCELLING = "running", "cancelling"
TASK_SUCCESS, TASK_FAILED, TASK_CANCELLED = "success", "failed", "cancelled"
TASK_FINAL = (TASK_SUCCESS, TASK_FAILED, TASK_CANCELLED)


@dataclass
class ProgressInfo:
    """A running job's counters (files and bytes read, stored), rate and ETA."""

    phase: str = ""
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    bytes_stored: int = 0
    totals_known: bool = False
    rate_bps: float = 0.0
    eta_s: float | None = None
    elapsed_s: float = 0.0
    current_file: str = ""
    errors: int = 0


@dataclass
class RunSummary:
    """How one backup run of a set ended and how much it had to scan."""

    result: str = ""  # success, partial, cancelled, paused, interrupted, failed
    started: str = ""  # ISO 8601 UTC
    finished: str = ""
    scan: str = ""  # "full" or "changes" (from the change journal)
    scan_reason: str = ""  # why a full scan, or how many changed paths
    dirs_listed: int = 0  # folders actually listed on disk
    dirty_paths: int = 0
    snapshot_id: str = ""
    files_total: int = 0
    files_new: int = 0
    files_changed: int = 0
    files_unchanged: int = 0
    dirs: int = 0
    bytes_total: int = 0
    bytes_stored: int = 0
    duration_s: float = 0.0
    skipped: list[str] = field(default_factory=list)  # unreadable files (first few)
    skipped_count: int = 0
    error: str = ""


@dataclass
class SetStatus:
    name: str
    state: str = IDLE
    why: str = ""
    paths: list[str] = field(default_factory=list)
    destination: str = ""
    destination_type: str = ""  # "local folder" or "cairn server"
    last_completed: str | None = None  # ISO time of the last successful run's start
    last_snapshot: str | None = None
    next_scheduled: str | None = None
    full_scan_pending: bool = True
    full_scan_reason: str = ""
    changed_paths: int = 0  # changes journaled since the last run
    watching: bool = False
    progress: ProgressInfo | None = None
    last_run: RunSummary | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class Status:
    state: str
    why: str = ""
    agent_version: str = ""
    api_version: int = API_VERSION
    mode: str = "user"  # "user" or "system"
    device_id: str = ""
    paused_until: str | None = None  # ISO time; "forever" when paused without a limit
    user_present: bool | None = None
    sets: list[SetStatus] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class SnapshotInfo:
    id: str
    time: str
    host: str = ""
    device: str = ""
    paths: list[str] = field(default_factory=list)
    files_total: int = 0
    bytes_total: int = 0


@dataclass
class TreeEntry:
    name: str
    path: str
    type: str  # file, dir, symlink
    size: int = 0
    mode: int | None = None
    mtime_ns: int | None = None


@dataclass
class Task:
    """A long job (restore, prune) the client polls or follows through events."""

    id: str
    kind: str
    status: str = TASK_RUNNING
    started: str = ""
    finished: str | None = None
    set: str = ""
    progress: ProgressInfo = field(default_factory=ProgressInfo)
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    log: list[str] = field(default_factory=list)


@dataclass
class Event:
    """One entry of the event stream; ``seq`` grows by one per event."""

    seq: int
    time: str
    type: str  # status, progress, run-started, run-finished, task, settings, paused, resumed
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class BackupRequest:
    set: str | None = None  # None: every set


@dataclass
class PauseRequest:
    seconds: float | None = None  # None: until resumed


@dataclass
class CancelRequest:
    set: str | None = None


@dataclass
class SettingsChange:
    """Dotted keys as in ``cairn config set`` (``resources.cpu_away``) to string values."""

    changes: dict[str, str] = field(default_factory=dict)


@dataclass
class RestoreRequest:
    set: str
    snapshot: str  # an ID, an ID prefix or "latest"
    target: str
    includes: list[str] = field(default_factory=list)


@dataclass
class PruneRequest:
    set: str
    dry_run: bool = True


@dataclass
class Accepted:
    """Reply to an action: what it queued or started."""

    message: str = ""
    sets: list[str] = field(default_factory=list)
    task: Task | None = None


@dataclass
class ApiErrorBody:
    error: str
    code: str = ""


T = TypeVar("T")


def to_json(value: Any) -> Any:
    """A dataclass (or list of them) as plain JSON-able data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, list):
        return [to_json(v) for v in value]
    return value


def from_json(cls: type[T], doc: Any) -> T:
    """Build ``cls`` from decoded JSON; nested dataclasses and lists of them too."""
    if not isinstance(doc, dict):
        raise ValueError(f"{cls.__name__} must be a JSON object.")
    hints = typing.get_type_hints(cls)
    known = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in doc:
            known[f.name] = _decode(hints[f.name], doc[f.name], f.name)
    try:
        return cls(**known)
    except TypeError as exc:
        raise ValueError(f"{cls.__name__}: {exc}") from exc


def list_from_json(cls: type[T], doc: Any) -> list[T]:
    if not isinstance(doc, list):
        raise ValueError(f"Expected a list of {cls.__name__}.")
    return [from_json(cls, d) for d in doc]


def _decode(hint: Any, value: Any, name: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _decode(inner[0], value, name)
    if dataclasses.is_dataclass(hint):
        return from_json(hint, value)  # type: ignore[arg-type]
    if origin is list:
        if not isinstance(value, list):
            raise ValueError(f"{name} must be a list.")
        (item,) = typing.get_args(hint)
        return [_decode(item, v, name) for v in value]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    expected = origin or hint
    if isinstance(expected, type) and expected is not Any and not isinstance(value, expected):
        raise ValueError(f"{name} must be of type {expected.__name__}.")
    return value
