"""The tray icon and its menu: the state at a glance and the everyday actions."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from ui import icons
from ui.controller import Controller

PAUSE_CHOICES = (("For 1 hour", 3600.0), ("For 8 hours", 8 * 3600.0), ("Until I resume", None))


class Tray(QObject):
    """``QSystemTrayIcon`` whose icon, tooltip and menu follow the ``Controller``."""

    open_status = Signal()
    open_restore = Signal()
    open_settings = Signal()
    quit_requested = Signal()

    def __init__(self, controller: Controller) -> None:
        super().__init__()
        self._controller = controller
        self.menu = QMenu()
        self.status_line = self._action("", None)
        self.status_line.setEnabled(False)
        self.menu.addSeparator()
        self.backup_action = self._action("Back up now", controller.backup_now)
        self.pause_menu = self.menu.addMenu("Pause backups")
        for label, seconds in PAUSE_CHOICES:
            self.pause_menu.addAction(label).triggered.connect(
                lambda _checked=False, secs=seconds: controller.pause(secs))
        self.resume_action = self._action("Resume backups", controller.resume)
        self.menu.addSeparator()
        self.restore_action = self._action("Restore files…", self.open_restore.emit)
        self._action("Open Cairn", self.open_status.emit)
        self.settings_action = self._action("Settings…", self.open_settings.emit)
        self.menu.addSeparator()
        self._action("Quit tray (backups continue)", self.quit_requested.emit)
        self.icon = QSystemTrayIcon()
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._activated)
        controller.changed.connect(self.refresh)
        controller.notice.connect(self._notify)
        self.refresh()

    def show(self) -> None:
        self.icon.show()

    def hide(self) -> None:
        self.icon.hide()

    def refresh(self) -> None:
        """Icon, tooltip and menu for the controller's current summary."""
        summary = self._controller.summary
        self.icon.setIcon(icons.icon(summary.state, summary.percent))
        self.icon.setToolTip(summary.tooltip)
        self.status_line.setText(summary.headline)
        running, paused = self._controller.running, self._controller.paused
        self.backup_action.setEnabled(running and not paused)
        self.pause_menu.menuAction().setVisible(not paused)
        self.pause_menu.setEnabled(running)
        self.resume_action.setVisible(paused)
        self.restore_action.setEnabled(running)
        self.settings_action.setEnabled(running)

    def _action(self, label: str, slot: Callable[[], object] | None) -> QAction:
        action = self.menu.addAction(label)
        if slot is not None:
            action.triggered.connect(lambda _checked=False: slot())
        return action

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger,
                      QSystemTrayIcon.ActivationReason.DoubleClick):
            self.open_status.emit()

    def _notify(self, message: str) -> None:
        if self.icon.isVisible() and QSystemTrayIcon.supportsMessages():
            self.icon.showMessage("Cairn", message, QSystemTrayIcon.MessageIcon.Information, 5000)
