"""Walks backup sources and compares them with the parent snapshot.

With a change journal (``dirty``: paths the watcher saw change), folders with
no change in or below them are taken from the parent snapshot without being
listed; otherwise every folder is listed and every entry stat-ed.

The walker emits one ``DirTask`` per directory in post-order (children before
their parent). Each task holds the directory's nodes; files whose size, mtime,
ctime or inode differ from the parent snapshot are handed to ``read_file`` (the
pipeline reads them later) and the task records what it waits for. Unchanged
files reuse the parent's node, content IDs included, without being opened.

Backed-up paths are recorded with their full original path: backing up
``/home/ann/Documents`` gives a root tree holding ``home`` → ``ann`` →
``Documents``. On Windows the drive letter is the first component.
"""

from __future__ import annotations

import base64
import fnmatch
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from agent.model.tree import decode_name, encode_name


@dataclass
class DirTask:
    """A directory whose tree can be built once its pending reads finish."""

    path: str
    node: dict | None  # the dir's own node in its parent; None for the root
    nodes: list[dict] = field(default_factory=list)
    waits: list = field(default_factory=list)  # batch handles of changed files
    old_tree: str | None = None  # the same folder's tree in the parent snapshot


@dataclass
class ScanCounts:
    files_total: int = 0
    files_new: int = 0
    files_changed: int = 0
    files_unchanged: int = 0
    dirs: int = 0
    bytes_total: int = 0


TreeLoader = Callable[[str], Iterable[dict]]
PREFETCH_THREADS = 8
PREFETCH_AHEAD = 64


def stat_node(name: str, st: os.stat_result) -> dict:
    """A tree node's metadata from an lstat result."""
    if stat.S_ISDIR(st.st_mode):
        kind = "dir"
    elif stat.S_ISLNK(st.st_mode):
        kind = "symlink"
    else:
        kind = "file"
    node = {"type": kind, "mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
            "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "inode": st.st_ino,
            "size": st.st_size if kind == "file" else 0}
    encode_name(node, "name", name)
    return node


def _read_xattrs(path: str, node: dict) -> None:
    if not hasattr(os, "listxattr"):
        return
    try:
        names = os.listxattr(path, follow_symlinks=False)
        if names:
            node["xattrs"] = {n: base64.b64encode(os.getxattr(path, n, follow_symlinks=False))
                              .decode() for n in names}
    except OSError:
        pass  # Not supported here, or vanished: metadata only.


def _unchanged(old: dict | None, st: os.stat_result) -> bool:
    return (old is not None and old.get("type") == "file" and "content" in old
            and old.get("size") == st.st_size and old.get("mtime_ns") == st.st_mtime_ns
            and old.get("ctime_ns") == st.st_ctime_ns and old.get("inode") == st.st_ino)


class Walker:
    """Depth-first, post-order walk; not thread-safe (runs in one thread)."""

    def __init__(self, load_tree: TreeLoader, read_file: Callable[[str, dict, DirTask], None],
                 emit: Callable[[DirTask], None], *, excludes: Iterable[str] = (),
                 skip_paths: Iterable[Path] = (), on_error: Callable[[str], None],
                 dirty: Iterable[str] | None = None) -> None:
        self._load_tree, self._read_file, self._emit = load_tree, read_file, emit
        self._dirty, self._dirty_ancestors = _dirty_sets(dirty)
        self._excludes = list(excludes)
        self._skip = {os.path.normcase(os.path.abspath(p)) for p in skip_paths}
        self._on_error = on_error
        self._lister = _Lister(load_tree)
        self.counts = ScanCounts()

    def walk(self, paths: list[Path], parent_tree: str | None) -> None:
        """Walk every source path; emits the root DirTask last."""
        try:
            self._walk(paths, parent_tree)
        finally:
            self._lister.close()

    def _walk(self, paths: list[Path], parent_tree: str | None) -> None:
        prefix: dict = {}
        for p in paths:
            node = prefix
            for part in path_components(p):
                node = node.setdefault(part, {})
            node[None] = True  # marks a backed-up path
        root = DirTask(path="", node=None)
        old = self._old_nodes(parent_tree)
        for name, sub in sorted(prefix.items()):
            self._visit_prefix(_anchor_path(name), name, sub, old.get(name), root)
        self._emit(root)

    def _old_nodes(self, tree_id: str | None) -> dict[str, dict]:
        if not tree_id:
            return {}
        return {decode_name(n, "name"): n for n in self._load_tree(tree_id)}

    def _visit_prefix(self, path: str, name: str, sub: dict, old: dict | None,
                      parent: DirTask) -> None:
        if None in sub:
            self._visit(path, name, old, parent)
            return
        try:
            st = os.lstat(path)
        except OSError as exc:
            self._on_error(f"{path}: {exc.strerror}")
            return
        node = stat_node(name, st)
        task = DirTask(path=path, node=node)
        old_children = self._old_nodes(old.get("subtree") if old else None)
        for child, child_sub in sorted(sub.items()):
            self._visit_prefix(os.path.join(path, child), child, child_sub,
                               old_children.get(child), task)
        self._finish_dir(task, parent)

    def _visit(self, path: str, name: str, old: dict | None, parent: DirTask,
               st: os.stat_result | None = None) -> None:
        if self._excluded(path, name):
            return
        if st is None:
            try:
                st = os.lstat(path)
            except OSError as exc:
                self._on_error(f"{path}: {exc.strerror}")
                return
        if stat.S_ISDIR(st.st_mode):
            self._walk_dir(path, stat_node(name, st), old, parent)
        elif stat.S_ISREG(st.st_mode):
            self._visit_file(path, name, st, old, parent)
        elif stat.S_ISLNK(st.st_mode):
            self._visit_symlink(path, name, st, parent)
        # Sockets, FIFOs and devices are not backed up.

    def _visit_file(self, path: str, name: str, st: os.stat_result, old: dict | None,
                    parent: DirTask) -> None:
        counts = self.counts
        counts.files_total += 1
        counts.bytes_total += st.st_size
        if _unchanged(old, st):
            counts.files_unchanged += 1
            parent.nodes.append(old)
            return
        if old is None:
            counts.files_new += 1
        else:
            counts.files_changed += 1
        node = stat_node(name, st)
        if getattr(st, "st_blocks", None) is not None and st.st_blocks * 512 < st.st_size:
            node["sparse"] = True
        _read_xattrs(path, node)
        parent.nodes.append(node)
        self._read_file(path, node, parent)

    def _visit_symlink(self, path: str, name: str, st: os.stat_result, parent: DirTask) -> None:
        try:
            target = os.readlink(path)
        except OSError as exc:
            self._on_error(f"{path}: {exc.strerror}")
            return
        node = stat_node(name, st)
        encode_name(node, "target", target)
        parent.nodes.append(node)

    def _walk_dir(self, path: str, node: dict, old: dict | None, parent: DirTask) -> None:
        if os.path.normcase(path) in self._skip:
            return
        if self._clean(path, old):
            self._reuse_subtree(old, parent)
            return
        self.counts.dirs += 1
        old_tree = old.get("subtree") if old and old["type"] == "dir" else None
        if old_tree and old.get("ctime_ns") == node["ctime_ns"]:
            if "xattrs" in old:
                node["xattrs"] = old["xattrs"]
        else:
            _read_xattrs(path, node)
        task = DirTask(path=path, node=node, old_tree=old_tree)
        old_children = self._old_nodes(old_tree)
        listing = self._lister.take(path)
        if isinstance(listing, OSError):
            self._on_error(f"{path}: {listing.strerror}")
            listing = []
        subdirs = [(os.path.join(path, name), old_children.get(name)) for name, st in listing
                   if isinstance(st, os.stat_result) and stat.S_ISDIR(st.st_mode)]
        ahead = seen = 0
        for name, st in listing:
            child = os.path.join(path, name)
            if isinstance(st, OSError):
                self._on_error(f"{child}: {st.strerror}")
                continue
            if stat.S_ISDIR(st.st_mode):
                while ahead < len(subdirs) and ahead < seen + PREFETCH_AHEAD:
                    self._lister.prefetch(*subdirs[ahead])
                    ahead += 1
                seen += 1
            self._visit(child, name, old_children.get(name), task, st)
        self._finish_dir(task, parent)

    def _clean(self, path: str, old: dict | None) -> bool:
        """With a change journal: no change reported in or below ``path``."""
        if self._dirty is None or old is None or old.get("type") != "dir":
            return False
        if not old.get("subtree") or path in self._dirty_ancestors:
            return False
        return not any(p in self._dirty for p in _self_and_ancestors(path))

    def _reuse_subtree(self, old: dict, parent: DirTask) -> None:
        """Take a directory from the parent snapshot unread; count what it holds."""
        parent.nodes.append(old)
        counts, stack = self.counts, [old["subtree"]]
        while stack:
            counts.dirs += 1
            for node in self._load_tree(stack.pop()):
                if node["type"] == "dir":
                    stack.append(node["subtree"])
                elif node["type"] == "file":
                    counts.files_total += 1
                    counts.files_unchanged += 1
                    counts.bytes_total += node.get("size", 0)

    def _finish_dir(self, task: DirTask, parent: DirTask) -> None:
        parent.nodes.append(task.node)
        self._emit(task)

    def _excluded(self, path: str, name: str) -> bool:
        return any(fnmatch.fnmatch(name, pat) or fnmatch.fnmatch(path, pat)
                   for pat in self._excludes)


class _Lister:
    """Lists and stats folders ahead of the walker on a few threads.

    Directory reads and lstat calls release the GIL, so on a cold cache several
    folders' metadata load at once; the parent snapshot's matching trees are
    loaded alongside.
    """

    def __init__(self, load_tree: TreeLoader) -> None:
        self._load_tree = load_tree
        self._pool = ThreadPoolExecutor(PREFETCH_THREADS, thread_name_prefix="scan")
        self._pending: dict[str, Future] = {}

    def prefetch(self, path: str, old: dict | None) -> None:
        if path not in self._pending:
            self._pending[path] = self._pool.submit(_list_dir, path)
            if old is not None and old.get("type") == "dir" and old.get("subtree"):
                self._pool.submit(self._load_tree, old["subtree"])

    def take(self, path: str) -> list[tuple[str, os.stat_result | OSError]] | OSError:
        future = self._pending.pop(path, None)
        return future.result() if future is not None else _list_dir(path)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _list_dir(path: str) -> list[tuple[str, os.stat_result | OSError]] | OSError:
    """Sorted (name, lstat result or error) of a folder, or the error listing it."""
    try:
        with os.scandir(path) as it:
            names = sorted(entry.name for entry in it)
    except OSError as exc:
        return exc
    listing: list[tuple[str, os.stat_result | OSError]] = []
    for name in names:
        try:
            listing.append((name, os.lstat(os.path.join(path, name))))
        except OSError as exc:
            listing.append((name, exc))
    return listing


def _self_and_ancestors(path: str) -> Iterator[str]:
    while True:
        yield path
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


def _dirty_sets(dirty: Iterable[str] | None) -> tuple[set[str] | None, set[str]]:
    """The changed paths, and every folder above one of them."""
    if dirty is None:
        return None, set()
    paths = {os.path.abspath(p) for p in dirty}
    ancestors = {a for p in paths for a in _self_and_ancestors(os.path.dirname(p))}
    return paths, ancestors


def path_components(path: Path) -> list[str]:
    parts = list(path.absolute().parts)
    anchor = parts.pop(0)
    if os.name == "nt":
        return [anchor.rstrip("\\/:") or anchor, *parts]
    return parts


def _anchor_path(first: str) -> str:
    return f"{first}:\\" if os.name == "nt" else os.sep + first
