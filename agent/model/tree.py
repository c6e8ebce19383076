"""Tree blobs: one per directory, listing its entries (docs/format.md, "Trees").

A tree's plaintext is compact JSON ``{"nodes": [node, ...]}`` sorted by the
name's bytes. A node is a dict with:

- ``name`` (str) — or ``name_raw`` (base64 of the bytes) when the name is not UTF-8,
- ``type``: ``"file"``, ``"dir"`` or ``"symlink"``,
- ``mode`` (permission bits), ``uid``, ``gid``, ``mtime_ns``, ``ctime_ns``, ``inode``, ``size``,
- files: ``content`` (list of hex blob IDs, in order), ``sparse`` (bool, optional),
- dirs: ``subtree`` (hex tree blob ID),
- symlinks: ``target`` (str) or ``target_raw`` (base64),
- ``xattrs`` (optional): name → base64 value.

Identical directories serialize to identical bytes and so dedup.
"""

from __future__ import annotations

import base64
import json
import os
import re
from operator import itemgetter

from agent.errors import IntegrityError

NODE_TYPES = frozenset({"file", "dir", "symlink"})
_HEX = re.compile(r"[0-9a-f]{64}")


def encode_name(node: dict, key: str, value: str) -> None:
    """Store a filesystem string (maybe with surrogate escapes) under ``key``."""
    try:
        value.encode("utf-8")
        node[key] = value
    except UnicodeEncodeError:
        node[key + "_raw"] = base64.b64encode(os.fsencode(value)).decode()


def decode_name(node: dict, key: str) -> str:
    """Inverse of ``encode_name``: the str to hand to the OS."""
    value = node.get(key)
    if isinstance(value, str):
        return value
    raw = node.get(key + "_raw")
    if not isinstance(raw, str):
        raise IntegrityError(f"A tree node has no valid {key}.")
    try:
        return os.fsdecode(base64.b64decode(raw, validate=True))
    except ValueError as exc:  # binascii.Error, or non-ASCII text
        raise IntegrityError(f"A tree node has a malformed {key}_raw.") from exc


def node_name_bytes(node: dict) -> bytes:
    return os.fsencode(decode_name(node, "name"))


def sort_nodes(nodes: list[dict]) -> None:
    """Sort nodes by the bytes of their names, in place.

    For UTF-8 names, code point order is byte order, so plain str keys suffice
    unless a name had to be stored raw.
    """
    if all("name" in n for n in nodes):
        nodes.sort(key=itemgetter("name"))
    else:
        nodes.sort(key=node_name_bytes)


def encode_tree(nodes: list[dict]) -> bytes:
    """Serialize a directory's nodes deterministically (sorted by name bytes)."""
    sort_nodes(nodes)
    return json.dumps({"nodes": nodes}, separators=(",", ":"), sort_keys=True).encode()


def decode_tree(plain: bytes) -> list[dict]:
    """Parse a tree blob and reject anything a restore could be tricked by."""
    try:
        nodes = json.loads(plain)["nodes"]
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError("A tree blob is not valid.") from exc
    if not isinstance(nodes, list):
        raise IntegrityError("A tree blob is not valid.")
    seen: set[str] = set()
    for node in nodes:
        if not isinstance(node, dict) or not isinstance(node.get("type"), str) \
                or node["type"] not in NODE_TYPES:
            raise IntegrityError("A tree blob has an invalid node.")
        name = decode_name(node, "name")
        hostile = name in ("", ".", "..") or "/" in name or "\0" in name or os.sep in name
        if hostile or name in seen:
            raise IntegrityError(f"A tree blob has a hostile or duplicate name {name!r}.")
        seen.add(name)
        if node["type"] == "symlink" and "subtree" in node and not _has_target(node):
            # Written before 2026-12-06 for a symlinked folder on the way to a backed-up
            # path (docs/format.md, §8): the folder it led to, with its subtree.
            node["type"] = "dir"
        if not _fields_valid(node):
            raise IntegrityError(f"A tree blob has a malformed entry {name!r}.")
    return nodes


def _has_target(node: dict) -> bool:
    return "target" in node or "target_raw" in node


def _is_id(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and _HEX.fullmatch(value) is not None


_INT_FIELDS = ("mode", "uid", "gid", "mtime_ns", "ctime_ns", "inode", "size")


def _fields_valid(node: dict) -> bool:
    get = node.get
    for key in _INT_FIELDS:
        if type(get(key, 0)) is not int:  # not a bool either (JSON gives no other subclass)
            return False
    if node["type"] == "file":
        content = node.get("content", [])
        return isinstance(content, list) and all(_is_id(c) for c in content)
    if node["type"] == "dir":
        return "subtree" not in node or _is_id(node["subtree"])
    return isinstance(node.get("target", ""), str)
