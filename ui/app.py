"""``cairn-tray``: wire the backend, the controller, the tray icon and the windows.

Without a system tray (some Linux desktops) the status window is the app, and
closing it quits; with one, windows only hide and "Quit tray" quits. Quitting
never stops the backup service.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import signal
import sys
from pathlib import Path
from types import TracebackType

from PySide6.QtWidgets import QApplication, QDialog, QSystemTrayIcon

from agent.api.endpoint import default_home
from ui.backend import Backend, Monitor
from ui.controller import Controller
from ui.restore_dialog import RestoreDialog
from ui.settings_dialog import SettingsDialog
from ui.status_window import StatusWindow
from ui.tray import Tray

log = logging.getLogger("cairn.tray")


class TrayApp:
    """Everything the tray app shows, for the service of one agent home."""

    def __init__(self, home: Path, use_tray: bool, wait_s: int = 10,
                 retry_s: float = 2.0) -> None:
        self.backend = Backend(home)
        self.controller = Controller(self.backend,
                                     Monitor(self.backend.connect_client, wait_s, retry_s))
        self.window = StatusWindow(self.controller, hide_on_close=use_tray)
        self.window.open_restore.connect(self.show_restore)
        self.window.open_settings.connect(self.show_settings)
        self.restore: RestoreDialog | None = None
        self.settings: SettingsDialog | None = None
        self.tray: Tray | None = None
        if use_tray:
            self.tray = Tray(self.controller)
            self.tray.open_status.connect(self.show_status)
            self.tray.open_restore.connect(self.show_restore)
            self.tray.open_settings.connect(self.show_settings)
            self.tray.quit_requested.connect(self.quit)

    def start(self) -> None:
        """Show the tray icon (or the window) and start following the service."""
        if self.tray is not None:
            self.tray.show()
        else:
            self.window.show()
        self.controller.start()

    def show_status(self) -> None:
        _raise(self.window)

    def show_restore(self) -> None:
        if self.restore is None or not self.restore.isVisible():
            status = self.controller.status
            names = [st.name for st in status.sets] if status else []
            self.restore = RestoreDialog(self.backend, names)
        _raise(self.restore)

    def show_settings(self) -> None:
        if self.settings is None or not self.settings.isVisible():
            self.settings = SettingsDialog(self.backend)
        _raise(self.settings)

    def quit(self) -> None:
        if self.tray is not None:
            self.tray.hide()
        QApplication.quit()

    def shutdown(self) -> None:
        """Stop the background work; the service keeps running."""
        for dialog in (self.restore, self.settings):
            if dialog is not None:
                dialog.close()
        self.controller.shutdown()


def _raise(widget: StatusWindow | QDialog) -> None:
    widget.show()
    widget.raise_()
    widget.activateWindow()


def setup_logging(home: Path) -> None:
    """Log to ``<home>/logs/tray.log`` when it can be written, else to stderr."""
    handler: logging.Handler = logging.StreamHandler()
    logs = home / "logs"
    if logs.is_dir() and os.access(logs, os.W_OK):
        handler = logging.handlers.RotatingFileHandler(logs / "tray.log", maxBytes=1_000_000,
                                                       backupCount=2, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        log.error("Unexpected error in the tray app.", exc_info=(kind, exc, tb))

    sys.excepthook = hook


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cairn-tray", description="Cairn's tray app.")
    parser.add_argument("--system", action="store_true",
                        help="follow the system-wide service instead of your own")
    args = parser.parse_args(argv)
    home = default_home(os.environ, args.system)
    setup_logging(home)
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends it; Qt's loop would not
    app = QApplication(sys.argv[:1])
    app.setApplicationName("Cairn")
    use_tray = QSystemTrayIcon.isSystemTrayAvailable()
    app.setQuitOnLastWindowClosed(not use_tray)
    tray_app = TrayApp(home, use_tray)
    app.aboutToQuit.connect(tray_app.shutdown)
    tray_app.start()
    log.info("Tray app started for %s (%s).", home, "tray" if use_tray else "window only")
    return app.exec()
