"""Long jobs the API starts (restore, prune) as tasks with status, progress and a log.

Each task runs on its own thread with its own ``Progress`` and cancel event;
clients poll ``GET /v1/tasks/ID`` or follow ``task`` events. Finished tasks
are kept (the newest ``KEEP``) so a client that looks late still sees how it
ended.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from agent.api import schemas as s
from agent.engine.progress import Progress
from agent.errors import CairnError, Interrupted
from agent.service.status import progress_info

log = logging.getLogger("cairn.service.tasks")
KEEP = 50

#: A task body: gets its progress, cancel event and a log function; returns its result.
Body = Callable[[Progress, threading.Event, Callable[[str], None]], dict[str, Any]]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class _Handle:
    task: s.Task
    progress: Progress = field(default_factory=Progress)
    cancel: threading.Event = field(default_factory=threading.Event)


class TaskRegistry:
    def __init__(self, on_change: Callable[[s.Task], None]) -> None:
        self._tasks: dict[str, _Handle] = {}
        self._lock = threading.Lock()
        self._on_change = on_change
        self._threads: list[threading.Thread] = []

    def start(self, kind: str, set_name: str, body: Body) -> s.Task:
        handle = _Handle(s.Task(id=uuid.uuid4().hex[:12], kind=kind, started=_now(),
                                set=set_name))
        with self._lock:
            self._tasks[handle.task.id] = handle
            finished = [t for t, h in self._tasks.items() if h.task.status in s.TASK_FINAL]
            for old in finished[: max(0, len(self._tasks) - KEEP)]:
                del self._tasks[old]
        thread = threading.Thread(target=self._run, args=(handle, body),
                                  name=f"task-{handle.task.id}", daemon=True)
        self._threads.append(thread)
        thread.start()
        return self.get(handle.task.id)

    def _run(self, handle: _Handle, body: Body) -> None:
        task = handle.task
        log.info("Task %s (%s of set %s) started.", task.id, task.kind, task.set)
        self._on_change(self.get(task.id))
        try:
            task.result = body(handle.progress, handle.cancel, task.log.append)
            task.status = s.TASK_SUCCESS
        except Interrupted:
            task.status = s.TASK_CANCELLED
        except CairnError as exc:
            task.status, task.error = s.TASK_FAILED, str(exc)
        except Exception as exc:
            log.exception("Task %s failed", task.id)
            task.status, task.error = s.TASK_FAILED, f"internal error: {exc}"
        task.finished = _now()
        log.info("Task %s ended: %s %s", task.id, task.status, task.error)
        self._on_change(self.get(task.id))

    def get(self, task_id: str) -> s.Task:
        with self._lock:
            handle = self._tasks.get(task_id)
        if handle is None:
            raise KeyError(task_id)
        return replace(handle.task, progress=progress_info(handle.progress),
                       log=list(handle.task.log), result=dict(handle.task.result))

    def all(self) -> list[s.Task]:
        with self._lock:
            ids = list(self._tasks)
        return [self.get(i) for i in ids]

    def running(self) -> list[s.Task]:
        return [t for t in self.all() if t.status not in s.TASK_FINAL]

    def cancel(self, task_id: str) -> s.Task:
        with self._lock:
            handle = self._tasks.get(task_id)
        if handle is None:
            raise KeyError(task_id)
        if handle.task.status == s.TASK_RUNNING:
            handle.task.status = s.TASK_CANCELLING
            handle.cancel.set()
        return self.get(task_id)

    def stop(self, timeout: float) -> None:
        for handle in list(self._tasks.values()):
            handle.cancel.set()
        for thread in self._threads:
            thread.join(timeout / max(len(self._threads), 1))
