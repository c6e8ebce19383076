"""The restore and settings dialogs against the real service."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QLineEdit, QTreeWidgetItem
from pytestqt.qtbot import QtBot

from tests.ui.conftest import WAIT_MS, Service, running_app, serving
from ui.app import TrayApp
from ui.restore_dialog import PATH_ROLE, RestoreDialog, default_target
from ui.settings_dialog import PathList


def _item(dialog: RestoreDialog, path: Path) -> QTreeWidgetItem | None:
    pending = [dialog.tree.topLevelItem(i) for i in range(dialog.tree.topLevelItemCount())]
    while pending:
        item = pending.pop()
        if item.data(0, PATH_ROLE) == str(path):
            return item
        pending.extend(item.child(i) for i in range(item.childCount()))
    return None


def test_restore_a_ticked_file(tray_app: TrayApp, qtbot: QtBot, service: Service,
                               tmp_path: Path) -> None:
    tray_app.show_restore()
    dialog = tray_app.restore
    assert dialog is not None and dialog.sets.currentText() == "docs"
    qtbot.waitUntil(lambda: dialog.snapshots.count() > 0, timeout=WAIT_MS)
    assert not dialog.start_button.isEnabled()  # nothing ticked yet
    # The lone folders above the set's folder open by themselves, down to its two folders.
    qtbot.waitUntil(lambda: _item(dialog, service.src / "d001") is not None, timeout=WAIT_MS)
    folder = _item(dialog, service.src / "d001")
    assert folder is not None
    folder.setExpanded(True)
    wanted = service.src / "d001" / "f001.txt"
    qtbot.waitUntil(lambda: _item(dialog, wanted) is not None, timeout=WAIT_MS)
    file_item = _item(dialog, wanted)
    assert file_item is not None
    file_item.setCheckState(0, Qt.CheckState.Checked)
    assert dialog.includes() == [str(wanted)] and dialog.start_button.isEnabled()
    target = tmp_path / "restored"
    dialog.target.setText(str(target))
    dialog.start_button.click()
    qtbot.waitUntil(lambda: dialog.message.text().startswith("Restored"), timeout=WAIT_MS)
    assert dialog.message.text().startswith("Restored 1 file(s)")
    assert dialog.cancel_button.text() == "Close" and dialog.open_button.isVisibleTo(dialog)
    restored = target / wanted.relative_to("/")
    assert restored.read_bytes() == wanted.read_bytes()
    assert [p.name for p in restored.parent.iterdir()] == ["f001.txt"]


def test_a_ticked_folder_restores_everything_in_it(tray_app: TrayApp, qtbot: QtBot,
                                                    service: Service) -> None:
    tray_app.show_restore()
    dialog = tray_app.restore
    assert dialog is not None
    qtbot.waitUntil(lambda: _item(dialog, service.src / "d000") is not None, timeout=WAIT_MS)
    folder = _item(dialog, service.src / "d000")
    assert folder is not None
    folder.setCheckState(0, Qt.CheckState.Checked)
    folder.setExpanded(True)  # children load ticked, like their folder
    child = service.src / "d000" / "f000.txt"
    qtbot.waitUntil(lambda: _item(dialog, child) is not None, timeout=WAIT_MS)
    child_item = _item(dialog, child)
    assert child_item is not None and child_item.checkState(0) == Qt.CheckState.Checked
    assert dialog.includes() == [str(service.src / "d000")]
    child_item.setCheckState(0, Qt.CheckState.Unchecked)  # all but one file
    assert str(service.src / "d000") not in dialog.includes()
    assert str(service.src / "d000" / "f001.txt") in dialog.includes()
    dialog.reject()


@pytest.fixture(scope="module")
def big_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service whose one set holds a 96 MiB file of random bytes: a restore of it
    lasts long enough to be cancelled."""
    base = tmp_path_factory.mktemp("tray-big")
    (base / "src").mkdir()
    (base / "src" / "big.bin").write_bytes(os.urandom(96 * 1024 * 1024))
    with serving(base, "big") as service:
        yield service


def test_cancel_a_restore(qtbot: QtBot, big_service: Service, tmp_path: Path) -> None:
    wanted = big_service.src / "big.bin"
    with running_app(qtbot, big_service.agent.home) as app:
        qtbot.waitUntil(lambda: app.controller.running, timeout=WAIT_MS)
        app.show_restore()
        dialog = app.restore
        assert dialog is not None
        qtbot.waitUntil(lambda: _item(dialog, wanted) is not None, timeout=WAIT_MS)
        item = _item(dialog, wanted)
        assert item is not None
        item.setCheckState(0, Qt.CheckState.Checked)
        target = tmp_path / "restored"
        dialog.target.setText(str(target))
        dialog.start_button.click()
        qtbot.waitUntil(lambda: dialog.cancel_button.text() == "Cancel restore", timeout=WAIT_MS)
        dialog.cancel_button.click()
        qtbot.waitUntil(lambda: dialog.cancel_button.text() == "Close", timeout=WAIT_MS)
        assert dialog.message.text() == ("The restore was cancelled; files already restored "
                                         "were kept.")
        assert not dialog.open_button.isVisibleTo(dialog)
        assert not (target / wanted.relative_to("/")).exists()  # nothing half written
        dialog.cancel_button.click()  # now it closes
        assert not dialog.isVisible()


def test_default_target_is_a_new_folder(tmp_path: Path) -> None:
    first = default_target(tmp_path)
    first.mkdir()
    second = default_target(tmp_path)
    assert first.parent == tmp_path and not second.exists() and second.name.endswith("(2)")


def test_settings_show_refusal_and_save(tray_app: TrayApp, qtbot: QtBot,
                                        service: Service) -> None:
    tray_app.show_settings()
    dialog = tray_app.settings
    assert dialog is not None
    qtbot.waitUntil(lambda: "sets.docs.every" in dialog.fields, timeout=WAIT_MS)
    paths = dialog.fields["sets.docs.paths"].widget
    assert isinstance(paths, PathList) and paths.paths() == [str(service.src)]
    assert dialog.tabs.tabText(1) == "Set: docs" and dialog.changes() == {}
    every = dialog.fields["sets.docs.every"].widget
    assert isinstance(every, QLineEdit) and every.text() == "1h"
    every.setText("soon")
    dialog.save()
    qtbot.waitUntil(lambda: "sets.docs.every" in dialog.message.text(), timeout=WAIT_MS)
    assert dialog.message.text() == ("sets.docs.every the value must be a duration like 10s, "
                                     "15m, 1h or 1h30m, not 'soon'.") and dialog.isVisible()
    with service.agent.client() as client:
        assert client.settings()["sets"]["docs"]["every"] == "1h"  # nothing was written
    every.setText("2h")
    dialog.save()
    qtbot.waitUntil(lambda: dialog.result() == QDialog.DialogCode.Accepted, timeout=WAIT_MS)
    with service.agent.client() as client:
        assert client.settings()["sets"]["docs"]["every"] == "2h"
        client.change_settings({"sets.docs.every": "1h"})
