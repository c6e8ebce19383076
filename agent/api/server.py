"""The local control API over HTTP/1.1 (docs/local-api.md).

On Linux and macOS it listens on a Unix-domain socket and authorizes each
connection by the peer's credentials (``SO_PEERCRED`` / ``LOCAL_PEERCRED``):
the service's own user, root, and the users named in ``api.allowed_users``.
On Windows (or with ``api.transport = "tcp"``) it listens on 127.0.0.1 with a
random port and requires the bearer token from a file only the service's user
can read; requests with an ``Origin`` header or a foreign ``Host`` are refused
(no browser page can drive it).

The server knows nothing of the engine: it calls a ``Backend`` with wire types
from ``schemas`` and turns errors into JSON ``{"error": sentence}`` replies.
"""

from __future__ import annotations

import hmac
import http.server
import json
import logging
import os
import re
import secrets
import socket
import socketserver
import struct
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from agent.api import schemas as s
from agent.api.endpoint import Endpoint
from agent.errors import CairnError, UsageError

log = logging.getLogger("cairn.api")
MAX_BODY = 1 << 20
SSE_KEEPALIVE_S = 15.0


class ApiFailure(Exception):
    """A request the backend refuses: an HTTP status and a sentence."""

    def __init__(self, status: int, message: str, code: str = "") -> None:
        super().__init__(message)
        self.status, self.code = status, code


@dataclass(frozen=True)
class Caller:
    uid: int | None  # None on the TCP transport (the token proves the user)
    pid: int | None = None


class Backend(Protocol):
    def status(self) -> s.Status: ...
    def backup(self, req: s.BackupRequest) -> s.Accepted: ...
    def pause(self, req: s.PauseRequest) -> s.Accepted: ...
    def resume(self) -> s.Accepted: ...
    def cancel(self, req: s.CancelRequest) -> s.Accepted: ...
    def settings(self) -> dict: ...
    def change_settings(self, req: s.SettingsChange) -> dict: ...
    def snapshots(self, set_name: str, every_path: bool) -> list[s.SnapshotInfo]: ...
    def browse(self, set_name: str, snapshot: str, path: str) -> list[s.TreeEntry]: ...
    def restore(self, req: s.RestoreRequest, caller: Caller) -> s.Task: ...
    def prune(self, req: s.PruneRequest) -> s.Task: ...
    def tasks(self) -> list[s.Task]: ...
    def task(self, task_id: str) -> s.Task: ...
    def cancel_task(self, task_id: str) -> s.Task: ...
    def events(self, after: int, wait_s: float) -> list[s.Event]: ...
    def stopping(self) -> bool: ...


Route = tuple[str, re.Pattern[str], Callable[..., Any]]


def _routes(b: Backend) -> list[Route]:
    def body(cls: type) -> Callable[[dict], Any]:
        return lambda doc: s.from_json(cls, doc)

    table: list[tuple[str, str, Callable[..., Any]]] = [
        ("GET", r"/v1/version", lambda r: {"api_version": s.API_VERSION,
                                           "agent_version": b.status().agent_version}),
        ("GET", r"/v1/status", lambda r: b.status()),
        ("POST", r"/v1/backup", lambda r: b.backup(body(s.BackupRequest)(r.json))),
        ("POST", r"/v1/pause", lambda r: b.pause(body(s.PauseRequest)(r.json))),
        ("POST", r"/v1/resume", lambda r: b.resume()),
        ("POST", r"/v1/cancel", lambda r: b.cancel(body(s.CancelRequest)(r.json))),
        ("GET", r"/v1/settings", lambda r: b.settings()),
        ("PATCH", r"/v1/settings", lambda r: b.change_settings(body(s.SettingsChange)(r.json))),
        ("GET", r"/v1/sets/(?P<set>[^/]+)/snapshots",
         lambda r: b.snapshots(r.args["set"], r.query.get("all") == "1")),
        ("GET", r"/v1/sets/(?P<set>[^/]+)/snapshots/(?P<snap>[^/]+)/tree",
         lambda r: b.browse(r.args["set"], r.args["snap"], r.query.get("path", "/"))),
        ("POST", r"/v1/restores", lambda r: b.restore(body(s.RestoreRequest)(r.json), r.caller)),
        ("POST", r"/v1/prune", lambda r: b.prune(body(s.PruneRequest)(r.json))),
        ("GET", r"/v1/tasks", lambda r: b.tasks()),
        ("GET", r"/v1/tasks/(?P<id>[0-9a-f]+)", lambda r: b.task(r.args["id"])),
        ("POST", r"/v1/tasks/(?P<id>[0-9a-f]+)/cancel", lambda r: b.cancel_task(r.args["id"])),
        ("GET", r"/v1/events", lambda r: _poll(b, r)),
    ]
    return [(m, re.compile(p + "$"), fn) for m, p, fn in table]


def _poll(b: Backend, r: _Request) -> dict:
    after = _int_arg(r.query, "after", 0)
    wait = min(max(_int_arg(r.query, "wait", 25), 0), 60)
    events = b.events(after, wait)
    return {"events": s.to_json(events), "last": events[-1].seq if events else after}


def _int_arg(query: dict[str, str], name: str, default: int) -> int:
    try:
        return int(query.get(name, default))
    except ValueError:
        raise ApiFailure(400, f"Query parameter {name} must be a whole number.") from None


@dataclass
class _Request:
    args: dict[str, str]
    query: dict[str, str]
    json: Any
    caller: Caller


def peer_uid(sock: socket.socket) -> tuple[int | None, int | None]:
    """(uid, pid) of the process at the other end of a Unix-domain socket."""
    if hasattr(socket, "SO_PEERCRED"):
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, _gid = struct.unpack("3i", raw)
        return uid, pid
    if sys.platform == "darwin":  # LOCAL_PEERCRED: struct xucred {version, uid, ...}
        raw = sock.getsockopt(0, 0x001, 76)
        return struct.unpack_from("=II", raw)[1], None
    return None, None


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def setup(self) -> None:
        super().setup()
        api: ApiServer = self.server.api
        self.caller = Caller(*peer_uid(self.request)) if api.transport == "unix" else Caller(None)

    def address_string(self) -> str:
        return f"uid {self.caller.uid}" if self.caller.uid is not None else "loopback"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        api: ApiServer = self.server.api
        try:
            api.authorize(self)
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            doc = self._read_json()
            if method == "GET" and url.path == "/v1/events/stream":
                self._stream(api.backend, _int_arg(query, "after", 0))
                return
            status, reply = 200, self._route(api, method, url.path, query, doc)
        except ApiFailure as exc:
            status, reply = exc.status, s.ApiErrorBody(str(exc), exc.code)
        except (UsageError, ValueError) as exc:
            status, reply = 400, s.ApiErrorBody(str(exc), "bad-request")
        except KeyError as exc:
            status, reply = 404, s.ApiErrorBody(f"No such item: {exc.args[0]}.", "not-found")
        except CairnError as exc:
            status, reply = 409, s.ApiErrorBody(str(exc), type(exc).__name__)
        except Exception:
            log.exception("Internal error serving %s %s", method, self.path)
            status, reply = 500, s.ApiErrorBody("Internal error; see the service log.",
                                                "internal")
        self._send(status, s.to_json(reply))

    def _route(self, api: ApiServer, method: str, path: str, query: dict[str, str],
               doc: Any) -> Any:
        allowed = []
        for m, pattern, fn in api.routes:
            match = pattern.match(path)
            if match:
                if m == method:
                    return fn(_Request(match.groupdict(), query, doc, self.caller))
                allowed.append(m)
        if allowed:
            raise ApiFailure(405, f"{path} does not accept {method}.", "method")
        raise ApiFailure(404, f"No such API path: {path}.", "not-found")

    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            raise ApiFailure(413, "The request body is too large.")
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiFailure(400, "The request body is not valid JSON.") from None

    def _send(self, status: int, doc: Any) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, backend: Backend, after: int) -> None:
        """Server-sent events until the client goes away or the service stops."""
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            while not backend.stopping():
                events = backend.events(after, SSE_KEEPALIVE_S)
                for e in events:
                    self.wfile.write(f"id: {e.seq}\nevent: {e.type}\ndata: "
                                     f"{json.dumps(s.to_json(e))}\n\n".encode())
                    after = e.seq
                if not events:
                    self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()
        except OSError:
            return  # the client went away


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False


class _TcpServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    block_on_close = False


class ApiServer:
    """Binds the transport, publishes ``api.json`` and serves on a background thread."""

    def __init__(self, backend: Backend, *, transport: str, socket_path: Path,
                 endpoint_file: Path, token_file: Path, system: bool,
                 allowed_uids: frozenset[int] = frozenset()) -> None:
        self.backend, self.transport = backend, transport
        self.routes = _routes(backend)
        self._socket_path, self._endpoint_file = socket_path, endpoint_file
        self._token_file, self._system = token_file, system
        self.allowed_uids = allowed_uids
        self._token = ""
        self._server: socketserver.BaseServer | None = None
        self._thread: threading.Thread | None = None

    def authorize(self, handler: _Handler) -> None:
        if self.transport == "unix":
            uid = handler.caller.uid
            if uid is None or (uid not in (os.getuid(), 0) and uid not in self.allowed_uids):
                log.warning("Refused an API request from uid %s (pid %s).", uid,
                            handler.caller.pid)
                raise ApiFailure(403, "This user may not control the Cairn service "
                                 "(see api.allowed_users).", "forbidden")
            return
        port = self._server.server_address[1] if self._server else 0  # type: ignore
        if handler.headers.get("Origin") or handler.headers.get("Host") not in (
                f"127.0.0.1:{port}", f"localhost:{port}"):
            raise ApiFailure(403, "Requests from web pages or other hosts are refused.",
                             "forbidden")
        given = handler.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), self._token.encode()):
            raise ApiFailure(401, "A valid API token is required (see the api-token file).",
                             "unauthorized")

    def start(self) -> Endpoint:
        server, endpoint = self._bind_unix() if self.transport == "unix" else self._bind_tcp()
        server.api = self  # type: ignore[attr-defined]
        self._server = server
        endpoint.write(self._endpoint_file)
        self._thread = threading.Thread(target=server.serve_forever,
                                        kwargs={"poll_interval": 0.5}, name="api", daemon=True)
        self._thread.start()
        return endpoint

    def _bind_unix(self) -> tuple[socketserver.BaseServer, Endpoint]:
        path = str(self._socket_path)
        if len(os.fsencode(path)) > 100:
            raise UsageError(f"The control socket path {path} is too long for the OS; "
                             "use a shorter agent home (CAIRN_HOME).")
        self._socket_path.unlink(missing_ok=True)
        old_umask = os.umask(0o111 if self._system else 0o177)
        try:
            server = _UnixServer(path, _Handler)
        finally:
            os.umask(old_umask)
        return server, Endpoint("unix", socket=path, pid=os.getpid())

    def _bind_tcp(self) -> tuple[socketserver.BaseServer, Endpoint]:
        self._token = secrets.token_urlsafe(32)
        fd = os.open(self._token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(self._token + "\n")
        server = _TcpServer(("127.0.0.1", 0), _Handler)
        return server, Endpoint("tcp", host="127.0.0.1", port=server.server_address[1],
                                token_file=str(self._token_file), pid=os.getpid())

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._endpoint_file.unlink(missing_ok=True)
        if self.transport == "unix":
            self._socket_path.unlink(missing_ok=True)
