"""Hash manifests of a folder tree, to prove a restore is identical to its source.

A manifest maps each path (relative to the root, '/'-separated) to:
("dir",) | ("link", target) | ("file", size, permission bits, sha256 hex).
Other file types (sockets, fifos, devices) are left out.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Entry = tuple[Any, ...]
Manifest = dict[str, Entry]


@dataclass(frozen=True)
class TreeStats:
    """Counts of a tree described by a manifest."""

    files: int
    dirs: int
    links: int
    bytes: int


def _digest(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def build(root: Path) -> Manifest:
    """Walk `root` without following symlinks and describe every entry under it."""
    entries: Manifest = {}
    todo = [""]
    while todo:
        rel = todo.pop()
        with os.scandir(os.path.join(root, rel)) as it:
            for entry in it:
                name = f"{rel}/{entry.name}" if rel else entry.name
                if entry.is_symlink():
                    entries[name] = ("link", os.readlink(entry.path))
                elif entry.is_dir(follow_symlinks=False):
                    entries[name] = ("dir",)
                    todo.append(name)
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    entries[name] = ("file", st.st_size, stat.S_IMODE(st.st_mode),
                                     _digest(entry.path))
    return entries


def stats(manifest: Manifest) -> TreeStats:
    """Count files, folders, symlinks and file bytes in `manifest`."""
    kinds = [entry[0] for entry in manifest.values()]
    size = sum(int(e[1]) for e in manifest.values() if e[0] == "file")
    return TreeStats(kinds.count("file"), kinds.count("dir"), kinds.count("link"), size)


def _describe(want: Entry, got: Entry) -> str:
    if want[0] != got[0]:
        return f"is a {got[0]}, expected a {want[0]}"
    if want[0] == "link":
        return f"points to {got[1]!r}, expected {want[1]!r}"
    parts = []
    if want[1] != got[1]:
        parts.append(f"size {got[1]} instead of {want[1]}")
    if want[2] != got[2]:
        parts.append(f"permissions {got[2]:o} instead of {want[2]:o}")
    if want[3] != got[3]:
        parts.append("content differs")
    return ", ".join(parts)


def differences(expected: Manifest, actual: Manifest, limit: int = 10) -> tuple[int, list[str]]:
    """Count entries that differ and describe the first `limit` of them."""
    problems = []
    for name in sorted(expected.keys() | actual.keys()):
        want, got = expected.get(name), actual.get(name)
        if want == got:
            continue
        if got is None:
            problems.append(f"missing: {name}")
        elif want is None:
            problems.append(f"unexpected: {name}")
        else:
            problems.append(f"differs: {name} ({_describe(want, got)})")
    return len(problems), problems[:limit]
