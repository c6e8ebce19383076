"""``cairn run``: the service's life cycle and its scheduling loop.

Threads: the main thread runs ``tick`` every few seconds (every second while
a job runs, to publish progress); the runner thread runs backups one at a time;
task threads run restores and prunes; watchdog's threads feed the journal; the
API server answers on its own threads. SIGTERM or SIGINT cancel the running
backup (the engine stops at its next check; stored packs are adopted by the
next run), release the archive lock, flush the journal and state, and exit
well within 10 s — a second signal exits at once.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from agent.errors import UsageError
from agent.service import config as cfgmod
from agent.service import logs, resources, schedule
from agent.service.archives import Archives, dest_spec
from agent.service.clock import Clock, SleepDetector
from agent.service.config import ServiceConfig
from agent.service.events import EventBus
from agent.service.journal import ChangeJournal
from agent.service.layout import ServiceLayout
from agent.service.resources import Readings
from agent.service.runner import BackupRunner, RunEnv
from agent.service.state import StateStore
from agent.service.tasks import TaskRegistry
from agent.service.throttle import RateLimiter
from agent.service.watcher import Watcher

log = logging.getLogger("cairn.service")

IDLE_TICK_S = 5.0
BUSY_TICK_S = 1.0
TEST_TICK_S = 0.5
RESOURCE_EVERY_S = 30.0
STOP_BUDGET_S = 8.0


def acquire_instance_lock(path: Path) -> IO:
    """Hold an exclusive lock on ``path`` for the life of the process, or refuse."""
    handle = open(path, "a+")  # noqa: SIM115 - held until the process exits
    try:
        if os.name == "nt":  # pragma: no cover - Windows only
            import msvcrt
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise UsageError(f"A Cairn service is already running for {path.parent.parent}.") from None
    return handle


class Service:
    def __init__(self, layout: ServiceLayout, env: Mapping[str, str]) -> None:
        self.layout = layout
        clock_file = env.get("CAIRN_TEST_CLOCK_FILE")
        self.clock = Clock(Path(clock_file) if clock_file else None)
        self.archives = Archives(layout, env)
        self.config = cfgmod.load(layout.config_file)
        self._config_stamp = self._stamp()
        self.config_warning = ""
        self.events = EventBus()
        self.state = StateStore(layout.state_dir / "state.json")
        self.journal = ChangeJournal(layout.journal_dir)
        self.watcher = Watcher(self.journal, self._lost)
        self.limiter = RateLimiter()
        self.readings = Readings(None, None, None, None, None)
        self.decision = resources.decide(self.config.resources, self.readings, os.cpu_count() or 1)
        self._readings_at = float("-inf")
        self.device_id = layout.device_id()
        self.runner = BackupRunner(RunEnv(
            layout, self.archives, self.state, self.clock, self.limiter, lambda: self.config,
            lambda: self.decision, self.watcher.watching, self.journal, self.device_id,
            self.events.publish))
        self.tasks = TaskRegistry(lambda t: self.events.publish("task", {"task": t.id,
                                                                         "status": t.status}))
        self.stop_event = threading.Event()
        self._wake = threading.Event()
        self._detector = SleepDetector(self.clock)

    # --- life cycle -------------------------------------------------------------------

    def start(self) -> None:
        names = [s.name for s in self.config.sets]
        self.journal.load(names)
        for name in names:
            self.journal.mark_full(name, "the service started (changes made while it was "
                                   "stopped are unknown)")
        self.journal.flush()
        self.watcher.start(self._watch_map(), self._ignored())
        self.runner.start()
        log.info("Cairn service started (%s mode, home %s, %d backup set(s)).",
                 self.layout.mode, self.layout.home, len(names))

    def request_stop(self) -> None:
        self.stop_event.set()
        self._wake.set()

    def loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("Error in the service loop")
            busy = self.runner.active is not None or bool(self.tasks.running())
            wait = TEST_TICK_S if self.clock.simulated else (BUSY_TICK_S if busy else IDLE_TICK_S)
            self._wake.wait(wait)
            self._wake.clear()

    def shutdown(self) -> bool:
        """Stop everything; False if the running backup did not stop in time."""
        log.info("Stopping the Cairn service.")
        stopped = self.runner.stop(STOP_BUDGET_S - 2)
        self.tasks.stop(1.0)
        self.watcher.stop()
        self.journal.flush()
        self.state.save()
        self.events.close()
        if not stopped:
            log.warning("The running backup did not stop in time; its archive lock expires "
                        "with its lease and the next run resumes from the stored packs.")
        log.info("Cairn service stopped.")
        return stopped

    def wake(self) -> None:
        self._wake.set()

    def reload_soon(self) -> None:
        """Re-read the configuration at the next tick (SIGHUP)."""
        self._config_stamp = -1
        self._wake.set()

    # --- the loop ---------------------------------------------------------------------

    def tick(self) -> None:
        jump = self._detector.check()
        if jump is not None:
            log.info("Wall clock jump: %s; missed runs are due and folders are scanned in "
                     "full.", jump.describe())
            self._lost(None, jump.describe())
        self._reload_if_changed()
        if not self.watcher.healthy():
            log.warning("The file watcher stopped; restarting it.")
            self.watcher.restart()
        self.watcher.retry_unwatched()
        self.journal.flush()
        self._refresh_resources()
        self._expire_pause()
        reason = self.pause_reason()
        if reason:
            if self.runner.active is not None and not self.user_paused():
                self.runner.cancel(None, schedule.PAUSED)
        else:
            self._start_due()
        if self.runner.active is not None:
            self.events.publish("progress", {"set": self.runner.active.name})

    def _start_due(self) -> None:
        now = self.clock.wall()
        busy = self.runner.queued() | ({self.runner.active.name} if self.runner.active else set())
        for cfg in self.config.sets:
            spec = dest_spec(cfg, self.layout)
            if cfg.name in busy or not spec.registered:
                continue
            due = schedule.next_due(cfg, self.state.get(cfg.name).history(), now)
            if due.at > now or spec.unreachable(self.state.get(cfg.name).used_dest):
                continue
            log.info("Set %s is due: %s.", cfg.name, due.reason)
            self.runner.enqueue(cfg.name, due.verification)

    def _lost(self, name: str | None, reason: str) -> None:
        """Events may have been missed: the next run of the set(s) walks everything."""
        for cfg in self.config.sets:
            if name is None or cfg.name == name:
                self.journal.mark_full(cfg.name, reason)
        self.events.publish("status", {"full_scan": reason})

    # --- pause and resources ----------------------------------------------------------

    def user_paused(self) -> bool:
        return self.state.paused_forever or self.state.paused_until is not None

    def pause_reason(self) -> str:
        if self.state.paused_forever:
            return "paused by the user until resumed"
        if self.state.paused_until is not None:
            return "paused by the user for a while"
        return self.decision.pause_reason

    def _expire_pause(self) -> None:
        until = self.state.paused_until
        if until is not None and self.clock.wall() >= until:
            self.state.set_pause(None, False)
            log.info("The pause ended; backups resume.")
            self.events.publish("resumed", {})

    def _refresh_resources(self) -> None:
        now = self.clock.monotonic()
        if now - self._readings_at < RESOURCE_EVERY_S:
            return
        self._readings_at = now
        self.readings = resources.read_all(want_metered=self.config.resources.pause_on_metered)
        self._apply_decision()

    def _apply_decision(self) -> None:
        old = self.decision
        self.decision = resources.decide(self.config.resources, self.readings,
                                         os.cpu_count() or 1)
        self.limiter.set_rate(self.decision.upload_limit_bps)
        if (old.pause_reason, old.user_present) != (self.decision.pause_reason,
                                                    self.decision.user_present):
            log.info("Resources: user %s; %s.", "present" if self.decision.user_present
                     else "away", self.decision.pause_reason or "backups may run")
            self.events.publish("status", {})

    # --- configuration ----------------------------------------------------------------

    def _stamp(self) -> int:
        try:
            return self.layout.config_file.stat().st_mtime_ns
        except OSError:
            return 0

    def _reload_if_changed(self) -> None:
        stamp = self._stamp()
        if stamp == self._config_stamp:
            return
        self._config_stamp = stamp
        try:
            self.apply_config(cfgmod.load(self.layout.config_file))
        except UsageError as exc:
            self.config_warning = f"The configuration was not reloaded: {exc}"
            log.error("%s", self.config_warning)

    def apply_config(self, new: ServiceConfig) -> None:
        """Switch to ``new`` (already validated): watches, levels, limits, forgotten sets."""
        old, self.config = self.config, new
        self.config_warning = ""
        logs.apply_level(new.service)
        self._apply_decision()
        names = {s.name for s in new.sets}
        for gone in {s.name for s in old.sets} - names:
            self.journal.forget(gone)
            self.runner.cancel(gone, schedule.CANCELLED)
        self.state.forget(names)
        if self._watch_map_of(old) != self._watch_map():
            for name in names:
                self.journal.mark_full(name, "the file watcher restarted (sets changed)")
            self.watcher.start(self._watch_map(), self._ignored())
        log.info("Configuration reloaded (%d backup set(s)).", len(new.sets))
        self.events.publish("settings", {})
        self.wake()

    def _watch_map(self) -> dict[str, tuple[str, ...]]:
        return self._watch_map_of(self.config)

    @staticmethod
    def _watch_map_of(config: ServiceConfig) -> dict[str, tuple[str, ...]]:
        return {s.name: tuple(os.path.abspath(os.path.expanduser(p)) for p in s.paths)
                for s in config.sets}

    def _ignored(self) -> tuple[str, ...]:
        paths = {str(self.layout.home), str(self.layout.logs)}
        for cfg in self.config.sets:
            spec = dest_spec(cfg, self.layout)
            if spec.path is not None:
                paths.add(str(spec.path))
        return tuple(sorted(paths))


def install_signal_handlers(service: Service) -> None:
    """First SIGTERM/SIGINT: stop gracefully; a second one: exit at once. SIGHUP: reload."""

    def handle(signum: int, _frame: object) -> None:
        if service.stop_event.is_set():
            os._exit(128 + signum)
        log.info("Received %s; stopping.", signal.Signals(signum).name)
        service.request_stop()

    def reload(_signum: int, _frame: object) -> None:
        service.reload_soon()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, reload)
