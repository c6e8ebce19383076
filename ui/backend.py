"""Every call to the agent's local API, made off the GUI thread.

``Backend.call(fn, done, failed)`` runs ``fn(client)`` on a worker of its own
thread pool with a fresh ``AgentClient`` (so a restarted service is found
again through ``api.json``) and hands the result, or the refusal as a
sentence, back to the GUI thread through a queued signal. ``Monitor`` is the
one long-lived worker: it reads the status, follows the event long-poll and
re-reads the status whenever something happens, and notices when the service
stops answering and when it comes back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, Signal, Slot

from agent.api.client import AgentClient, ApiError, ServiceNotRunning
from ui.summary import NOT_RUNNING_MESSAGE

log = logging.getLogger("cairn.tray")

Done = Callable[[Any], None]
Failed = Callable[[str], None]


def describe(exc: BaseException) -> str:
    """The sentence the user sees for a failed call; unexpected errors go to the log."""
    if isinstance(exc, ApiError):
        return str(exc)
    if isinstance(exc, ServiceNotRunning):
        return NOT_RUNNING_MESSAGE
    log.error("Unexpected error in an API call.", exc_info=exc)
    return "Something went wrong while talking to Cairn's backup service (see the tray log)."


class _Reply(QObject):
    """Lives on the GUI thread; the worker's ``finished`` reaches it queued."""

    finished = Signal(object, object)  # result, error sentence (or None)

    def __init__(self, done: Done | None, failed: Failed | None,
                 forget: Callable[[_Reply], None]) -> None:
        super().__init__()
        self._done, self._failed, self._forget = done, failed, forget
        self.finished.connect(self._deliver)

    @Slot(object, object)
    def _deliver(self, result: Any, error: str | None) -> None:
        self._forget(self)
        if error is None:
            if self._done is not None:
                self._done(result)
        elif self._failed is not None:
            self._failed(error)
        else:
            log.warning("API call refused: %s", error)


class _Job(QRunnable):
    def __init__(self, connect: Callable[[], AgentClient],
                 fn: Callable[[AgentClient], Any], reply: _Reply) -> None:
        super().__init__()
        self._connect, self._fn, self._reply = connect, fn, reply

    def run(self) -> None:
        result, error = None, None
        try:
            with self._connect() as client:
                result = self._fn(client)
        except Exception as exc:  # every failure becomes a sentence for the GUI
            error = describe(exc)
        self._reply.finished.emit(result, error)


class Backend(QObject):
    """Runs API calls for the agent home ``home`` on worker threads."""

    def __init__(self, home: Path, timeout: float = 60.0, workers: int = 4) -> None:
        super().__init__()
        self.home, self._timeout = home, timeout
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(workers)
        self._replies: set[_Reply] = set()

    def connect_client(self) -> AgentClient:
        """A new client for the service now published in the home's ``api.json``."""
        return AgentClient.for_home(self.home, self._timeout)

    def call(self, fn: Callable[[AgentClient], Any], done: Done | None = None,
             failed: Failed | None = None) -> None:
        """Run ``fn(client)`` off the GUI thread; then ``done(result)`` or ``failed(sentence)``."""
        reply = _Reply(done, failed, self._replies.discard)
        self._replies.add(reply)
        self._pool.start(_Job(self.connect_client, fn, reply))

    def shutdown(self, timeout_ms: int = 5000) -> None:
        """Wait for calls in flight (their replies are dropped)."""
        self._pool.waitForDone(timeout_ms)


class Monitor(QThread):
    """Follows the service: ``status_read`` on every change, ``lost`` when it stops answering."""

    status_read = Signal(object)  # agent.api.schemas.Status
    events_read = Signal(object)  # list[agent.api.schemas.Event]
    lost = Signal(str)

    def __init__(self, connect: Callable[[], AgentClient], wait_s: int = 10,
                 retry_s: float = 2.0) -> None:
        super().__init__()
        self._connect, self._wait_s, self._retry_s = connect, wait_s, retry_s
        self._stop = threading.Event()
        self._logged = ""  # the last failure logged

    def stop(self) -> None:
        """Ask the loop to end and wait for it (at most one long-poll)."""
        self._stop.set()
        self.wait((self._wait_s + 5) * 1000)

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                with self._connect() as client:
                    self._follow(client)
            except (ServiceNotRunning, ApiError) as exc:
                if str(exc) != self._logged:  # a long outage logs once
                    log.info("The service does not answer: %s", exc)
                    self._logged = str(exc)
                self.lost.emit(NOT_RUNNING_MESSAGE if isinstance(exc, ServiceNotRunning)
                               else str(exc))
            except Exception:  # keep following whatever happens; the log has the details
                log.exception("Following the service failed.")
                self.lost.emit(NOT_RUNNING_MESSAGE)
            self._stop.wait(self._retry_s)

    def _follow(self, client: AgentClient) -> None:
        _events, after = client.events(0, 0)
        self.status_read.emit(client.status())
        self._logged = ""
        while not self._stop.is_set():
            events, last = client.events(after, self._wait_s)
            if last < after:  # a restarted service numbers its events afresh: start over
                return
            after = last
            if events:
                self.events_read.emit(events)
                self.status_read.emit(client.status())

