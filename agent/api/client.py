"""Typed client of the local control API: one call per action (docs/local-api.md).

    with AgentClient.connect() as agent:
        status = agent.status()
        agent.backup_now("documents")

Uses httpx over the Unix-domain socket (or loopback TCP with the token on
Windows) published in the agent home's ``api.json``. Imports nothing of the
agent but the API's own schemas and endpoint description, so the tray app can
use it alone.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from agent.api import schemas as s
from agent.api.endpoint import ENDPOINT_FILE, Endpoint, default_home


class ServiceNotRunning(Exception):
    """No service answers for this agent home."""


class ApiError(Exception):
    """The service refused a request; ``str(err)`` is its sentence."""

    def __init__(self, status: int, message: str, code: str = "") -> None:
        super().__init__(message)
        self.status, self.code = status, code


class AgentClient:
    def __init__(self, endpoint: Endpoint, timeout: float = 30.0) -> None:
        self.endpoint = endpoint
        if endpoint.transport == "unix":
            transport = httpx.HTTPTransport(uds=endpoint.socket)
            self._http = httpx.Client(transport=transport, base_url="http://cairn",
                                      timeout=timeout)
        else:
            self._http = httpx.Client(
                base_url=f"http://{endpoint.host}:{endpoint.port}", timeout=timeout,
                headers={"Authorization": f"Bearer {endpoint.token()}"})

    @classmethod
    def for_home(cls, home: Path, timeout: float = 30.0) -> AgentClient:
        endpoint = Endpoint.read(home / ENDPOINT_FILE)
        if endpoint is None:
            raise ServiceNotRunning(f"The Cairn service is not running for {home}.")
        return cls(endpoint, timeout)

    @classmethod
    def connect(cls, env: Mapping[str, str] = os.environ, system: bool = False,
                timeout: float = 30.0) -> AgentClient:
        """A client for the service of ``CAIRN_HOME`` (or the per-user / system default)."""
        return cls.for_home(default_home(env, system), timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    # --- plumbing -------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None, params: dict | None = None,
              timeout: float | None = None) -> Any:
        kwargs: dict[str, Any] = {"params": params}
        if body is not None:
            kwargs["json"] = s.to_json(body)
        if timeout is not None:
            kwargs["timeout"] = timeout
        try:
            reply = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServiceNotRunning(f"The Cairn service does not answer ({exc}).") from exc
        try:
            doc = reply.json()
        except ValueError:
            raise ApiError(reply.status_code, f"Unexpected reply ({reply.status_code}).") from None
        if reply.status_code >= 400:
            raise ApiError(reply.status_code, str(doc.get("error", "request refused")),
                           str(doc.get("code", "")))
        return doc

    # --- status and actions -------------------------------------------------------------

    def status(self) -> s.Status:
        return s.from_json(s.Status, self._call("GET", "/v1/status"))

    def version(self) -> dict:
        return self._call("GET", "/v1/version")

    def backup_now(self, set_name: str | None = None) -> s.Accepted:
        return s.from_json(s.Accepted, self._call("POST", "/v1/backup",
                                                  s.BackupRequest(set_name)))

    def pause(self, seconds: float | None = None) -> s.Accepted:
        return s.from_json(s.Accepted, self._call("POST", "/v1/pause", s.PauseRequest(seconds)))

    def resume(self) -> s.Accepted:
        return s.from_json(s.Accepted, self._call("POST", "/v1/resume", {}))

    def cancel(self, set_name: str | None = None) -> s.Accepted:
        return s.from_json(s.Accepted, self._call("POST", "/v1/cancel",
                                                  s.CancelRequest(set_name)))

    def settings(self) -> dict:
        return self._call("GET", "/v1/settings")

    def change_settings(self, changes: dict[str, str]) -> dict:
        return self._call("PATCH", "/v1/settings", s.SettingsChange(changes))

    # --- archives -----------------------------------------------------------------------

    def snapshots(self, set_name: str, every_path: bool = False) -> list[s.SnapshotInfo]:
        doc = self._call("GET", f"/v1/sets/{set_name}/snapshots",
                         params={"all": "1"} if every_path else None)
        return s.list_from_json(s.SnapshotInfo, doc)

    def browse(self, set_name: str, snapshot: str, path: str = "/") -> list[s.TreeEntry]:
        doc = self._call("GET", f"/v1/sets/{set_name}/snapshots/{snapshot}/tree",
                         params={"path": path})
        return s.list_from_json(s.TreeEntry, doc)

    def restore(self, set_name: str, snapshot: str, target: str,
                includes: list[str] | None = None) -> s.Task:
        req = s.RestoreRequest(set_name, snapshot, target, list(includes or []))
        return s.from_json(s.Task, self._call("POST", "/v1/restores", req))

    def prune(self, set_name: str, dry_run: bool = True) -> s.Task:
        return s.from_json(s.Task, self._call("POST", "/v1/prune",
                                              s.PruneRequest(set_name, dry_run)))

    # --- tasks and events ---------------------------------------------------------------

    def tasks(self) -> list[s.Task]:
        return s.list_from_json(s.Task, self._call("GET", "/v1/tasks"))

    def task(self, task_id: str) -> s.Task:
        return s.from_json(s.Task, self._call("GET", f"/v1/tasks/{task_id}"))

    def cancel_task(self, task_id: str) -> s.Task:
        return s.from_json(s.Task, self._call("POST", f"/v1/tasks/{task_id}/cancel", {}))

    def events(self, after: int = 0, wait_s: int = 25) -> tuple[list[s.Event], int]:
        """Long-poll: events after ``after`` (waiting up to ``wait_s``), and the last seq."""
        doc = self._call("GET", "/v1/events", params={"after": after, "wait": wait_s},
                         timeout=wait_s + 10)
        return s.list_from_json(s.Event, doc["events"]), int(doc["last"])

    def stream_events(self, after: int = 0) -> Iterator[s.Event]:
        """Server-sent events, as they happen, until the service stops."""
        try:
            with self._http.stream("GET", "/v1/events/stream", params={"after": after},
                                   timeout=httpx.Timeout(30.0, read=None)) as reply:
                if reply.status_code >= 400:
                    reply.read()
                    raise ApiError(reply.status_code, str(reply.json().get("error")))
                for line in reply.iter_lines():
                    if line.startswith("data: "):
                        yield s.from_json(s.Event, json.loads(line[6:]))
        except httpx.TransportError as exc:
            raise ServiceNotRunning(f"The Cairn service stopped answering ({exc}).") from exc

    def wait_task(self, task_id: str, timeout_s: float = 3600.0) -> s.Task:
        """Follow events until the task ends (or ``timeout_s`` passes); returns it."""
        deadline = time.monotonic() + timeout_s
        after = 0
        while True:
            task = self.task(task_id)
            if task.status in s.TASK_FINAL or time.monotonic() > deadline:
                return task
            _events, after = self.events(after, wait_s=5)
