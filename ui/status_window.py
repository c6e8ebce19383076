"""The status window ("Open Cairn"): every backup set's last, next and current run."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from agent.api import schemas as s
from ui import icons, text
from ui.controller import Controller
from ui.summary import attention, sentence
from ui.tray import PAUSE_CHOICES

PROBLEM_STYLE = "color: #b3261e;"
RUNNING_STATES = (s.BACKING_UP, s.SCANNING)


def run_sentence(run: s.RunSummary | None) -> str:
    """How the last run ended, in words."""
    if run is None:
        return "No backup has run yet."
    when = text.when(run.finished or run.started)
    if run.result in ("success", "partial"):
        changed = run.files_new + run.files_changed
        line = (f"Finished {when}: {run.files_total} files, {changed} new or changed, "
                f"{text.size(run.bytes_stored)} stored.")
        if run.skipped_count:
            line += f" {run.skipped_count} file(s) could not be read: {', '.join(run.skipped[:3])}"
        return line
    if run.result == "failed":
        return sentence(f"Failed {when}: {run.error or 'see the service log'}")
    return f"Stopped {when} ({run.result})."


class SetPanel(QGroupBox):
    """One backup set: where from and to, last and next backup, the run in progress."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        form = QFormLayout(self)
        self.paths, self.destination = QLabel(), QLabel()
        self.last, self.next, self.now = QLabel(), QLabel(), QLabel()
        self.bar, self.progress = QProgressBar(), QLabel()
        self.last_run, self.problems = QLabel(), QLabel()
        self.problems.setStyleSheet(PROBLEM_STYLE)
        for label in (self.paths, self.progress, self.last_run, self.problems, self.now):
            label.setWordWrap(True)
        for caption, widget in (("Backs up", self.paths), ("To", self.destination),
                                ("Last backup", self.last), ("Next backup", self.next),
                                ("Now", self.now), ("", self.bar), ("", self.progress),
                                ("Last run", self.last_run), ("Problems", self.problems)):
            form.addRow(caption, widget)
        self._form = form

    def show_set(self, st: s.SetStatus) -> None:
        self.paths.setText("\n".join(st.paths) or "(no folders)")
        self.destination.setText(f"{st.destination} ({st.destination_type})")
        self.last.setText(text.when(st.last_completed, never="not yet"))
        self.next.setText(text.when(st.next_scheduled, never="not scheduled"))
        self.now.setText(sentence(f"{st.state}: {st.why}" if st.why else st.state))
        running = st.state in RUNNING_STATES and st.progress is not None
        pct = text.percent(st.progress) if running else None
        self.bar.setRange(0, 0 if pct is None else 100)  # a busy bar until totals are known
        self.bar.setValue(pct or 0)
        self.progress.setText(text.progress(st.progress) if running and st.progress else "")
        for widget in (self.bar, self.progress):
            self._form.setRowVisible(widget, running)
        self.last_run.setText(run_sentence(st.last_run))
        problems = [sentence(w) for w in st.warnings]
        if st.state in (s.ERROR, s.WAITING_FOR_DESTINATION, s.NOT_REGISTERED) and st.why:
            problems.insert(0, sentence(st.why))
        self.problems.setText("\n".join(problems))
        self._form.setRowVisible(self.problems, bool(problems))


class StatusWindow(QWidget):
    """Follows the ``Controller``; with a tray icon, closing the window only hides it."""

    open_restore = Signal()
    open_settings = Signal()

    def __init__(self, controller: Controller, hide_on_close: bool = True) -> None:
        super().__init__()
        self._controller, self._hide_on_close = controller, hide_on_close
        self.setWindowTitle("Cairn backup")
        self.resize(560, 480)
        self.icon, self.headline, self.detail = QLabel(), QLabel(), QLabel()
        self.headline.setStyleSheet("font-size: 16pt; font-weight: bold;")
        self.problems, self.notice = QLabel(), QLabel()
        self.problems.setStyleSheet(PROBLEM_STYLE)
        for label in (self.detail, self.problems, self.notice):
            label.setWordWrap(True)
        self.panels: dict[str, SetPanel] = {}
        self._sets = QVBoxLayout()
        layout = QVBoxLayout(self)
        layout.addLayout(self._header())
        layout.addWidget(self.problems)
        layout.addLayout(self._sets)
        layout.addStretch(1)
        layout.addWidget(self.notice)
        layout.addLayout(self._buttons())
        controller.changed.connect(self.refresh)
        controller.notice.connect(self.notice.setText)
        self._clock = QTimer(self, interval=30_000, timeout=self.refresh)  # "5 min ago" ages
        self._clock.start()
        self.refresh()

    def _header(self) -> QHBoxLayout:
        words = QVBoxLayout()
        words.addWidget(self.headline)
        words.addWidget(self.detail)
        row = QHBoxLayout()
        row.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        row.addLayout(words, 1)
        return row

    def _buttons(self) -> QHBoxLayout:
        c = self._controller
        self.backup_button = QPushButton("Back up now", clicked=lambda: c.backup_now())
        self.pause_button = QToolButton(text="Pause")
        self.pause_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        for label, seconds in PAUSE_CHOICES:
            self.pause_button.addAction(label).triggered.connect(
                lambda _checked=False, secs=seconds: c.pause(secs))
        self.resume_button = QPushButton("Resume", clicked=lambda: c.resume())
        self.restore_button = QPushButton("Restore files…", clicked=self.open_restore.emit)
        self.settings_button = QPushButton("Settings…", clicked=self.open_settings.emit)
        row = QHBoxLayout()
        for button in (self.backup_button, self.pause_button, self.resume_button,
                       self.restore_button, self.settings_button):
            row.addWidget(button)
        return row

    def refresh(self) -> None:
        summary, status = self._controller.summary, self._controller.status
        self.icon.setPixmap(icons.pixmap(summary.state, summary.percent).scaled(
            48, 48, Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation))
        self.headline.setText(summary.headline)
        self.detail.setText(summary.detail)
        problems = attention(status) if status else []
        self.problems.setText("\n".join(problems))
        self.problems.setVisible(bool(problems))
        self._show_sets(status.sets if status else [])
        running, paused = status is not None, self._controller.paused
        self.backup_button.setEnabled(running and not paused)
        self.pause_button.setVisible(not paused)
        self.pause_button.setEnabled(running)
        self.resume_button.setVisible(paused)
        self.restore_button.setEnabled(running)
        self.settings_button.setEnabled(running)

    def _show_sets(self, sets: list[s.SetStatus]) -> None:
        if [st.name for st in sets] != list(self.panels):
            for panel in self.panels.values():
                panel.deleteLater()
            self.panels = {st.name: SetPanel(st.name) for st in sets}
            for panel in self.panels.values():
                self._sets.addWidget(panel)
        for st in sets:
            self.panels[st.name].show_set(st)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._hide_on_close:
            event.ignore()
            self.hide()
        else:
            event.accept()
