"""The API's actions carried out on the running service (``agent.api.server.Backend``)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.api import schemas as s
from agent.api.server import ApiFailure, Caller
from agent.engine.progress import Progress
from agent.engine.prune import run_prune
from agent.engine.restore import RestoreOptions, run_restore
from agent.errors import UsageError
from agent.retention.policy import RetentionPolicy
from agent.service import config as cfgmod
from agent.service import schedule
from agent.service import status as statusmod
from agent.service.archives import dest_spec, log_warnings
from agent.service.daemon import Service
from agent.service.durations import format_duration

log = logging.getLogger("cairn.service.api")


class ServiceBackend:
    def __init__(self, service: Service) -> None:
        self._svc = service
        self._settings_lock = threading.Lock()

    # --- status -----------------------------------------------------------------------

    def status(self) -> s.Status:
        svc = self._svc
        st = svc.state
        paused_until = None
        if st.paused_forever:
            paused_until = "forever"
        elif st.paused_until is not None:
            paused_until = datetime.fromtimestamp(st.paused_until, UTC).isoformat(
                timespec="seconds")
        return statusmod.build(statusmod.Inputs(
            layout=svc.layout, config=svc.config, state=st, journal=svc.journal,
            watching=svc.watcher.watching, active=svc.runner.active,
            queued=svc.runner.queued(), now=svc.clock.wall(), device_id=svc.device_id,
            pause_reason=svc.pause_reason(), paused_until=paused_until,
            user_present=svc.decision.user_present,
            unreachable=lambda c: dest_spec(c, svc.layout).unreachable(
                st.get(c.name).used_dest),
            config_warning=svc.config_warning))

    # --- actions ----------------------------------------------------------------------

    def backup(self, req: s.BackupRequest) -> s.Accepted:
        svc = self._svc
        if svc.user_paused():
            raise ApiFailure(409, "Backups are paused; resume them first.", "paused")
        sets = [svc.config.find_set(req.set)] if req.set else list(svc.config.sets)
        if not sets:
            raise ApiFailure(409, "There are no backup sets yet; add one with "
                             "`cairn sets add`.", "no-sets")
        queued = []
        for cfg in sets:
            if not dest_spec(cfg, svc.layout).registered:
                continue
            svc.runner.enqueue(cfg.name)
            queued.append(cfg.name)
        svc.wake()
        return s.Accepted(f"Backing up {', '.join(queued) or 'nothing'} now.", queued)

    def pause(self, req: s.PauseRequest) -> s.Accepted:
        svc = self._svc
        if req.seconds is not None and req.seconds <= 0:
            raise UsageError("A pause must last longer than zero seconds.")
        until = None if req.seconds is None else svc.clock.wall() + req.seconds
        svc.state.set_pause(until, forever=req.seconds is None)
        svc.runner.cancel(None, schedule.PAUSED)
        how = "until resumed" if req.seconds is None else f"for {format_duration(req.seconds)}"
        log.info("Backups paused %s.", how)
        svc.events.publish("paused", {"seconds": req.seconds})
        return s.Accepted(f"Backups paused {how}.")

    def resume(self) -> s.Accepted:
        svc = self._svc
        svc.state.set_pause(None, False)
        log.info("Backups resumed.")
        svc.events.publish("resumed", {})
        svc.wake()
        return s.Accepted("Backups resumed.")

    def cancel(self, req: s.CancelRequest) -> s.Accepted:
        svc = self._svc
        if req.set:
            svc.config.find_set(req.set)
        stopped = svc.runner.cancel(req.set, schedule.CANCELLED)
        return s.Accepted("The running backup is being cancelled." if stopped
                          else "No backup was running.")

    # --- settings ---------------------------------------------------------------------

    def settings(self) -> dict:
        return cfgmod.redacted_doc(self._svc.config)

    def change_settings(self, req: s.SettingsChange) -> dict:
        if not req.changes:
            raise UsageError("No settings to change.")
        svc = self._svc
        with self._settings_lock:
            new = svc.config
            for key, value in req.changes.items():
                if not isinstance(value, str):
                    raise UsageError(f"{key}: values are sent as strings, as on the command line.")
                new = cfgmod.set_value(new, key, value)
            cfgmod.save(new, svc.layout.config_file)
            svc.apply_config(new)
        log.info("Settings changed through the API: %s.", ", ".join(sorted(req.changes)))
        return cfgmod.redacted_doc(new)

    # --- archives and tasks -----------------------------------------------------------

    def snapshots(self, set_name: str, every_path: bool) -> list[s.SnapshotInfo]:
        svc = self._svc
        return svc.archives.snapshots(svc.config.find_set(set_name), svc.config, every_path)

    def browse(self, set_name: str, snapshot: str, path: str) -> list[s.TreeEntry]:
        svc = self._svc
        return svc.archives.browse(svc.config.find_set(set_name), svc.config, snapshot, path)

    def restore(self, req: s.RestoreRequest, caller: Caller) -> s.Task:
        svc = self._svc
        cfg = svc.config.find_set(req.set)
        target = Path(req.target).expanduser()
        if not target.is_absolute():
            raise UsageError("The restore target must be an absolute path.")
        _check_target_owner(target, caller)
        includes = tuple(req.includes)

        def body(progress: Progress, cancel: threading.Event,
                 note: Callable[[str], None]) -> dict[str, Any]:
            repo = svc.archives.open(cfg, svc.config)
            try:
                repo.sync_index()
                snap = repo.find_snapshot(req.snapshot)
                log_warnings(repo)
                for warning in repo.warnings():
                    note(f"warning: {warning}")
                note(f"Restoring snapshot {snap.id[:8]} into {target}.")
                result = run_restore(repo, snap, RestoreOptions(target, includes, cancel=cancel),
                                     progress)
            finally:
                repo.close()
            for error in result.errors[:20]:
                note(f"could not restore {error}")
            return {"snapshot_id": snap.id, "files": result.files, "dirs": result.dirs,
                    "bytes": result.bytes, "errors": len(result.errors), "target": str(target)}

        return svc.tasks.start("restore", cfg.name, body)

    def prune(self, req: s.PruneRequest) -> s.Task:
        svc = self._svc
        cfg = svc.config.find_set(req.set)
        policy = RetentionPolicy.from_dict(cfg.retention)
        active = svc.runner.active
        if active is not None and not req.dry_run:
            raise ApiFailure(409, f"A backup of set {active.name} is running; prune when it "
                             "has finished.", "busy")

        def body(progress: Progress, _cancel: threading.Event,
                 note: Callable[[str], None]) -> dict[str, Any]:
            repo = svc.archives.open(cfg, svc.config)
            try:
                now = datetime.fromtimestamp(svc.clock.wall(), UTC)
                report = run_prune(repo, policy, now=now, dry_run=req.dry_run,
                                   progress=progress)
            finally:
                repo.close()
            for warning in report.warnings:
                note(warning)
            return report.to_dict()

        return svc.tasks.start("prune-dry-run" if req.dry_run else "prune", cfg.name, body)

    def tasks(self) -> list[s.Task]:
        return self._svc.tasks.all()

    def task(self, task_id: str) -> s.Task:
        return self._svc.tasks.get(task_id)

    def cancel_task(self, task_id: str) -> s.Task:
        return self._svc.tasks.cancel(task_id)

    def events(self, after: int, wait_s: float) -> list[s.Event]:
        return self._svc.events.since(after, wait_s)

    def stopping(self) -> bool:
        return self._svc.stop_event.is_set()


def _check_target_owner(target: Path, caller: Caller) -> None:
    """A caller other than the service's user or root may restore only into its own folders."""
    if caller.uid is None or os.name == "nt" or caller.uid in (0, os.getuid()):
        return
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    real = Path(os.path.realpath(existing))
    if real.stat().st_uid != caller.uid:
        raise ApiFailure(403, f"You may restore only into a folder you own ({real} is not "
                         "yours).", "forbidden")
