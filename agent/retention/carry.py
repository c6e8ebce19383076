"""Deleted-files retention: a carry tree keeps the last version of deleted files.

When prune forgets a snapshot, the files that were deleted from the source (or
newly excluded) right after it would lose their last version. Before forgetting
it, prune compares the snapshot with the next one of its set: every path the
next one lacks (or has as another kind, folder versus not) is *deleted*, at the
next snapshot's time, and its last version goes into the set's **carry tree**
(docs/format.md, "Carry snapshots"). In a carry tree:

- a node with a ``deleted`` key (ISO time) is a *carried item*: the path as it
  was last backed up, with everything below it, deleted at that time;
- a folder node without ``deleted`` is a *container* that only leads to items.

An existing carry tree is merged in as it is. When the same path comes from
several sources the one deleted last wins; two folders are merged, so files
removed before their folder are kept too. Items deleted before a cutoff are
dropped. A carried item stays even if the path exists again later: it is the
version that was deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from agent.errors import IntegrityError
from agent.model.tree import decode_name, encode_tree

TreeLoader = Callable[[str], Sequence[dict]]
BlobIdOf = Callable[[bytes], bytes]
DELETED = "deleted"
Path = tuple[str, ...]
_EARLIEST = datetime.min.replace(tzinfo=UTC)


def _is_dir(node: dict) -> bool:
    return node["type"] == "dir"


def _stamp(node: dict) -> datetime | None:
    value = node.get(DELETED)
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise IntegrityError(f"A carry tree has an invalid deleted time {value!r}.") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass
class _Item:
    node: dict
    stamp: datetime


@dataclass
class _Folder:
    node: dict | None  # metadata (no subtree); None for the root
    children: dict[str, _Item | _Folder] = field(default_factory=dict)


@dataclass
class CarryTree:
    """A built carry tree: its root, the tree blobs to store, and what it holds."""

    root: str
    trees: dict[str, bytes]  # hex ID -> plaintext, for every tree blob built here
    items: int
    oldest: datetime
    newest: datetime


class CarryBuilder:
    """Collects deleted paths of one set from forgotten snapshots and old carry trees."""

    def __init__(self, load_tree: TreeLoader) -> None:
        self._load = load_tree
        self._root = _Folder(None)

    def add_deletions(self, before: str, after: str, deleted: datetime) -> None:
        """Paths of tree ``before`` that tree ``after`` (the next snapshot's) lacks."""
        stack: list[tuple[Path, str, str | None, tuple[dict, ...]]] = [((), before, after, ())]
        while stack:
            path, old_id, new_id, ancestors = stack.pop()
            if old_id == new_id:
                continue  # the same folder: nothing deleted below
            now = {decode_name(n, "name"): n for n in self._load(new_id)} if new_id else {}
            for node in self._load(old_id):
                name = decode_name(node, "name")
                child, other = (*path, name), now.get(name)
                if other is None or _is_dir(other) != _is_dir(node):
                    self._add(child, node, deleted, ancestors)
                elif _is_dir(node) and node.get("subtree"):
                    stack.append((child, node["subtree"], other.get("subtree"),
                                  (*ancestors, node)))

    def add_carry(self, root: str) -> None:
        """An existing carry tree (its items carry their own deleted times)."""
        stack: list[tuple[Path, str, tuple[dict, ...]]] = [((), root, ())]
        while stack:
            path, tree_id, ancestors = stack.pop()
            for node in self._load(tree_id):
                child = (*path, decode_name(node, "name"))
                stamp = _stamp(node)
                if stamp is not None:
                    self._add(child, node, stamp, ancestors)
                elif _is_dir(node) and node.get("subtree"):
                    stack.append((child, node["subtree"], (*ancestors, node)))

    def _add(self, path: Path, node: dict, stamp: datetime, ancestors: tuple[dict, ...]) -> None:
        folder = self._root
        for depth, name in enumerate(path[:-1]):
            entry = folder.children.get(name)
            if isinstance(entry, _Item):
                if _is_dir(entry.node):
                    entry = self._expand(entry)
                elif stamp > entry.stamp:  # a file then, a folder later: the later wins
                    entry = _Folder(_meta(ancestors[depth]))
                else:
                    return
                folder.children[name] = entry
            elif entry is None:
                entry = folder.children[name] = _Folder(_meta(ancestors[depth]))
            folder = entry
        self._merge(folder, path[-1], node, stamp)

    def _merge(self, folder: _Folder, name: str, node: dict, stamp: datetime) -> None:
        old = folder.children.get(name)
        if old is None:
            folder.children[name] = _Item(node, stamp)
            return
        both_dirs = _is_dir(node) and (isinstance(old, _Folder) or _is_dir(old.node))
        if not both_dirs:
            if stamp > _newest(old):
                folder.children[name] = _Item(node, stamp)
            return
        if isinstance(old, _Item):
            if old.node.get("subtree") == node.get("subtree"):
                if stamp > old.stamp:
                    folder.children[name] = _Item(node, stamp)
                return
            old = folder.children[name] = self._expand(old)
        for child in self._children(node):
            self._merge(old, decode_name(child, "name"), child, stamp)

    def _expand(self, item: _Item) -> _Folder:
        folder = _Folder(_meta(item.node))
        for child in self._children(item.node):
            folder.children[decode_name(child, "name")] = _Item(child, item.stamp)
        return folder

    def _children(self, node: dict) -> Sequence[dict]:
        subtree = node.get("subtree")
        return self._load(subtree) if subtree else ()

    def build(self, cutoff: datetime | None, blob_id: BlobIdOf) -> CarryTree | None:
        """The carry tree without items deleted before ``cutoff``; None when it is empty."""
        trees: dict[str, bytes] = {}
        stamps: list[datetime] = []
        root = _emit(self._root, cutoff, blob_id, trees, stamps)
        if root is None:
            return None
        return CarryTree(root, trees, len(stamps), min(stamps), max(stamps))


def _meta(node: dict) -> dict:
    return {k: v for k, v in node.items() if k not in ("subtree", DELETED)}


def _newest(entry: _Item | _Folder) -> datetime:
    if isinstance(entry, _Item):
        return entry.stamp
    return max((_newest(child) for child in entry.children.values()), default=_EARLIEST)


def _emit(folder: _Folder, cutoff: datetime | None, blob_id: BlobIdOf,
          trees: dict[str, bytes], stamps: list[datetime]) -> str | None:
    nodes = []
    for entry in folder.children.values():
        if isinstance(entry, _Item):
            if cutoff is not None and entry.stamp < cutoff:
                continue
            nodes.append({**entry.node, DELETED: entry.stamp.isoformat(timespec="microseconds")})
            stamps.append(entry.stamp)
            continue
        subtree = _emit(entry, cutoff, blob_id, trees, stamps)
        if subtree is not None:
            nodes.append({**(entry.node or {}), "subtree": subtree})
    if not nodes:
        return None
    plain = encode_tree(nodes)
    tree_id = blob_id(plain).hex()
    trees[tree_id] = plain
    return tree_id
