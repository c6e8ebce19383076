"""The ASGI application: routers, problem documents, OpenAPI, periodic maintenance."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

from server import __version__
from server.api import (
    admin_archive,
    auth,
    devices,
    keys,
    objects,
    orgs,
    problems,
    register,
    reports,
    users,
)
from server.api.limits import BodyLimit
from server.api.schemas import Health
from server.config import ServeOptions
from server.domain import archive, settings
from server.errors import ServerError
from server.runtime import Runtime

log = logging.getLogger("cairn.server")


class Maintenance(threading.Thread):
    """Every ``interval_s``: purge expired trash, retry pending deletions, re-count bytes."""

    def __init__(self, rt: Runtime, interval_s: float) -> None:
        super().__init__(name="cairn-maintenance", daemon=True)
        self.rt = rt
        self.interval_s = interval_s
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval_s):
            self.run_once()

    def run_once(self) -> None:
        try:
            with self.rt.db.read() as session:
                grace_s = settings.load(session).trash_grace_s
            done = archive.maintain(self.rt.db, self.rt.store, grace_s)
            log.info("maintenance: %s", done)
        except ServerError as exc:
            log.warning("maintenance skipped: %s", exc)


def create_app(rt: Runtime, options: ServeOptions) -> FastAPI:
    """Build the application around an opened runtime."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        worker = None
        if options.purge_interval_s > 0:
            worker = Maintenance(rt, options.purge_interval_s)
            worker.start()
        try:
            yield
        finally:
            if worker is not None:
                worker.stopping.set()

    app = FastAPI(title="Cairn server", version=__version__, lifespan=lifespan,
                  openapi_url="/api/v1/openapi.json", docs_url="/api/v1/docs", redoc_url=None,
                  description="Authority and encrypted storage for Cairn agents. "
                              "See docs/server-api.md.")
    app.state.runtime = rt
    app.state.options = options
    problems.install(app)
    app.add_middleware(BodyLimit)
    for module in (register, objects, auth, orgs, users, devices, reports, keys,
                   admin_archive):
        app.include_router(module.router)

    @app.get("/api/v1/health", response_model=Health, tags=["server"])
    def health(request: Request) -> Health:
        """Liveness and the minimum agent version (no authentication)."""
        with request.app.state.runtime.db.read() as session:
            minimum = settings.load(session).min_agent_version
        return Health(status="ok", version=__version__, min_agent_version=minimum)

    return app
