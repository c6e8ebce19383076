"""The tray app against a real ``cairn run``: Qt runs offscreen, the service for real."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any QApplication exists

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from tests.service.helpers import Agent, make_tree
from ui.app import TrayApp

WAIT_MS = 30_000


@dataclass
class Service:
    agent: Agent
    src: Path
    archive: Path


@contextmanager
def serving(base: Path, set_name: str) -> Iterator[Service]:
    """A running service whose one set ``set_name`` covers ``base / "src"`` (filled by
    the caller), backed up once."""
    agent = Agent(base / "home")
    agent.add_set(set_name, base / "src", dest=base / "archive", every="1h")
    agent.start()
    try:
        agent.wait_run(set_name, 0)
        yield Service(agent, base / "src", base / "archive")
    finally:
        agent.stop()


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One service for the session: set ``docs`` over a small tree, backed up once."""
    base = tmp_path_factory.mktemp("tray")
    make_tree(base / "src", 2, 3)
    with serving(base, "docs") as service:
        yield service


@contextmanager
def running_app(qtbot: QtBot, home: Path) -> Iterator[TrayApp]:
    """A started ``TrayApp`` with a tray icon that polls fast; shut down afterwards."""
    app = TrayApp(home, use_tray=True, wait_s=1, retry_s=0.2)
    qtbot.addWidget(app.window)
    app.start()
    try:
        yield app
    finally:
        app.shutdown()


@pytest.fixture
def tray_app(qtbot: QtBot, service: Service) -> Iterator[TrayApp]:
    with running_app(qtbot, service.agent.home) as app:
        qtbot.waitUntil(lambda: app.controller.running, timeout=WAIT_MS)
        yield app
