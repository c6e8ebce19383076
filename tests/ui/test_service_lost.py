"""The tray when the service stops and comes back, and without a system tray."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pytestqt.qtbot import QtBot

from tests.service.helpers import ROOT, Agent, make_tree, wait_for
from tests.ui.conftest import WAIT_MS, Service, running_app
from ui.app import TrayApp
from ui.summary import NOT_RUNNING_MESSAGE, TrayState


def test_service_stops_and_comes_back(qtbot: QtBot, tmp_path: Path) -> None:
    make_tree(tmp_path / "src", 1, 2)
    agent = Agent(tmp_path / "home")
    agent.add_set("docs", tmp_path / "src", dest=tmp_path / "archive")
    agent.start()
    try:
        with running_app(qtbot, agent.home) as app:
            tray, controller = app.tray, app.controller
            assert tray is not None
            qtbot.waitUntil(lambda: controller.running, timeout=WAIT_MS)
            agent.stop()
            qtbot.waitUntil(lambda: controller.summary.state == TrayState.NOT_RUNNING,
                            timeout=WAIT_MS)
            assert tray.icon.toolTip().startswith(f"Cairn: {NOT_RUNNING_MESSAGE}")
            assert app.window.headline.text() == NOT_RUNNING_MESSAGE and not app.window.panels
            assert not tray.backup_action.isEnabled() and not tray.restore_action.isEnabled()
            agent.start()
            qtbot.waitUntil(lambda: controller.running and "docs" in app.window.panels,
                            timeout=WAIT_MS)
            assert controller.summary.state != TrayState.NOT_RUNNING
            assert tray.backup_action.isEnabled()
    finally:
        agent.stop()


def test_without_a_tray_the_window_is_the_app(qtbot: QtBot, service: Service) -> None:
    app = TrayApp(service.agent.home, use_tray=False, wait_s=1, retry_s=0.2)
    qtbot.addWidget(app.window)
    app.start()
    try:
        assert app.tray is None and app.window.isVisible()
        qtbot.waitUntil(lambda: "docs" in app.window.panels, timeout=WAIT_MS)
        app.window.close()
        assert not app.window.isVisible()
    finally:
        app.shutdown()


def test_python_m_ui_opens_the_window_where_there_is_no_tray(service: Service) -> None:
    log = service.agent.home / "logs" / "tray.log"
    env = {**service.agent.env, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.Popen([sys.executable, "-m", "ui"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: log.exists() and "Tray app started" in log.read_text(), 30,
                 what="the tray app to start")
        assert "(window only)" in log.read_text() and proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(10)
