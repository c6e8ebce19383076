"""Walks backup sources and compares them with what the archive already has.

For each folder the walker lists its entries (names + lstat, read ahead by
``agent.scan.crawler``) and decides:

- **clean** — the folder cache (``agent.scan.dircache``) has the same listing
  fingerprint and every subfolder is clean too: its tree ID is reused as is,
  without loading or rebuilding the tree;
- **journal-clean** — with a change journal (``dirty``: paths the watcher saw
  change), a folder with no change in or below it is taken from the previous
  tree without even being listed;
- otherwise it emits a ``DirTask`` (post-order: children before parents) with
  the folder's nodes. Files whose size, mtime, ctime or inode differ from the
  previous tree are handed to ``read_file``; unchanged files reuse the previous
  node, content IDs included, without being opened.

Backed-up paths are recorded with their full original path: backing up
``/home/ann/Documents`` gives a root tree holding ``home`` → ``ann`` →
``Documents``. On Windows the drive letter is the first component.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent.errors import IntegrityError
from agent.model.tree import decode_name, encode_name
from agent.scan.crawler import PROCESSES_WHILE_READING, SUBTREE_ENTRIES, Crawler, adopt_early
from agent.scan.dircache import DirCache
from agent.scan.listing import Entry, entry_names, fingerprint, subfolder_names

log = logging.getLogger("cairn.walker")

@dataclass
class DirTask:
    """A directory whose tree can be built once its pending reads finish."""

    path: str
    node: dict | None  # the dir's own node in its parent; None for the root
    nodes: list[dict] = field(default_factory=list)
    waits: list = field(default_factory=list)  # batch handles of changed files
    old_tree: str | None = None  # the folder's previous tree, if any
    fingerprint: bytes | None = None  # set when the listing was complete


@dataclass
class ScanCounts:
    files_total: int = 0
    files_new: int = 0
    files_changed: int = 0
    files_unchanged: int = 0
    dirs: int = 0
    dirs_listed: int = 0  # folders actually read from disk (the rest were reused)
    bytes_total: int = 0


TreeLoader = Callable[[str], Iterable[dict]]


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


def _unchanged(old: dict | None, st: os.stat_result) -> bool:
    return (old is not None and old.get("type") == "file" and "content" in old
            and old.get("size") == st.st_size and old.get("mtime_ns") == st.st_mtime_ns
            and old.get("ctime_ns") == st.st_ctime_ns and old.get("inode") == st.st_ino)


class _OldTree:
    """A folder's previous nodes by name, loaded only when first needed.

    ``tree_id`` may come from the folder cache, i.e. from the newest run; if that
    run's snapshot was forgotten and pruned since, the archive no longer holds it
    (``known``), and ``fallback`` gives the parent snapshot's tree instead.
    """

    __slots__ = ("_fallback", "_known", "_load", "_nodes", "tree_id")

    def __init__(self, load: TreeLoader, tree_id: str | None,
                 known: Callable[[str], bool] | None = None,
                 fallback: Callable[[], str | None] | None = None) -> None:
        self._load, self.tree_id, self._nodes = load, tree_id, None
        self._known, self._fallback = known, fallback

    def get(self, name: str) -> dict | None:
        if self._nodes is None:
            self._nodes = {decode_name(n, "name"): n for n in self._loaded()}
        return self._nodes.get(name)

    def _loaded(self) -> Iterable[dict]:
        tree_id = self.tree_id
        if tree_id and self._fallback is not None and self._known is not None \
                and not self._known(tree_id):
            tree_id = self._fallback()
        try:
            return self._load(tree_id) if tree_id else ()
        except IntegrityError as exc:  # the new snapshot must not depend on it
            log.warning("The previous listing of a folder cannot be read (%s); its "
                        "files are read again.", exc)
            return ()


class Walker:
    """Depth-first, post-order walk; not thread-safe (runs in one thread)."""

    def __init__(self, load_tree: TreeLoader, read_file: Callable[[str, dict, DirTask], None],
                 emit: Callable[[DirTask], None], *, excludes: Iterable[str] = (),
                 skip_paths: Iterable[Path] = (), on_error: Callable[[str], None],
                 dirty: Iterable[str] | None = None, dircache: DirCache | None = None,
                 tree_known: Callable[[str], bool] = lambda tree_id: False,
                 exclude_if_present: Iterable[str] = ()) -> None:
        self._load_tree, self._read_file, self._emit = load_tree, read_file, emit
        self._dirty, self._dirty_ancestors = _dirty_sets(dirty)
        self._excludes = list(excludes)
        self._skip = {os.path.normcase(os.path.abspath(p)) for p in skip_paths}
        self._on_error = on_error
        self._dircache, self._tree_known = dircache, tree_known
        self._exclude_if_present = frozenset(exclude_if_present)
        self._crawler: Crawler  # set by walk()
        self.counts = ScanCounts()

    def walk(self, paths: list[Path], parent_tree: str | None) -> None:
        """Walk every source path; emits the root DirTask last."""
        roots = [str(p) for p in paths]
        # With a change journal most subfolders are skipped: lister processes list
        # only the folders asked for.
        subtree = 0 if self._dirty is not None else SUBTREE_ENTRIES
        self._crawler = (adopt_early(roots, self._crawl_children, subtree_entries=subtree)
                         or Crawler(self._crawl_children))
        try:
            prefix: dict = {}
            for p in paths:
                node = prefix
                for part in path_components(p):
                    node = node.setdefault(part, {})
                node[None] = True  # marks a backed-up path
            if self._dircache:
                self._dircache.load(roots)
            if None in prefix:  # "/" itself: its listing is the root tree (it holds the rest)
                self._walk_dir(os.sep, None, parent_tree, None)
                return
            root = DirTask(path="", node=None)
            old = _OldTree(self._load_tree, parent_tree)
            for name, sub in sorted(prefix.items()):
                self._visit_prefix(_anchor_path(name), name, sub, old, root)
            self._emit(root)
        finally:
            self._crawler.close()

    def retire_listers(self) -> None:
        """End all but one of the crawl's lister processes (call once the backup starts
        worker processes to read many new files: they need the cores)."""
        self._crawler.retire_processes(keep=PROCESSES_WHILE_READING)

    def _visit_prefix(self, path: str, name: str, sub: dict, old: _OldTree,
                      parent: DirTask) -> None:
        if None in sub:
            self._visit(path, name, None, old, parent)
            return
        try:
            # A folder on the way to a backed-up path, followed if it is a symlink (macOS's
            # /tmp and /var, a /home linked elsewhere): it is recorded as the folder it
            # leads to, since the backed-up paths below it are reached through it.
            st = os.stat(path)
        except OSError as exc:
            self._on_error(f"{path}: {exc.strerror}")
            return
        if not stat.S_ISDIR(st.st_mode):
            self._on_error(f"{path}: not a folder")
            return
        task = DirTask(path=path, node=stat_node(name, st))
        children = _OldTree(self._load_tree, self._old_tree_id(path, old, name),
                            self._tree_known, lambda: _subtree(old.get(name)))
        for child, child_sub in sorted(sub.items()):
            self._visit_prefix(_join(path, child), child, child_sub, children, task)
        self._finish_dir(task, parent)

    def _visit(self, path: str, name: str, st: os.stat_result | None, old: _OldTree,
               parent: DirTask) -> bool:
        """Visit one entry; True if it is a folder found clean (reused whole)."""
        if st is None:
            try:
                st = os.lstat(path)
            except OSError as exc:
                self._on_error(f"{path}: {exc.strerror}")
                return False
        mode = st.st_mode
        if stat.S_ISREG(mode):
            self._visit_file(path, name, st, old.get(name), parent)
        elif stat.S_ISDIR(mode):
            return self._walk_dir(path, stat_node(name, st), self._old_tree_id(path, old, name),
                                  parent, lambda: _subtree(old.get(name)))
        elif stat.S_ISLNK(mode):
            self._visit_symlink(path, name, st, parent)
        return False  # sockets, FIFOs and devices are not backed up

    def _old_tree_id(self, path: str, old: _OldTree, name: str) -> str | None:
        """The folder's previous tree: the folder cache's (the newest run's), else the
        parent snapshot's (its tree is loaded only then)."""
        cached = self._dircache.get(path) if self._dircache else None
        if cached is not None:
            return cached[1]
        return _subtree(old.get(name))

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

    def _walk_dir(self, path: str, node: dict | None, old_tree: str | None,
                  parent: DirTask | None,
                  parent_snapshot_tree: Callable[[], str | None] | None = None) -> bool:
        """Walk a folder; True if it was found clean (reused whole). With no ``node`` and
        no ``parent`` it is the file system's root, emitted as the snapshot's root tree.
        ``old_tree`` is the folder's previous tree (``_old_tree_id``), and
        ``parent_snapshot_tree`` gives the parent snapshot's, for when the archive no
        longer holds the former."""
        if os.path.normcase(path) in self._skip:
            self._crawler.forget(path)
            return False
        if parent is not None and node is not None and self._journal_clean(path, old_tree) \
                and self._tree_known(old_tree):  # type: ignore[arg-type]
            self._crawler.forget(path)
            self._reuse_subtree(node, old_tree, parent)
            return True
        listing, complete = self._listing(path)
        if self._exclude_if_present and any(n in self._exclude_if_present for n, _ in listing):
            for name, _st in listing:
                self._crawler.forget(_join(path, name))
            return True  # e.g. CACHEDIR.TAG: the folder is left out entirely
        fp = fingerprint(listing) if complete else None
        cached = self._dircache.get(path) if self._dircache and fp else None
        task = DirTask(path=path, node=node, old_tree=old_tree, fingerprint=fp)
        old = _OldTree(self._load_tree, old_tree, self._tree_known, parent_snapshot_tree)
        all_clean = True
        for name, st in listing:
            if stat.S_ISDIR(st.st_mode):
                all_clean &= self._visit(_join(path, name), name, st, old, task)
        if all_clean and cached is not None and cached[0] == fp and self._tree_known(cached[1]) \
                and parent is not None and node is not None:
            self._count_clean(listing)
            node["subtree"] = cached[1]
            parent.nodes.append(node)
            return True
        self.counts.dirs += 1
        for name, st in listing:
            if not stat.S_ISDIR(st.st_mode):
                self._visit(_join(path, name), name, st, old, task)
        if parent is None:
            self._emit(task)
        else:
            self._finish_dir(task, parent)
        return False

    def _crawl_children(self, path: str, raw: Sequence[Entry]) -> list[tuple[str, str]]:
        """The subfolders of a listed folder that the walk will list too (crawled ahead)."""
        if self._exclude_if_present and not self._exclude_if_present.isdisjoint(
                entry_names(raw)):
            return []
        picked = []
        for name in subfolder_names(raw):
            child = _join(path, name)
            if not (self._left_out(child, name) or self._journal_clean(child, "old")):
                picked.append((name, child))
        return picked

    def _listing(self, path: str) -> tuple[list[tuple[str, os.stat_result]], bool]:
        """The folder's entries minus excluded ones; False if some could not be read."""
        raw = self._crawler.take(path)
        self.counts.dirs_listed += 1
        if isinstance(raw, OSError):
            self._on_error(f"{path}: {raw.strerror}")
            return [], False
        listing, complete = [], True
        for name, st in raw:
            child = _join(path, name)
            if isinstance(st, OSError):
                self._on_error(f"{child}: {st.strerror}")
                complete = False
            elif self._left_out(child, name):
                self._crawler.forget(child)
            else:
                listing.append((name, st))
        return listing, complete

    def _left_out(self, path: str, name: str) -> bool:
        """Excluded by a pattern, or a path never backed up (the archive, the agent home)."""
        return bool(self._excludes and self._excluded(path, name)) or (
            os.path.normcase(path) in self._skip)

    def _count_clean(self, listing: list[tuple[str, os.stat_result]]) -> None:
        counts = self.counts
        counts.dirs += 1
        for _name, st in listing:
            if stat.S_ISREG(st.st_mode):
                counts.files_total += 1
                counts.files_unchanged += 1
                counts.bytes_total += st.st_size

    def _journal_clean(self, path: str, old_tree: str | None) -> bool:
        """With a change journal: no change reported in or below ``path``."""
        if self._dirty is None or not old_tree or path in self._dirty_ancestors:
            return False
        return not any(p in self._dirty for p in _self_and_ancestors(path))

    def _reuse_subtree(self, node: dict, tree_id: str, parent: DirTask) -> None:
        """Take a directory's previous tree unread; count what it holds."""
        node["subtree"] = tree_id
        parent.nodes.append(node)
        files, size, dirs = tree_totals(tree_id, self._load_tree, self._dircache)
        counts = self.counts
        counts.files_total += files
        counts.files_unchanged += files
        counts.bytes_total += size
        counts.dirs += dirs

    def _finish_dir(self, task: DirTask, parent: DirTask) -> None:
        parent.nodes.append(task.node)
        self._emit(task)

    def _excluded(self, path: str, name: str) -> bool:
        return any(fnmatch.fnmatch(name, pat) or fnmatch.fnmatch(path, pat)
                   for pat in self._excludes)


def tree_totals(tree_id: str, load_tree: TreeLoader,
                cache: DirCache | None) -> tuple[int, int, int]:
    """(files, bytes, folders) below a tree; memoized by tree ID in the folder cache."""
    known = cache.totals(tree_id) if cache else None
    if known is not None:
        return known
    files = size = 0
    dirs = 1
    for child in load_tree(tree_id):
        if child["type"] == "dir" and child.get("subtree"):
            sub = tree_totals(child["subtree"], load_tree, cache)
            files, size, dirs = files + sub[0], size + sub[1], dirs + sub[2]
        elif child["type"] == "file":
            files, size = files + 1, size + child.get("size", 0)
    if cache:
        cache.record_totals(tree_id, (files, size, dirs))
    return files, size, dirs


def _subtree(node: dict | None) -> str | None:
    return node.get("subtree") if node and node.get("type") == "dir" else None


def _join(folder: str, name: str) -> str:
    """``os.path.join`` for a folder path and a plain entry name, without its overhead."""
    return folder + name if folder.endswith(os.sep) else folder + os.sep + name


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


def source_path(raw: str | os.PathLike) -> Path:
    """A path to back up, as the snapshot records it: absolute, ``~`` expanded, and
    ``.`` and ``..`` resolved by name (``docs/sub/..`` is ``docs``; links are not
    followed, as ``cd`` in a shell does not)."""
    return Path(os.path.normpath(Path(raw).expanduser().absolute()))


def path_components(path: Path) -> list[str]:
    """A path's components from the root, with a Windows drive letter as the first
    (``.`` and ``..`` resolved by name: a tree never holds them)."""
    parts = list(Path(os.path.normpath(path.absolute())).parts)
    anchor = parts.pop(0)
    if os.name == "nt":
        return [anchor.rstrip("\\/:") or anchor, *parts]
    return parts


def _anchor_path(first: str) -> str:
    return f"{first}:\\" if os.name == "nt" else os.sep + first
