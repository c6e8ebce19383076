"""What the service remembers between runs and restarts: ``service/state.json``.

Per set: when the last run started and ended and how, the last successful
run, the last full scan, the last snapshot and error, the CACHEDIR.TAG folders
found, and a fingerprint of the paths and exclusions the last run used (a
change forces a full scan). Globally: a user's pause. Written atomically after
every change.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from agent.service.schedule import History


@dataclass
class SetState:
    last_success_start: float | None = None
    last_attempt_end: float | None = None
    last_result: str | None = None
    failures: int = 0
    last_full_scan: float | None = None
    last_snapshot: str | None = None
    last_error: str = ""
    unreachable: bool = False  # the last run failed because the destination was unreachable
    last_run: dict = field(default_factory=dict)  # an api.schemas.RunSummary as a dict
    cache_dirs: list[str] = field(default_factory=list)
    fingerprint: str = ""

    @property
    def used_dest(self) -> bool:
        """The set has stored a snapshot at its destination before."""
        return self.last_snapshot is not None

    def history(self) -> History:
        return History(self.last_success_start, self.last_attempt_end, self.last_result,
                       self.failures, self.last_full_scan)


class StateStore:
    """Thread-safe holder of the persisted state."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.RLock()
        self.sets: dict[str, SetState] = {}
        self.paused_until: float | None = None
        self.paused_forever = False
        self._load()

    def _load(self) -> None:
        try:
            doc = json.loads(self._path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # first start, or unreadable: start afresh (runs are simply due)
        names = {f.name for f in dataclasses.fields(SetState)}
        for name, body in (doc.get("sets") or {}).items():
            if isinstance(body, dict):
                self.sets[name] = SetState(**{k: v for k, v in body.items() if k in names})
        self.paused_until = doc.get("paused_until")
        self.paused_forever = bool(doc.get("paused_forever"))

    def get(self, name: str) -> SetState:
        with self._lock:
            return self.sets.setdefault(name, SetState())

    def update(self, name: str, **changes: object) -> SetState:
        with self._lock:
            state = dataclasses.replace(self.get(name), **changes)  # type: ignore[arg-type]
            self.sets[name] = state
            self.save()
            return state

    def set_pause(self, until: float | None, forever: bool) -> None:
        with self._lock:
            self.paused_until, self.paused_forever = until, forever
            self.save()

    def forget(self, keep: set[str]) -> None:
        with self._lock:
            for name in set(self.sets) - keep:
                del self.sets[name]
            self.save()

    def save(self) -> None:
        with self._lock:
            doc = {"version": 1, "paused_until": self.paused_until,
                   "paused_forever": self.paused_forever,
                   "sets": {n: dataclasses.asdict(s) for n, s in self.sets.items()}}
            tmp = self._path.with_suffix(".tmp")
            with contextlib.suppress(OSError):
                self._path.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_text(json.dumps(doc, indent=1, sort_keys=True), encoding="utf-8")
                os.replace(tmp, self._path)
