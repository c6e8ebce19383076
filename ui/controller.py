"""The tray's model: the service's last status, its summary, and the user's actions.

The tray icon and the status window both draw from ``Controller``; it changes
only in reaction to the ``Monitor``'s signals and to the replies of actions,
so every widget sees the same state.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal

from agent.api import schemas as s
from ui.backend import Backend, Monitor
from ui.summary import NOT_RUNNING_MESSAGE, Summary, TrayState, sentence, summarize

log = logging.getLogger("cairn.tray")

CONNECTING = Summary(TrayState.NOT_RUNNING, "Connecting to Cairn's backup service…")


class Controller(QObject):
    changed = Signal()  # ``status`` and ``summary`` changed
    notice = Signal(str)  # an action's outcome or a finished run, as a sentence

    def __init__(self, backend: Backend, monitor: Monitor) -> None:
        super().__init__()
        self.backend, self._monitor = backend, monitor
        self.status: s.Status | None = None
        self.summary = CONNECTING
        monitor.status_read.connect(self._on_status)
        monitor.lost.connect(self._on_lost)
        monitor.events_read.connect(self._on_events)

    @property
    def running(self) -> bool:
        """Whether the service answered last time we asked."""
        return self.status is not None

    @property
    def paused(self) -> bool:
        return self.status is not None and self.status.state == s.PAUSED

    def start(self) -> None:
        self._monitor.start()

    def shutdown(self) -> None:
        self._monitor.stop()
        self.backend.shutdown()

    # --- actions ----------------------------------------------------------------------

    def backup_now(self, set_name: str | None = None) -> None:
        self.backend.call(lambda c: c.backup_now(set_name), self._accepted, self._refused)

    def pause(self, seconds: float | None = None) -> None:
        self.backend.call(lambda c: c.pause(seconds), self._accepted, self._refused)

    def resume(self) -> None:
        self.backend.call(lambda c: c.resume(), self._accepted, self._refused)

    def cancel(self, set_name: str | None = None) -> None:
        self.backend.call(lambda c: c.cancel(set_name), self._accepted, self._refused)

    # --- reactions --------------------------------------------------------------------

    def _accepted(self, reply: s.Accepted) -> None:
        if reply.message:
            self.notice.emit(sentence(reply.message))

    def _refused(self, message: str) -> None:
        self.notice.emit(message)

    def _on_status(self, status: s.Status) -> None:
        self.status = status
        self._set_summary(summarize(status))

    def _on_lost(self, reason: str) -> None:
        if self.status is not None:
            log.warning("Lost the service: %s", reason)
        self.status = None
        summary = summarize(None, "" if reason == NOT_RUNNING_MESSAGE else reason)
        if summary != self.summary:
            self._set_summary(summary)

    def _on_events(self, events: list[s.Event]) -> None:
        for event in events:
            if event.type == "run-finished" and event.data.get("result") == "failed":
                error = event.data.get("error") or "see the status window"
                self.notice.emit(sentence(f"The backup of {event.data.get('set')} failed: {error}"))

    def _set_summary(self, summary: Summary) -> None:
        self.summary = summary
        self.changed.emit()
