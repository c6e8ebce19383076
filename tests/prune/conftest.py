"""Fixtures of the prune tests: archives with backup histories made at chosen times."""

from __future__ import annotations

import fnmatch
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.archive.repository import Repository
from agent.dest.local import LocalDestination
from agent.engine.backup import BackupOptions, run_backup
from agent.engine.check import run_check
from agent.engine.restore import RestoreOptions, run_restore
from agent.model.snapshot import Snapshot

PASSPHRASE = "prune tests passphrase"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def files_under(folder: Path, excludes: tuple[str, ...] = ()) -> dict[str, bytes]:
    """Relative path -> content of every file below ``folder`` (names matching excludes out)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not any(fnmatch.fnmatch(path.name, g) for g in excludes):
            found[path.relative_to(folder).as_posix()] = path.read_bytes()
    return found


def listing(root: Path) -> dict[str, tuple[int, str]]:
    """Every file below ``root``: relative path -> (size, SHA-256)."""
    return {p.relative_to(root).as_posix(): (p.stat().st_size,
                                             hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file()}


@dataclass
class History:
    """A source folder and an archive; remembers what each snapshot saw."""

    root: Path
    repo: Repository
    src: Path
    states: dict[str, dict[str, bytes]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # label -> snapshot id

    @property
    def dest(self) -> Path:
        return self.root / "archive"

    @property
    def cache(self) -> Path:
        return self.root / "home" / "cache"

    def write(self, changes: dict[str, bytes | str | None]) -> None:
        """Create, change (content) or delete (None) files below the source folder."""
        for rel, content in changes.items():
            path = self.src / rel
            if content is None:
                if path.is_dir():
                    for child in sorted(path.rglob("*"), reverse=True):
                        child.unlink() if child.is_file() else child.rmdir()
                    path.rmdir()
                else:
                    path.unlink()
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content.encode() if isinstance(content, str) else content)

    def backup(self, label: str, when: datetime, excludes: tuple[str, ...] = (),
               host: str = "laptop", src: Path | None = None) -> Snapshot:
        src = src or self.src
        options = BackupOptions(paths=(src,), host=host, device=host, excludes=excludes,
                                snapshot_time=when, workers=2)
        snap = run_backup(self.repo, options).snapshot
        self.states[snap.id] = files_under(src, excludes)
        self.labels[label] = snap.id
        return snap

    def restored(self, snap: Snapshot, src: Path | None = None) -> dict[str, bytes]:
        target = self.root / "restore" / snap.id
        result = run_restore(self.repo, snap, RestoreOptions(target=target, workers=2))
        assert not result.errors
        return files_under(target / (src or self.src).relative_to((src or self.src).anchor))

    def reopen(self, dest: object | None = None, cache: Path | None = None) -> Repository:
        """Another handle on the same archive (another destination wrapper or device cache)."""
        return Repository(dest or LocalDestination(self.dest), self.repo.keys, cache or self.cache)

    def check(self) -> None:
        repo = self.reopen(cache=self.root / "check-cache")
        try:
            report = run_check(repo, read_data=True)
        finally:
            repo.close()
        assert report.ok, (report.errors, report.damaged_packs, report.affected_files)

    def snapshot_ids(self) -> set[str]:
        return set(os.listdir(self.dest / "snapshots"))


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    src = tmp_path / "src"
    src.mkdir()
    repo = Repository.create(LocalDestination(tmp_path / "archive"), PASSPHRASE,
                             tmp_path / "home" / "cache")
    h = History(tmp_path, repo, src)
    yield h
    h.repo.close()
