"""The carry tree (deleted-files retention), built from declared trees in memory."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from agent.model.tree import decode_tree, encode_tree
from agent.retention.carry import CarryBuilder

T0 = datetime(2027, 1, 1, tzinfo=UTC)


def t(days: int) -> datetime:
    return T0 + timedelta(days=days)


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class Trees:
    """Tree blobs declared as nested dicts: a str value is a file's content."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.contents: dict[str, str] = {}
        self.loads = 0

    def put(self, spec: dict, mode: int = 0o755) -> str:
        nodes = []
        for name, value in spec.items():
            if isinstance(value, dict):
                nodes.append({"name": name, "type": "dir", "mode": mode, "mtime_ns": 7,
                              "subtree": self.put(value, mode)})
            else:
                blob = sha(value.encode()).hex()
                self.contents[blob] = value
                nodes.append({"name": name, "type": "file", "mode": 0o644, "mtime_ns": 7,
                              "size": len(value), "content": [blob]})
        plain = encode_tree(nodes)
        tree_id = sha(plain).hex()
        self.blobs[tree_id] = plain
        return tree_id

    def load(self, tree_id: str) -> list[dict]:
        self.loads += 1
        return decode_tree(self.blobs[tree_id])

    def carried(self, root: str) -> dict[str, tuple[str, str]]:
        """path -> (file content, deleted time) of every file in a carry tree."""
        found: dict[str, tuple[str, str]] = {}
        stack: list[tuple[str, str, str | None]] = [(root, "", None)]
        while stack:
            tree_id, prefix, stamp = stack.pop()
            for node in decode_tree(self.blobs[tree_id]):
                path, node_stamp = f"{prefix}/{node['name']}", node.get("deleted", stamp)
                if node["type"] == "dir":
                    stack.append((node["subtree"], path, node_stamp))
                else:
                    assert node_stamp is not None, f"{path} is carried without a deleted time"
                    found[path] = (self.contents[node["content"][0]], node_stamp)
        return found


def carry(trees: Trees, history: list[tuple[str, datetime]], forget: set[int],
          old_carries: tuple[str, ...] = (), cutoff: datetime | None = None):
    """Build a carry tree as prune does: ``history`` = (root, time) oldest first; the
    snapshots at the indexes in ``forget`` are forgotten."""
    builder = CarryBuilder(trees.load)
    for i in sorted(forget):
        builder.add_deletions(history[i][0], history[i + 1][0], history[i + 1][1])
    for root in old_carries:
        builder.add_carry(root)
    result = builder.build(cutoff, sha)
    if result is not None:
        trees.blobs.update(result.trees)
    return result


def iso(when: datetime) -> str:
    return when.isoformat(timespec="microseconds")


def test_a_deleted_file_is_carried_with_the_time_it_went_missing() -> None:
    trees = Trees()
    s1 = trees.put({"home": {"a.txt": "A", "keep.txt": "K"}})
    s2 = trees.put({"home": {"keep.txt": "K"}})
    result = carry(trees, [(s1, t(1)), (s2, t(2))], forget={0})
    assert trees.carried(result.root) == {"/home/a.txt": ("A", iso(t(2)))}
    assert (result.items, result.oldest, result.newest) == (1, t(2), t(2))


def test_changed_files_are_versions_not_deletions() -> None:
    trees = Trees()
    s1 = trees.put({"home": {"a.txt": "old version"}})
    s2 = trees.put({"home": {"a.txt": "new version"}})
    assert carry(trees, [(s1, t(1)), (s2, t(2))], forget={0}) is None


def test_folders_equal_in_both_snapshots_are_not_read() -> None:
    trees = Trees()
    big = {f"f{i}": str(i) for i in range(50)}
    s1 = trees.put({"home": {"big": {"deep": big}, "gone.txt": "G"}})
    s2 = trees.put({"home": {"big": {"deep": big}}})
    trees.loads = 0
    CarryBuilder(trees.load).add_deletions(s1, s2, t(2))
    assert trees.loads == 4  # the two roots and the two home/ folders; big/ is the same


def test_the_last_version_before_the_deletion_is_carried() -> None:
    trees = Trees()
    v1 = trees.put({"doc.txt": "version 1", "k": "K"})
    v2 = trees.put({"doc.txt": "version 2", "k": "K"})
    gone = trees.put({"k": "K"})
    result = carry(trees, [(v1, t(1)), (v2, t(2)), (gone, t(3))], forget={0, 1})
    assert trees.carried(result.root) == {"/doc.txt": ("version 2", iso(t(3)))}


def test_a_newly_excluded_file_is_carried_though_an_older_version_is_kept() -> None:
    trees = Trees()
    kept_old = trees.put({"secret.log": "L1", "k": "K"})
    last = trees.put({"secret.log": "L2", "k": "K"})
    excluded = trees.put({"k": "K"})
    result = carry(trees, [(kept_old, t(1)), (last, t(2)), (excluded, t(3))], forget={1})
    assert trees.carried(result.root) == {"/secret.log": ("L2", iso(t(3)))}


def test_the_newest_deletion_of_a_path_wins() -> None:
    trees = Trees()
    a = trees.put({"tmp": "first", "k": "K"})
    b = trees.put({"k": "K"})
    c = trees.put({"tmp": "second", "k": "K"})
    d = trees.put({"k": "K"})
    result = carry(trees, [(a, t(1)), (b, t(2)), (c, t(3)), (d, t(4))], forget={0, 2})
    assert trees.carried(result.root) == {"/tmp": ("second", iso(t(4)))}


def test_files_removed_before_their_folder_are_carried_too() -> None:
    trees = Trees()
    s1 = trees.put({"d": {"x": "X1", "y": "Y"}})
    s2 = trees.put({"d": {"x": "X2"}})
    s3 = trees.put({"e": "E"})
    result = carry(trees, [(s1, t(1)), (s2, t(2)), (s3, t(3))], forget={0, 1})
    assert trees.carried(result.root) == {"/d/x": ("X2", iso(t(3))), "/d/y": ("Y", iso(t(2)))}


def test_intermediate_folders_keep_their_metadata() -> None:
    trees = Trees()
    s1 = trees.put({"home": {"ann": {"a.txt": "A"}}}, mode=0o700)
    s2 = trees.put({"home": {"ann": {}}}, mode=0o700)
    result = carry(trees, [(s1, t(1)), (s2, t(2))], forget={0})
    (home,) = decode_tree(trees.blobs[result.root])
    assert home["mode"] == 0o700 and "deleted" not in home
    (ann,) = decode_tree(trees.blobs[home["subtree"]])
    assert ann["mode"] == 0o700 and "deleted" not in ann


def test_a_file_replaced_by_a_folder_is_carried() -> None:
    trees = Trees()
    s1 = trees.put({"p": "a file"})
    s2 = trees.put({"p": {"now": "a folder"}})
    result = carry(trees, [(s1, t(1)), (s2, t(2))], forget={0})
    assert trees.carried(result.root) == {"/p": ("a file", iso(t(2)))}


def test_an_old_carry_merges_with_new_deletions() -> None:
    trees = Trees()
    k = trees.put({"k": "K"})
    first = carry(trees, [(trees.put({"k": "K", "b.txt": "B"}), t(1)), (k, t(2))], forget={0})
    result = carry(trees, [(trees.put({"k": "K", "c.txt": "C"}), t(4)), (k, t(5))], forget={0},
                   old_carries=(first.root,))
    assert trees.carried(result.root) == {"/b.txt": ("B", iso(t(2))), "/c.txt": ("C", iso(t(5)))}


def test_a_carried_version_stays_when_the_path_comes_back() -> None:
    trees = Trees()
    first = carry(trees, [(trees.put({"d": {"x": "X", "y": "Y"}}), t(1)),
                          (trees.put({"k": "K"}), t(2))], forget={0})
    back = trees.put({"d": {"x": "X, recreated"}})
    result = carry(trees, [(back, t(5))], forget=set(), old_carries=(first.root,))
    assert result.root == first.root
    assert trees.carried(result.root) == {"/d/x": ("X", iso(t(2))), "/d/y": ("Y", iso(t(2)))}


def test_items_deleted_before_the_cutoff_expire() -> None:
    trees = Trees()
    history = [(trees.put({"old.txt": "O", "k": "K"}), t(1)), (trees.put({"k": "K"}), t(2)),
               (trees.put({"new.txt": "N", "k": "K"}), t(9)), (trees.put({"k": "K"}), t(10))]
    result = carry(trees, history, forget={0, 2}, cutoff=t(5))
    assert trees.carried(result.root) == {"/new.txt": ("N", iso(t(10)))}
    assert carry(trees, history, forget={0, 2}, cutoff=t(11)) is None


def test_the_same_inputs_give_the_same_carry_tree() -> None:
    trees = Trees()
    k = trees.put({"k": "K"})
    a = carry(trees, [(trees.put({"k": "K", "a": "A"}), t(1)), (k, t(2))], forget={0})
    b = carry(trees, [(trees.put({"k": "K", "b": {"c": "C"}}), t(3)), (k, t(4))], forget={0})
    one = carry(trees, [], forget=set(), old_carries=(a.root, b.root))
    two = carry(trees, [], forget=set(), old_carries=(b.root, a.root))
    assert one.root == two.root
    assert trees.carried(one.root) == {"/a": ("A", iso(t(2))), "/b/c": ("C", iso(t(4)))}
