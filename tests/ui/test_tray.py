"""The tray icon and status window follow the real service: backups, pause and resume."""

from __future__ import annotations

import os
import re

from pytestqt.qtbot import QtBot

from tests.ui.conftest import WAIT_MS, Service
from ui.app import TrayApp
from ui.summary import TrayState


def _snapshots(service: Service) -> int:
    with service.agent.client() as client:
        return len(client.snapshots("docs"))


def _last_result(app: TrayApp) -> str:
    status = app.controller.status
    run = status.sets[0].last_run if status else None
    return run.result if run else ""


def test_up_to_date_and_the_status_window(tray_app: TrayApp, qtbot: QtBot) -> None:
    tray, window = tray_app.tray, tray_app.window
    assert tray is not None
    qtbot.waitUntil(lambda: tray_app.controller.summary.state == TrayState.UP_TO_DATE,
                    timeout=WAIT_MS)
    assert tray.icon.toolTip().startswith("Cairn: Up to date\nLast backup ")
    assert tray.status_line.text() == "Up to date" and tray.backup_action.isEnabled()
    assert not tray.resume_action.isVisible() and tray.pause_menu.menuAction().isVisible()
    panel = window.panels["docs"]
    assert panel.last.text().endswith("ago") or panel.last.text() == "just now"
    assert panel.next.text().startswith("in ")
    assert panel.last_run.text().startswith("Finished ") and "6 files" in panel.last_run.text()


def test_back_up_now_pause_and_resume(tray_app: TrayApp, qtbot: QtBot, service: Service) -> None:
    tray, controller = tray_app.tray, tray_app.controller
    assert tray is not None
    before = _snapshots(service)
    seen: list[TrayState] = []
    controller.changed.connect(lambda: seen.append(controller.summary.state))
    # A slow upload keeps the run going long enough to watch (and pause) it.
    (service.src / "d000" / "big.bin").write_bytes(os.urandom(600_000))
    with service.agent.client() as client:
        client.change_settings({"resources.upload_limit_present": "200",
                                "resources.upload_limit_away": "200"})
    try:
        tray.backup_action.trigger()
        qtbot.waitUntil(lambda: controller.summary.state == TrayState.BACKING_UP,
                        timeout=WAIT_MS)
        # A run over the change journal does not count its totals first: no percent yet.
        qtbot.waitUntil(lambda: tray.icon.toolTip().startswith("Cairn: Backing up docs\n"),
                        timeout=WAIT_MS)
        assert re.search(r"\n600\.0 KB read · 1 file so far", tray.icon.toolTip())
        panel = tray_app.window.panels["docs"]
        assert panel.bar.isVisibleTo(panel) and "1 file so far" in panel.progress.text()
        tray.pause_menu.actions()[0].trigger()  # for 1 hour
        qtbot.waitUntil(lambda: controller.summary.state == TrayState.PAUSED, timeout=WAIT_MS)
        assert tray.icon.toolTip().startswith("Cairn: Paused until ")
        qtbot.waitUntil(lambda: _last_result(tray_app) == "paused", timeout=WAIT_MS)
        assert tray.resume_action.isVisible() and not tray.backup_action.isEnabled()
        assert tray_app.window.resume_button.isVisibleTo(tray_app.window)
        with qtbot.waitSignal(controller.notice, timeout=WAIT_MS) as refused:
            controller.backup_now()  # the service refuses while paused
        assert "paused" in refused.args[0].lower()
        tray.resume_action.trigger()
        qtbot.waitUntil(lambda: _snapshots(service) > before, timeout=WAIT_MS)
    finally:
        with service.agent.client() as client:
            client.resume()
            client.change_settings({"resources.upload_limit_present": "0",
                                    "resources.upload_limit_away": "0"})
    qtbot.waitUntil(lambda: controller.summary.state == TrayState.UP_TO_DATE, timeout=WAIT_MS)
    assert _last_result(tray_app) == "success"
    assert TrayState.BACKING_UP in seen and TrayState.PAUSED in seen
    assert tray.icon.toolTip().startswith("Cairn: Up to date")
