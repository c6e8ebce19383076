"""Restore files: pick a set, a snapshot, tick files and folders, choose where they go.

Folders are listed lazily, as they are expanded, through the API's browse call;
the restore runs in the service as a task whose progress the dialog polls.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from agent.api import schemas as s
from ui import text
from ui.backend import Backend

PATH_ROLE = Qt.ItemDataRole.UserRole
LOADED_ROLE = Qt.ItemDataRole.UserRole + 1
POLL_MS = 500


def default_target(home: Path, now: datetime | None = None) -> Path:
    """A folder that does not exist yet in the user's home: ``Cairn restore 2027-03-10 14.05``."""
    base = home / f"Cairn restore {(now or datetime.now()):%Y-%m-%d %H.%M}"
    target, n = base, 2
    while target.exists():
        target, n = base.with_name(f"{base.name} ({n})"), n + 1
    return target


def holds_files(folder: Path) -> bool:
    try:
        return any(folder.iterdir())
    except OSError:
        return False


class RestoreDialog(QDialog):
    def __init__(self, backend: Backend, set_names: list[str], parent: QWidget | None = None,
                 home: Path | None = None) -> None:
        super().__init__(parent)
        self._backend = backend
        self._generation = 0  # bumped when the set or snapshot changes; stale replies drop
        self._task: s.Task | None = None
        self._polling = False
        self._syncing = False
        self.setWindowTitle("Restore files")
        self.resize(640, 560)
        self.sets, self.snapshots = QComboBox(), QComboBox()
        self.sets.addItems(set_names)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Name", "Size", "Modified"])
        self.tree.setColumnWidth(0, 320)
        self.target = QLineEdit(str(default_target(home or Path.home())))
        self.bar, self.message = QProgressBar(), QLabel()
        self.message.setWordWrap(True)
        self.start_button = QPushButton("Restore", clicked=self.start)
        self.cancel_button = QPushButton("Close", clicked=self._cancel_or_close)
        self.open_button = QPushButton("Open folder", clicked=self._open_target)
        self._layout()
        self.sets.currentTextChanged.connect(self._load_snapshots)
        self.snapshots.currentIndexChanged.connect(self._load_root)
        self.tree.itemExpanded.connect(self._expanded)
        self.tree.itemChanged.connect(self._ticked)
        self._poll = QTimer(self, interval=POLL_MS, timeout=self._poll_task)
        self._load_snapshots(self.sets.currentText())

    def _layout(self) -> None:
        choose = QPushButton("Choose…", clicked=self._choose_target)
        target_row = QHBoxLayout()
        target_row.addWidget(self.target, 1)
        target_row.addWidget(choose)
        form = QFormLayout()
        form.addRow("Backup set", self.sets)
        form.addRow("Backed up at", self.snapshots)
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addStretch(1)
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel("Tick the files and folders to restore:"))
        layout.addWidget(self.tree, 1)
        restore_to = QFormLayout()
        restore_to.addRow("Restore into", target_row)
        layout.addLayout(restore_to)
        layout.addWidget(self.bar)
        layout.addWidget(self.message)
        layout.addLayout(buttons)
        self.bar.hide()
        self.open_button.hide()
        self._update_buttons()

    # --- snapshots and folders --------------------------------------------------------

    def _load_snapshots(self, set_name: str) -> None:
        self._generation += 1
        gen = self._generation
        self.snapshots.clear()
        self.tree.clear()
        if not set_name:
            return
        self.message.setText("Reading the list of backups…")
        self._backend.call(lambda c: c.snapshots(set_name),
                           lambda snaps: self._show_snapshots(gen, snaps), self._failed)

    def _show_snapshots(self, gen: int, snaps: list[s.SnapshotInfo]) -> None:
        if gen != self._generation:
            return
        self.message.setText("" if snaps else "This set has no backups yet.")
        self.snapshots.blockSignals(True)
        for snap in snaps:  # the API lists them newest first
            label = (f"{text.local_time(snap.time)}  ({snap.files_total} files, "
                     f"{text.size(snap.bytes_total)})")
            self.snapshots.addItem(label, snap.id)
        self.snapshots.blockSignals(False)
        self._load_root()

    def _load_root(self) -> None:
        self._generation += 1
        self.tree.clear()
        self._update_buttons()
        if self.snapshots.currentData() is not None:
            self._browse(None, "/")

    def _browse(self, parent: QTreeWidgetItem | None, path: str) -> None:
        gen, set_name = self._generation, self.sets.currentText()
        snap = self.snapshots.currentData()
        self._backend.call(lambda c: c.browse(set_name, snap, path),
                           lambda entries: self._show_folder(gen, parent, entries), self._failed)

    def _show_folder(self, gen: int, parent: QTreeWidgetItem | None,
                     entries: list[s.TreeEntry]) -> None:
        if gen != self._generation:
            return
        self._syncing = True
        if parent is not None:
            parent.takeChildren()
            parent.setData(0, LOADED_ROLE, True)
        tick = parent.checkState(0) if parent is not None else Qt.CheckState.Unchecked
        items = [self._item(entry, tick) for entry in entries]
        if parent is None:
            self.tree.addTopLevelItems(items)
        else:
            parent.addChildren(items)
        self._syncing = False
        lone = len(items) == 1 and entries[0].type == "dir"
        if lone and (parent is None or parent.isExpanded()):
            items[0].setExpanded(True)  # walk down /home/ann/... to where the files are

    def _item(self, entry: s.TreeEntry, tick: Qt.CheckState) -> QTreeWidgetItem:
        modified = (datetime.fromtimestamp(entry.mtime_ns / 1e9).strftime("%Y-%m-%d %H:%M")
                    if entry.mtime_ns else "")
        size = "" if entry.type == "dir" else text.size(entry.size)
        item = QTreeWidgetItem([entry.name, size, modified])
        item.setData(0, PATH_ROLE, entry.path)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(0, tick)
        if entry.type == "dir":
            item.setData(0, LOADED_ROLE, False)
            item.addChild(QTreeWidgetItem(["Loading…"]))
        return item

    def _expanded(self, item: QTreeWidgetItem) -> None:
        if item.data(0, LOADED_ROLE) is False:
            self._browse(item, item.data(0, PATH_ROLE))

    # --- ticks --------------------------------------------------------------------------

    def _ticked(self, item: QTreeWidgetItem, column: int) -> None:
        if self._syncing or column != 0:
            return
        self._syncing = True
        state = item.checkState(0)
        self._tick_below(item, state)
        parent = item.parent()
        while state == Qt.CheckState.Unchecked and parent is not None:
            parent.setCheckState(0, Qt.CheckState.Unchecked)  # no longer "all of it"
            parent = parent.parent()
        self._syncing = False
        self._update_buttons()

    def _tick_below(self, item: QTreeWidgetItem, state: Qt.CheckState) -> None:
        for i in range(item.childCount()):
            child = item.child(i)
            if child.data(0, PATH_ROLE):
                child.setCheckState(0, state)
                self._tick_below(child, state)

    def includes(self) -> list[str]:
        """The ticked paths; a ticked folder stands for everything in it."""
        out: list[str] = []
        pending = deque(self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount()))
        while pending:
            item = pending.popleft()
            if not item.data(0, PATH_ROLE):
                continue
            if item.checkState(0) == Qt.CheckState.Checked:
                out.append(item.data(0, PATH_ROLE))
            else:
                pending.extend(item.child(i) for i in range(item.childCount()))
        return out

    # --- the restore task ---------------------------------------------------------------

    def _choose_target(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Restore into", self.target.text())
        if folder:
            self.target.setText(folder)

    def start(self) -> None:
        """Start restoring the ticked paths, after confirming a folder that holds files."""
        target = Path(self.target.text().strip()).expanduser()
        includes, snap = self.includes(), self.snapshots.currentData()
        if not target.is_absolute():
            self.message.setText("Choose a full folder path to restore into.")
            return
        if holds_files(target) and QMessageBox.question(
                self, "Restore into a folder that holds files?",
                f"{target} already holds files. Restored files with the same paths would "
                "replace them. Restore there anyway?") != QMessageBox.StandardButton.Yes:
            return
        set_name = self.sets.currentText()
        self.message.setText("Starting the restore…")
        self.start_button.setEnabled(False)
        self._backend.call(lambda c: c.restore(set_name, snap, str(target), includes),
                           self._started, self._start_refused)

    def _started(self, task: s.Task) -> None:
        self._task = task
        self.bar.setRange(0, 0)
        self.bar.show()
        self.cancel_button.setText("Cancel restore")
        self._poll.start()
        self._show_task(task)

    def _start_refused(self, message: str) -> None:
        self.message.setText(message)
        self._update_buttons()

    def _poll_task(self) -> None:
        if self._task is None or self._polling:
            return
        self._polling = True
        task_id = self._task.id
        self._backend.call(lambda c: c.task(task_id), self._show_task, self._poll_failed)

    def _poll_failed(self, message: str) -> None:
        self._polling = False
        self.message.setText(message)

    def _show_task(self, task: s.Task) -> None:
        self._polling = False
        self._task = task
        pct = text.percent(task.progress)
        if task.status not in s.TASK_FINAL:
            self.bar.setRange(0, 0 if pct is None else 100)
            self.bar.setValue(pct or 0)
            doing = "Cancelling…" if task.status == s.TASK_CANCELLING else "Restoring…"
            self.message.setText(f"{doing} {text.progress(task.progress)}")
            return
        self._poll.stop()
        self.bar.setRange(0, 100)
        self.bar.setValue(100 if task.status == s.TASK_SUCCESS else 0)
        self.message.setText(self.outcome(task))
        self.open_button.setVisible(task.status == s.TASK_SUCCESS)
        self.cancel_button.setText("Close")
        self._update_buttons()

    @staticmethod
    def outcome(task: s.Task) -> str:
        """How a finished restore task ended, as sentences."""
        if task.status == s.TASK_CANCELLED:
            return "The restore was cancelled; files already restored were kept."
        if task.status == s.TASK_FAILED:
            return f"The restore failed: {task.error or 'see the service log'}"
        r = task.result
        line = (f"Restored {r.get('files', 0)} file(s) ({text.size(r.get('bytes', 0))}) "
                f"into {r.get('target', '')}.")
        if r.get("errors"):
            line += f" {r['errors']} could not be restored: " + "; ".join(task.log[-3:])
        return line

    def _cancel_or_close(self) -> None:
        if self._task is not None and self._task.status == s.TASK_RUNNING:
            task_id = self._task.id
            self.message.setText("Cancelling…")
            self._backend.call(lambda c: c.cancel_task(task_id), self._show_task, self._failed)
        else:
            self.reject()

    def _open_target(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(self.target.text()))

    def _failed(self, message: str) -> None:
        self.message.setText(message)

    def _update_buttons(self) -> None:
        busy = self._task is not None and self._task.status not in s.TASK_FINAL
        ready = self.snapshots.currentData() is not None and bool(self.includes())
        self.start_button.setEnabled(ready and not busy)
