"""Tree blobs: deterministic round trip, raw byte names, and hostile trees refused."""

from __future__ import annotations

import base64
import json
import os
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.errors import CairnError, IntegrityError
from agent.model.tree import decode_name, decode_tree, encode_name, encode_tree, node_name_bytes
from tests.agent.strategies import props

# Any byte string a POSIX directory entry can hold: no "/", no NUL, not "." or "..".
fs_names = st.binary(min_size=1, max_size=40).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b".."))


def node(name: str, kind: str = "file", **extra: object) -> dict:
    n = {"type": kind, "mode": 0o644, "mtime_ns": 1, "size": 0, **extra}
    encode_name(n, "name", name)
    return n


@props
@given(names=st.lists(fs_names, min_size=0, max_size=20, unique=True),
       targets=st.lists(fs_names, min_size=20, max_size=20), shuffle=st.randoms())
def test_round_trip_with_raw_byte_names(names: list[bytes], targets: list[bytes],
                                        shuffle: random.Random) -> None:
    nodes = []
    for i, raw in enumerate(names):
        n = node(os.fsdecode(raw), "symlink" if i % 3 == 0 else "file", content=[])
        if n["type"] == "symlink":
            encode_name(n, "target", os.fsdecode(targets[i]))
        nodes.append(n)
    plain = encode_tree(list(nodes))
    decoded = decode_tree(plain)
    assert [node_name_bytes(n) for n in decoded] == sorted(names)
    for n in decoded:
        raw = node_name_bytes(n)
        assert ("name_raw" in n) != _is_utf8(raw)  # raw base64 exactly when not UTF-8
        if n["type"] == "symlink":
            assert os.fsencode(decode_name(n, "target")) == targets[names.index(raw)]
    shuffle.shuffle(nodes)
    assert encode_tree(nodes) == plain  # identical directories dedup


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _tree(*nodes: dict) -> bytes:
    return json.dumps({"nodes": list(nodes)}).encode()


def _raw(name: bytes) -> dict:
    return {"type": "file", "name_raw": base64.b64encode(name).decode()}


@pytest.mark.parametrize("plain", [
    _tree({"type": "file", "name": ".."}),
    _tree({"type": "file", "name": "."}),
    _tree({"type": "file", "name": ""}),
    _tree({"type": "file", "name": "a/b"}),
    _tree({"type": "file", "name": "/etc"}),
    _tree({"type": "file", "name": "a\0b"}),
    _tree(_raw(b"..")),
    _tree(_raw(b"../../etc/passwd")),
    _tree(_raw(b"x\0")),
    _tree({"type": "file", "name": "a"}, {"type": "file", "name": "a"}),
    _tree({"type": "file", "name": "a"}, _raw(b"a")),
    _tree({"type": "dir", "name": "d"}, {"type": "symlink", "name": "d"}),
    _tree({"type": "fifo", "name": "p"}),
    _tree({"type": "file"}),
    _tree("not a node"),
    b'{"nodes": 5}',
    b'{"nodes": [',
    b"[]",
    b"\xff\xfe",
], ids=lambda p: p.decode("utf-8", "replace")[:40])
def test_hostile_or_malformed_trees_are_refused(plain: bytes) -> None:
    with pytest.raises(IntegrityError):
        decode_tree(plain)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12)
node_like = st.fixed_dictionaries(
    {}, optional={"type": st.sampled_from(["file", "dir", "symlink"]) | json_values,
                  "name": st.text(max_size=6) | json_values,
                  "name_raw": st.text(max_size=12) | json_values})


@props
@given(nodes=st.lists(node_like | json_values, max_size=5))
def test_decode_tree_fails_only_with_integrity_errors(nodes: list) -> None:
    """Whatever an authenticated-but-hostile tree holds, decoding never crashes otherwise."""
    try:
        decoded = decode_tree(json.dumps({"nodes": nodes}).encode())
    except IntegrityError:
        return
    names = [decode_name(n, "name") for n in decoded]
    assert len(set(names)) == len(names)
    assert all(n not in ("", ".", "..") and "/" not in n and "\0" not in n for n in names)


def test_decode_name_without_a_name_is_an_integrity_error() -> None:
    with pytest.raises(CairnError):
        decode_name({"type": "file"}, "name")


def test_a_symlinked_folder_on_the_way_recorded_by_older_versions_reads_as_a_folder() -> None:
    """Before 2026-12-06 a backup of /tmp/x/lnk/inner (lnk → a folder) recorded ``lnk``
    as a symlink with a subtree and no target: restore refused it and prune's reachability
    did not follow it. Read as the folder it led to, its data is restorable and live."""
    subtree = "ab" * 32
    plain = encode_tree([node("lnk", "symlink", subtree=subtree), node("ok", "symlink",
                                                                       target="elsewhere")])
    lnk, ok = decode_tree(plain)
    assert lnk["type"] == "dir" and lnk["subtree"] == subtree
    assert ok["type"] == "symlink" and "subtree" not in ok
    with pytest.raises(IntegrityError):  # a symlink with a subtree must still name an ID
        decode_tree(encode_tree([node("bad", "symlink", subtree="not an id")]))
