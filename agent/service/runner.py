"""Runs backups of sets, one at a time, on its own thread.

A run takes the set's change journal (or decides on a full scan and says why),
opens the archive behind the bandwidth limiter, calls the engine with the
changed paths, and records the outcome: success commits the journal, anything
else rolls it back so no change is forgotten. Only one run is ever active, so
one set never has two backups at once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from agent.api.schemas import RunSummary
from agent.engine.backup import BackupOptions, BackupResult, run_backup
from agent.engine.progress import Progress
from agent.errors import CairnError, DestinationError, Interrupted, ServerUnreachable
from agent.scan.walker import source_path
from agent.service import excludes, schedule
from agent.service.archives import Archives, dest_spec, log_warnings, username
from agent.service.clock import Clock
from agent.service.config import ServiceConfig, SetConfig
from agent.service.journal import ChangeJournal, Taken
from agent.service.layout import ServiceLayout
from agent.service.resources import Decision
from agent.service.state import StateStore
from agent.service.throttle import RateLimiter, ThrottledDestination

log = logging.getLogger("cairn.service.runner")
MAX_SKIPPED_SHOWN = 20


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


@dataclass
class ActiveRun:
    name: str
    started: float
    scan: str = "full"
    reason: str = ""
    progress: Progress = field(default_factory=Progress)
    cancel: threading.Event = field(default_factory=threading.Event)
    stop_result: str = schedule.CANCELLED


@dataclass(frozen=True)
class RunEnv:
    """What runs need from the service; the callables return the current values."""

    layout: ServiceLayout
    archives: Archives
    state: StateStore
    clock: Clock
    limiter: RateLimiter
    config: Callable[[], ServiceConfig]
    decision: Callable[[], Decision]
    watching: Callable[[str], bool]
    journal: ChangeJournal | None
    device_id: str
    on_change: Callable[[str, dict], None]  # event type, data


def fingerprint(cfg: SetConfig) -> str:
    doc = [sorted(cfg.paths), list(cfg.exclude), cfg.builtin_excludes]
    return hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:16]


class BackupRunner:
    def __init__(self, env: RunEnv) -> None:
        self._env = env
        self._queue: queue.Queue[tuple[str, bool] | None] = queue.Queue()
        self._queued: set[str] = set()
        self._lock = threading.Lock()
        self.active: ActiveRun | None = None
        self._thread = threading.Thread(target=self._loop, name="runner", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def enqueue(self, name: str, verification: bool = False) -> bool:
        """Queue a run of ``name`` unless it is already queued or running."""
        with self._lock:
            if name in self._queued or (self.active and self.active.name == name):
                return False
            self._queued.add(name)
        self._queue.put((name, verification))
        self._env.on_change("status", {"set": name, "queued": True})
        return True

    def queued(self) -> set[str]:
        with self._lock:
            return set(self._queued)

    def cancel(self, name: str | None, result: str) -> bool:
        """Stop the active run (of ``name``, or any) and drop queued runs; True if one ran."""
        with self._lock:
            if name is None:
                self._queued.clear()
            else:
                self._queued.discard(name)
            run = self.active
        if run is not None and (name is None or run.name == name):
            run.stop_result = result
            run.cancel.set()
            return True
        return False

    def stop(self, timeout: float) -> bool:
        """Cancel (as interrupted) and wait for the thread; False if it did not finish."""
        self.cancel(None, schedule.INTERRUPTED)
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            name, verification = item
            with self._lock:
                if name not in self._queued:
                    continue  # cancelled while queued
                self._queued.discard(name)
            try:
                cfg = self._env.config().find_set(name)
            except CairnError:
                continue  # the set was removed meanwhile
            self.run(cfg, verification)

    def run(self, cfg: SetConfig, verification: bool = False) -> RunSummary:
        """Back up ``cfg`` now on the calling thread; records and returns the outcome."""
        env = self._env
        run = ActiveRun(cfg.name, env.clock.wall())
        taken = self._take(cfg, run, verification)
        self.active = run
        env.on_change("run-started", {"set": cfg.name, "scan": run.scan, "reason": run.reason})
        log.info("Backing up set %s (%s scan: %s).", cfg.name, run.scan, run.reason)
        summary = RunSummary(started=iso(run.started), scan=run.scan, scan_reason=run.reason,
                             dirty_paths=len(taken.dirty or ()) if taken else 0)
        try:
            tagged = self._tagged(cfg, run, taken)
            result, summary.dirs_listed = self._backup(cfg, run, taken, tagged)
        except Interrupted:
            summary.result = run.stop_result
            self._failed(cfg, run, taken, summary, "")
        except CairnError as exc:
            summary.result, summary.error = schedule.FAILED, str(exc)
            self._failed(cfg, run, taken, summary, str(exc), unreachable=_unreachable(exc))
        except Exception as exc:
            log.exception("Internal error backing up set %s", cfg.name)
            summary.result, summary.error = schedule.FAILED, f"internal error: {exc}"
            self._failed(cfg, run, taken, summary, summary.error)
        else:
            self._succeeded(cfg, run, taken, summary, result, tagged)
        finally:
            self.active = None
        env.on_change("run-finished", {"set": cfg.name, "result": summary.result,
                                       "snapshot_id": summary.snapshot_id, "error": summary.error})
        return summary

    def _take(self, cfg: SetConfig, run: ActiveRun, verification: bool) -> Taken | None:
        env = self._env
        taken = env.journal.take(cfg.name) if env.journal is not None else None
        previous = env.state.get(cfg.name)
        if verification:
            run.reason = "daily verification scan"
        elif previous.last_result is None:
            run.reason = "first backup of this set"
        elif taken is None:
            run.reason = "no change journal (the service is not running)"
        elif not env.watching(cfg.name):
            run.reason = "its folders are not being watched"
        elif previous.fingerprint != fingerprint(cfg):
            run.reason = "its paths or exclusions changed"
        elif taken.dirty is None:
            run.reason = taken.reason
        else:
            run.scan, run.reason = "changes", taken.reason
        return taken

    def _tagged(self, cfg: SetConfig, run: ActiveRun, taken: Taken | None) -> set[str]:
        if not cfg.builtin_excludes:
            return set()
        if run.scan == "full" or taken is None or taken.dirty is None:
            return excludes.find_tagged(cfg.paths)
        gained, lost = excludes.tagged_from_changes(taken.dirty)
        return (set(self._env.state.get(cfg.name).cache_dirs) | gained) - lost

    def _backup(self, cfg: SetConfig, run: ActiveRun, taken: Taken | None,
                tagged: set[str]) -> tuple[BackupResult, int]:
        env = self._env
        config = env.config()
        spec = dest_spec(cfg, env.layout)
        unreachable = spec.unreachable(env.state.get(cfg.name).used_dest)
        if unreachable:
            raise DestinationError(unreachable)
        dest = ThrottledDestination(env.archives.destination(cfg), env.limiter, run.cancel)
        repo = env.archives.open(cfg, config, dest=dest, create=True)  # type: ignore[arg-type]
        skip = tuple(p for p in (spec.path, env.layout.home) if p is not None)
        fields = {"device": env.device_id, "username": username(),
                  **env.archives.backup_fields(cfg)}
        workers = env.decision().workers  # the CPU share in force bounds threads and processes
        options = BackupOptions(
            paths=tuple(source_path(p) for p in cfg.paths),
            excludes=excludes.exclude_globs(cfg.exclude, cfg.builtin_excludes, tagged),
            skip_paths=skip, workers=workers, processes=workers if workers > 1 else 0,
            count_totals=run.scan == "full",
            dirty_paths=taken.dirty if run.scan == "changes" and taken else None,
            cancel=run.cancel, **fields)
        try:
            result = run_backup(repo, options, run.progress)
        finally:
            repo.close()
        log_warnings(repo)
        env.archives.after_backup(cfg, result.snapshot)
        return result, result.counts.dirs_listed

    def _succeeded(self, cfg: SetConfig, run: ActiveRun, taken: Taken | None,
                   summary: RunSummary, result: BackupResult, tagged: set[str]) -> None:
        env, counts = self._env, result.counts
        if taken is not None and env.journal is not None:
            env.journal.commit(taken)
        summary.result = schedule.PARTIAL if result.errors else schedule.SUCCESS
        summary.snapshot_id = result.snapshot.id
        for name in ("files_total", "files_new", "files_changed", "files_unchanged", "dirs",
                     "bytes_total"):
            setattr(summary, name, getattr(counts, name))
        summary.bytes_stored, summary.duration_s = result.bytes_stored, round(result.duration_s, 3)
        summary.skipped = result.errors[:MAX_SKIPPED_SHOWN]
        summary.skipped_count = len(result.errors)
        end = env.clock.wall()
        summary.finished = iso(end)
        previous = env.state.get(cfg.name)
        env.state.update(
            cfg.name, last_success_start=run.started, last_attempt_end=end,
            last_result=summary.result, failures=0,
            last_full_scan=run.started if run.scan == "full" else previous.last_full_scan,
            last_snapshot=result.snapshot.id, last_error="", unreachable=False,
            last_run=_asdict(summary),
            cache_dirs=sorted(tagged), fingerprint=fingerprint(cfg))
        log.info("Set %s backed up: snapshot %s, %d files (%d new, %d changed), %d folders "
                 "listed, %.1f s.", cfg.name, result.snapshot.id[:8], counts.files_total,
                 counts.files_new, counts.files_changed, summary.dirs_listed, result.duration_s)

    def _failed(self, cfg: SetConfig, run: ActiveRun, taken: Taken | None,
                summary: RunSummary, error: str, unreachable: bool = False) -> None:
        env = self._env
        if taken is not None and env.journal is not None:
            env.journal.rollback(taken)
        end = env.clock.wall()
        summary.finished = iso(end)
        previous = env.state.get(cfg.name)
        failures = previous.failures + 1 if summary.result == schedule.FAILED else 0
        env.state.update(cfg.name, last_attempt_end=end, last_result=summary.result,
                         failures=failures, last_error=error, last_run=_asdict(summary),
                         unreachable=unreachable)
        if error:
            log.error("Backup of set %s failed: %s", cfg.name, error)
        else:
            log.info("Backup of set %s stopped (%s).", cfg.name, summary.result)


def _unreachable(exc: CairnError) -> bool:
    """A network outage or a missing folder: wait and retry (not a full disk, not a refusal)."""
    return isinstance(exc, ServerUnreachable) or type(exc) is DestinationError


def _asdict(summary: RunSummary) -> dict:
    return dataclasses.asdict(summary)
