"""Restore: snapshot → trees → blobs (read, decrypt, verify, decompress) → files.

The calling thread walks the snapshot's trees once, a level at a time (each
level's trees loaded together): it creates directories, symlinks and empty
files, and hands every other file to the ``PackOrderedWriter``, which then
reads each pack once and writes its blobs where they belong (creating the files
as it goes); zero blocks of sparse files stay holes. Directory metadata is
applied last, deepest first, so writing files does not disturb directory
mtimes. A file with damaged data is removed and reported, a folder whose
listing is damaged is reported; everything else is still restored.
"""

from __future__ import annotations

import base64
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from agent.archive.locks import ArchiveLock
from agent.archive.repository import Repository
from agent.engine.file_writer import PackOrderedWriter
from agent.engine.progress import Progress
from agent.errors import (
    CairnError,
    DestinationError,
    IntegrityError,
    Interrupted,
    PathNotInSnapshot,
)
from agent.model.snapshot import Snapshot
from agent.model.tree import decode_name
from agent.scan.walker import path_components

TREES_AT_ONCE = 2000  # folders whose trees a restore loads (and holds) at once


@dataclass(frozen=True)
class RestoreOptions:
    target: Path
    includes: tuple[str, ...] = ()
    workers: int = max(2, os.cpu_count() or 1)
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass
class RestoreResult:
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes: int = 0
    duration_s: float = 0.0
    errors: list[str] = field(default_factory=list)


class _Selection:
    """Which original paths to restore: everything, or the named subtrees."""

    def __init__(self, includes: tuple[str, ...]) -> None:
        self._wanted = [tuple(path_components(Path(p))) for p in includes]

    def wants(self, parts: tuple[str, ...]) -> bool:
        """True if ``parts`` is inside, or on the way to, an included path."""
        if not self._wanted:
            return True
        return any(w[: len(parts)] == parts or parts[: len(w)] == w for w in self._wanted)


def _walk(repo: Repository, tree_id: str, folder: str, select: _Selection,
          damaged: Callable[[str, CairnError], None]) -> Iterator[tuple[str, dict]]:
    """(restore path, node) of the selected part of a tree under ``folder``, a level at a
    time (every folder comes before what it holds); each level's trees are loaded at
    once (``Repository.trees``). A folder whose tree cannot be read goes to
    ``damaged`` and the walk goes on with the others."""
    level: list[tuple[str, str, tuple[str, ...]]] = [(tree_id, folder, ())]
    while level:
        below: list[tuple[str, str, tuple[str, ...]]] = []
        for start in range(0, len(level), TREES_AT_ONCE):  # bounds the trees held decoded
            batch = level[start : start + TREES_AT_ONCE]
            failed: dict[str, IntegrityError] = {}
            trees = repo.trees((tree for tree, _f, _p in batch), failed)
            for tree, folder_path, _parts in batch:
                if tree in failed:
                    damaged(folder_path, failed[tree])
            yield from _walk_batch(batch, trees, select, below)
        level = below


def _walk_batch(batch: list[tuple[str, str, tuple[str, ...]]],
                trees: dict[str, tuple[dict, ...]], select: _Selection,
                below: list[tuple[str, str, tuple[str, ...]]]) -> Iterator[tuple[str, dict]]:
    """The selected nodes of a batch of folders; their subfolders go to ``below``."""
    for tree, folder, parts in batch:
        for node in trees.get(tree, ()):
            name = decode_name(node, "name")
            child = (*parts, name)
            if not select.wants(child):
                continue
            path = os.path.join(folder, name)
            yield path, node
            if node["type"] == "dir" and node.get("subtree"):
                below.append((node["subtree"], path, child))


def run_restore(repo: Repository, snap: Snapshot, options: RestoreOptions,
                progress: Progress | None = None) -> RestoreResult:
    """Restore the selected paths of ``snap`` under ``options.target``.

    Holds a shared lock so a prune cannot remove packs mid-restore; on a
    destination that cannot be written (read-only media) it restores without one.
    """
    lock = ArchiveLock(repo.dest, repo.keys, exclusive=False)
    with contextlib.suppress(DestinationError):
        lock.acquire()
    try:
        return _restore(repo, snap, options, progress or Progress())
    finally:
        lock.release()


def _restore(repo: Repository, snap: Snapshot, options: RestoreOptions,
             progress: Progress) -> RestoreResult:
    """One walk makes the folders and symlinks and plans the files (the totals
    are known when it ends); then the writer restores the files pack by pack."""
    started = time.monotonic()
    repo.sync_index()
    for include in options.includes:
        require_path(repo, snap, include)  # each one is there, before anything is made
    select = _Selection(options.includes)
    progress.phase = "counting"
    result = RestoreResult()
    lock = threading.Lock()

    def file_done(path: str, node: dict, error: str | None, size: int) -> None:
        if error is None:
            _apply_metadata(path, node, follow=True)
        with lock:
            if error is None:
                result.files += 1
                result.bytes += size
            else:
                result.errors.append(f"{path}: {error}")

    writer = PackOrderedWriter(repo, options.workers, progress, options.cancel, file_done)
    dirs: list[tuple[str, dict]] = []
    _make_target(options.target)
    def damaged(folder: str, exc: CairnError) -> None:
        why = str(exc).rstrip(".")
        result.errors.append(f"{folder}: its listing cannot be read ({why[:1].lower()}"
                             f"{why[1:]}); nothing in it was restored")

    blocked: set[str] = set()  # folders not made: nothing below them can be restored
    for path, node in _walk(repo, snap.tree, str(options.target), select, damaged):
        if options.cancel.is_set():
            raise Interrupted("Restore cancelled.")
        if os.path.dirname(path) in blocked:
            if node["type"] == "dir":
                blocked.add(path)
            continue
        if node["type"] == "dir":
            try:
                _make_dir(path)
            except OSError as exc:
                result.errors.append(f"{path}: {_why_not_a_folder(exc)}")
                blocked.add(path)
                continue
            dirs.append((path, node))
            result.dirs += 1
        elif node["type"] == "symlink":
            _make_symlink(path, node, result)
        else:
            progress.files_total += 1
            progress.bytes_total += node.get("size", 0)
            writer.add(path, node)
    progress.totals_known = True
    progress.phase = "restoring"
    writer.run()
    for path, node in reversed(dirs):
        _apply_metadata(path, node, follow=True)
    result.duration_s = time.monotonic() - started
    progress.phase = "done"
    return result


def require_path(repo: Repository, snap: Snapshot, path: str) -> None:
    """Raise ``PathNotInSnapshot`` unless ``snap`` holds the original ``path`` (a
    relative one is taken from the current folder)."""
    tree: str | None = snap.tree
    for part in path_components(Path(path)):
        node = None if tree is None else next(
            (n for n in repo.tree(tree) if decode_name(n, "name") == part), None)
        if node is None:
            raise not_in_snapshot(str(Path(path).absolute()), snap)
        tree = node.get("subtree") if node["type"] == "dir" else None


def not_in_snapshot(path: str, snap: Snapshot) -> PathNotInSnapshot:
    """The error for a path asked for that ``snap`` does not hold."""
    return PathNotInSnapshot(f"{path} is not in snapshot {snap.id[:8]}; "
                             f"`cairn ls {snap.id[:8]}` lists what it holds.")


def _make_target(target: Path) -> None:
    """The folder to restore into, made if missing; a sentence if it cannot be."""
    try:
        target.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise CairnError(f"{target} is a file, not a folder: choose a folder to restore "
                         "into.") from exc
    except OSError as exc:
        raise CairnError(f"Cannot restore into {target}: "
                         f"{exc.strerror or exc}.") from exc


def _make_dir(path: str) -> None:
    """A folder at ``path`` (a symlink there is replaced, never followed)."""
    try:
        os.mkdir(path)
    except FileExistsError:
        if os.path.islink(path):
            os.unlink(path)
            os.mkdir(path)
        elif not os.path.isdir(path):
            raise
    except FileNotFoundError:
        os.makedirs(path, exist_ok=True)


def _why_not_a_folder(exc: OSError) -> str:
    if isinstance(exc, FileExistsError):
        return "something other than a folder is in the way; nothing below it was restored"
    return f"{exc.strerror or exc}; nothing below it was restored"


def _make_symlink(path: str, node: dict, result: RestoreResult) -> None:
    try:
        if os.path.islink(path) or os.path.isfile(path):
            os.unlink(path)
        os.symlink(decode_name(node, "target"), path)
        _apply_metadata(path, node, follow=False)
        result.symlinks += 1
    except OSError as exc:
        result.errors.append(f"{path}: {exc.strerror}")


def _apply_metadata(path: str, node: dict, *, follow: bool) -> None:
    """Owner (when root), permissions, xattrs and mtime; best effort, never fatal."""
    try:
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            os.chown(path, node.get("uid", -1), node.get("gid", -1), follow_symlinks=follow)
        if follow:
            os.chmod(path, node.get("mode", 0o644))
        for name, value in node.get("xattrs", {}).items():
            if hasattr(os, "setxattr"):
                os.setxattr(path, name, base64.b64decode(value), follow_symlinks=follow)
        mtime = node.get("mtime_ns", 0)
        os.utime(path, ns=(mtime, mtime), follow_symlinks=follow)
    except (OSError, NotImplementedError):
        pass
