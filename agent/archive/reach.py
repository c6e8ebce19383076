"""Reachability: the tree and data blobs a snapshot's root tree leads to."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from agent.archive.known_ids import KnownIds
from agent.errors import CairnError

TreeLoader = Callable[[str], Sequence[dict]]


def reachable(load_tree: TreeLoader, roots: Iterable[str],
              into: set[bytes] | None = None) -> set[bytes]:
    """IDs of every tree and data blob below ``roots`` (added to ``into`` when given).

    A tree already in ``into`` is not read again, so repeated calls stay cheap."""
    found: set[bytes] = set() if into is None else into
    stack = [root for root in roots]
    while stack:
        tree_id = stack.pop()
        raw = bytes.fromhex(tree_id)
        if raw in found:
            continue
        found.add(raw)
        for node in load_tree(tree_id):
            if node["type"] == "dir" and node.get("subtree"):
                stack.append(node["subtree"])
            found.update(bytes.fromhex(h) for h in node.get("content", ()))
    return found


def count_missing(load_tree: TreeLoader, known: KnownIds, root: str) -> int:
    """How many blobs below ``root`` are not in ``known`` (0: the snapshot is complete)."""
    missing, seen = 0, set()
    stack = [root]
    while stack:
        tree_id = stack.pop()
        raw = bytes.fromhex(tree_id)
        if raw in seen:
            continue
        seen.add(raw)
        if raw not in known:
            missing += 1
            continue
        try:
            nodes = load_tree(tree_id)
        except CairnError:
            missing += 1
            continue
        for node in nodes:
            if node["type"] == "dir" and node.get("subtree"):
                stack.append(node["subtree"])
            for blob_hex in node.get("content", ()):
                blob_id = bytes.fromhex(blob_hex)
                if blob_id not in seen:
                    seen.add(blob_id)
                    missing += blob_id not in known
    return missing
