"""Builds the API's ``Status`` from the service's parts (what the tray shows)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agent import __version__
from agent.api import schemas as s
from agent.engine.progress import Progress
from agent.service import schedule
from agent.service.archives import dest_spec
from agent.service.config import ServiceConfig, SetConfig
from agent.service.durations import format_duration, parse_duration
from agent.service.journal import ChangeJournal
from agent.service.layout import ServiceLayout
from agent.service.runner import ActiveRun, iso
from agent.service.state import SetState, StateStore


def progress_info(progress: Progress) -> s.ProgressInfo:
    d = progress.snapshot()
    return s.ProgressInfo(
        phase=d["phase"], files_done=d["files_done"], files_total=d["files_total"],
        bytes_done=d["bytes_done"], bytes_total=d["bytes_total"], bytes_stored=d["bytes_stored"],
        totals_known=d["totals_known"], rate_bps=round(d["rate_bps"], 1),
        eta_s=None if d["eta_s"] is None else round(d["eta_s"], 1),
        elapsed_s=round(d["elapsed_s"], 3), current_file=d["current"], errors=len(d["errors"]))


def run_state(progress: Progress) -> str:
    """Scanning until the first changed file is read, then backing up."""
    if progress.phase in ("starting", "preparing"):
        return s.SCANNING
    if progress.phase == "backing up" and not progress.files_done and not progress.bytes_done:
        return s.SCANNING
    return s.BACKING_UP


@dataclass(frozen=True)
class Inputs:
    """A consistent view of the service for one status reply."""

    layout: ServiceLayout
    config: ServiceConfig
    state: StateStore
    journal: ChangeJournal
    watching: Callable[[str], bool]
    active: ActiveRun | None
    queued: set[str]
    now: float
    device_id: str
    pause_reason: str  # user or resource pause; "" when not paused
    paused_until: str | None
    user_present: bool | None
    unreachable: Callable[[SetConfig], str]
    config_warning: str


def build(i: Inputs) -> s.Status:
    sets = [_set_status(i, cfg) for cfg in i.config.sets]
    state, why = _overall(i, sets)
    warnings = [w for st in sets for w in (f"{st.name}: {x}" for x in st.warnings)]
    if i.config_warning:
        warnings.insert(0, i.config_warning)
    if not sets:
        warnings.append("No backup sets yet: add one with `cairn sets add NAME PATH...`.")
    return s.Status(state=state, why=why, agent_version=__version__, mode=i.layout.mode,
                    device_id=i.device_id, paused_until=i.paused_until,
                    user_present=i.user_present, sets=sets, warnings=warnings)


def _overall(i: Inputs, sets: list[s.SetStatus]) -> tuple[str, str]:
    if i.pause_reason:
        return s.PAUSED, i.pause_reason
    for wanted in (s.BACKING_UP, s.SCANNING, s.WAITING_FOR_DESTINATION, s.ERROR,
                   s.NOT_REGISTERED):
        for st in sets:
            if st.state == wanted:
                return wanted, f"{st.name}: {st.why}" if st.why else st.name
    return s.IDLE, ""


def _set_status(i: Inputs, cfg: SetConfig) -> s.SetStatus:
    st = i.state.get(cfg.name)
    spec = dest_spec(cfg, i.layout)
    full_reason, changed = i.journal.pending(cfg.name)
    watching = i.watching(cfg.name)
    out = s.SetStatus(
        name=cfg.name, paths=list(cfg.paths), destination=spec.description,
        destination_type=spec.kind,
        last_completed=iso(st.last_success_start) if st.last_success_start else None,
        last_snapshot=st.last_snapshot, watching=watching,
        full_scan_pending=bool(full_reason) or not watching,
        full_scan_reason=full_reason or ("" if watching else "not watched"),
        changed_paths=changed,
        last_run=s.from_json(s.RunSummary, st.last_run) if st.last_run else None,
        warnings=_warnings(i, cfg, st))
    due = schedule.next_due(cfg, st.history(), i.now)
    out.next_scheduled = iso(due.at)
    out.state, out.why = _set_state(i, cfg, st, spec.registered)
    if i.active is not None and i.active.name == cfg.name:
        out.progress = progress_info(i.active.progress)
    return out


def _set_state(i: Inputs, cfg: SetConfig, st: SetState, registered: bool) -> tuple[str, str]:
    if i.active is not None and i.active.name == cfg.name:
        return run_state(i.active.progress), f"{i.active.scan} scan: {i.active.reason}"
    if not registered:
        return s.NOT_REGISTERED, "this computer is not registered with a Cairn server"
    if i.pause_reason:
        return s.PAUSED, i.pause_reason
    if cfg.name in i.queued:
        return s.QUEUED, "waiting for another set's backup to finish"
    if st.last_result == schedule.FAILED and st.unreachable:
        retry = format_duration(schedule.backoff_s(st.failures))
        return s.WAITING_FOR_DESTINATION, f"{st.last_error} (next try within {retry})"
    unreachable = i.unreachable(cfg)
    if unreachable:
        return s.WAITING_FOR_DESTINATION, unreachable
    if st.last_result == schedule.FAILED:
        return s.ERROR, st.last_error
    return s.IDLE, ""


def _warnings(i: Inputs, cfg: SetConfig, st: SetState) -> list[str]:
    out = []
    limit = parse_duration(i.config.service.warn_after)
    since = st.last_success_start
    if since is not None and i.now - since > limit:
        out.append(f"not backed up for {format_duration(i.now - since)}")
    elif since is None and st.last_attempt_end is not None:
        out.append("never backed up successfully yet")
    skipped = (st.last_run or {}).get("skipped_count", 0)
    if skipped:
        out.append(f"{skipped} file(s) could not be read in the last backup")
    return out


def offline(layout: ServiceLayout, config: ServiceConfig, state: StateStore,
            now: float) -> s.Status:
    """What ``cairn status`` shows when no service is running: the stored history."""
    sets = []
    for cfg in config.sets:
        st = state.get(cfg.name)
        spec = dest_spec(cfg, layout)
        sets.append(s.SetStatus(
            name=cfg.name, state=s.STOPPED, why="the service is not running",
            paths=list(cfg.paths), destination=spec.description, destination_type=spec.kind,
            last_completed=iso(st.last_success_start) if st.last_success_start else None,
            last_snapshot=st.last_snapshot,
            next_scheduled=iso(schedule.next_due(cfg, st.history(), now).at),
            last_run=s.from_json(s.RunSummary, st.last_run) if st.last_run else None))
    return s.Status(state=s.STOPPED, why="the Cairn service is not running (start it with "
                    "`cairn run`)", agent_version=__version__, mode=layout.mode,
                    device_id=layout.device_id(), sets=sets)
