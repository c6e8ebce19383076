"""Settings: what the API's settings call shows and ``change_settings`` accepts.

Values travel as the strings ``cairn config set`` takes; the service validates
all changes together and refuses with a sentence, which the dialog shows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ui.backend import Backend
from ui.status_window import PROBLEM_STYLE

# (section key, label) pairs shown on the "General" tab, in this order.
GENERAL = (
    ("resources.cpu_present", "Processor share while you use the computer (%)"),
    ("resources.cpu_away", "Processor share while you are away (%)"),
    ("resources.upload_limit_present", "Upload limit while you use the computer (KiB/s, 0 = none)"),
    ("resources.upload_limit_away", "Upload limit while you are away (KiB/s, 0 = none)"),
    ("resources.away_after", "You count as away after no input for"),
    ("resources.battery_min", "Pause on battery below (%, 0 = never)"),
    ("resources.pause_on_metered", "Pause on metered networks"),
    ("service.warn_after", "Warn when a set has not been backed up for"),
)
# (set key, label) pairs shown on each set's tab.
PER_SET = (
    ("paths", "Folders"),
    ("every", "Back up every (e.g. 15m, 1h)"),
    ("windows", "Only between (e.g. 18:00-07:00; empty = any time)"),
    ("verify_at", "Daily full check at (HH:MM; empty = none)"),
    ("exclude", "Leave out (patterns, comma-separated)"),
    ("builtin_excludes", "Leave out caches and temporary files"),
)


def as_text(value: Any) -> str:
    """A setting's value in the form ``change_settings`` takes."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return json.dumps(value)
    return str(value)


class PathList(QWidget):
    """A set's folders: a list with Add folder… and Remove."""

    def __init__(self, paths: list[str]) -> None:
        super().__init__()
        self.list = QListWidget()
        self.list.addItems(paths)
        add = QPushButton("Add folder…", clicked=self._add)
        remove = QPushButton("Remove", clicked=self._remove)
        buttons = QVBoxLayout()
        buttons.addWidget(add)
        buttons.addWidget(remove)
        buttons.addStretch(1)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.list, 1)
        row.addLayout(buttons)

    def paths(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def add(self, path: str) -> None:
        if path and path not in self.paths():
            self.list.addItem(path)

    def _add(self) -> None:
        self.add(QFileDialog.getExistingDirectory(self, "Back up this folder"))

    def _remove(self) -> None:
        for item in self.list.selectedItems():
            self.list.takeItem(self.list.row(item))


@dataclass
class Field:
    """One editable setting: its dotted key, its widget and the value it was loaded with."""

    key: str
    widget: QWidget
    original: str

    def text(self) -> str:
        w = self.widget
        if isinstance(w, QCheckBox):
            return as_text(w.isChecked())
        if isinstance(w, PathList):
            return as_text(w.paths())
        if isinstance(w, QLineEdit) and self.original.startswith("["):
            return as_text([p.strip() for p in w.text().split(",") if p.strip()])
        assert isinstance(w, QLineEdit)
        return w.text().strip()


def editor(value: Any, key: str) -> QWidget:
    """The widget for a setting's current value."""
    if isinstance(value, bool):
        box = QCheckBox()
        box.setChecked(value)
        return box
    if key.endswith(".paths"):
        return PathList(list(value))
    if isinstance(value, list):
        return QLineEdit(", ".join(value))
    return QLineEdit(str(value))


class SettingsDialog(QDialog):
    def __init__(self, backend: Backend, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._backend = backend
        self.fields: dict[str, Field] = {}
        self.setWindowTitle("Cairn settings")
        self.resize(620, 460)
        self.tabs = QTabWidget()
        self.message = QLabel("Reading the settings…")
        self.message.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(False)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        backend.call(lambda c: c.settings(), self.show_settings, self._refused)

    def show_settings(self, doc: dict) -> None:
        """Build the tabs from the settings document the service sent."""
        self.tabs.clear()
        self.fields.clear()
        general = self._form([(key, label, _lookup(doc, key)) for key, label in GENERAL])
        self.tabs.addTab(general, "General")
        for name, body in doc.get("sets", {}).items():
            rows = [(f"sets.{name}.{key}", label, body.get(key)) for key, label in PER_SET]
            tab = self._form(rows)
            tab.layout().insertRow(0, "Backs up to", QLabel(str(body.get("dest") or
                                                            "this computer's archive")))
            self.tabs.addTab(tab, f"Set: {name}")
        self.message.setText("")
        self.message.setStyleSheet("")
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(True)

    def _form(self, rows: list[tuple[str, str, Any]]) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        for key, label, value in rows:
            if value is None:  # an older service without this setting
                continue
            field = Field(key, editor(value, key), as_text(value))
            self.fields[key] = field
            form.addRow(label, field.widget)
        return page

    def changes(self) -> dict[str, str]:
        """The settings the user edited, as the strings the API takes."""
        return {key: f.text() for key, f in self.fields.items() if f.text() != f.original}

    def save(self) -> None:
        """Send the changes; close when the service accepts them, else show its sentence."""
        changes = self.changes()
        if not changes:
            self.accept()
            return
        self.message.setStyleSheet("")
        self.message.setText("Saving…")
        self.buttons.setEnabled(False)
        self._backend.call(lambda c: c.change_settings(changes), self._saved, self._refused)

    def _saved(self, _doc: dict) -> None:
        self.buttons.setEnabled(True)
        self.message.setText("Saved.")
        self.accept()

    def _refused(self, message: str) -> None:
        self.buttons.setEnabled(True)
        self.message.setStyleSheet(PROBLEM_STYLE)
        self.message.setText(message)


def _lookup(doc: dict, key: str) -> Any:
    node: Any = doc
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node
