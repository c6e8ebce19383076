"""Declared test trees (in the style of restic's ``TestDir``) and manifests to compare them.

A tree is a mapping of name → node, where a name is ``str`` or ``bytes`` (for
names that are not UTF-8) and a node is a ``File``, ``SparseFile``, ``Symlink``,
``Dir`` or a plain mapping (a ``Dir`` with default metadata)::

    build(root, {
        "empty.txt": File(b""),
        "run.sh": File(b"#!/bin/sh\\n", mode=0o755),
        b"latin1-\\xe9": File(b"x"),
        "docs": {"a.txt": File(b"a"), "empty": {}},
        "link": Symlink("docs/a.txt"),
    })

``manifest(root)`` describes what is on disk (type, mode, owner, size, SHA-256,
mtime, link target) keyed by relative byte path, so a restore can be compared
with its source in one assertion.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Union

Name = str | bytes
MTIME_NS = 1_600_000_000_123_456_789  # an odd nanosecond count, to see ns precision


@dataclass(frozen=True)
class File:
    content: bytes = b""
    mode: int = 0o644
    mtime_ns: int = MTIME_NS
    owner: tuple[int, int] | None = None  # applied only when running as root


@dataclass(frozen=True)
class SparseFile:
    """``size`` bytes of holes, with ``pieces`` of data written at the given offsets."""

    size: int
    pieces: tuple[tuple[int, bytes], ...] = ()
    mode: int = 0o644
    mtime_ns: int = MTIME_NS


@dataclass(frozen=True)
class Symlink:
    target: Name
    mtime_ns: int = MTIME_NS


@dataclass(frozen=True)
class Dir:
    entries: Mapping[Name, Node]
    mode: int = 0o755
    mtime_ns: int = MTIME_NS


Node = Union[File, SparseFile, Symlink, Dir, Mapping]  # noqa: UP007 (recursive alias)


def _fs(name: Name) -> bytes:
    return name if isinstance(name, bytes) else os.fsencode(name)


def build(root: Path, tree: Mapping[Name, Node], *, mode: int = 0o755,
          mtime_ns: int = MTIME_NS) -> Path:
    """Create ``tree`` under ``root`` (created if missing); returns ``root``."""
    _build_dir(os.fsencode(root), Dir(tree, mode, mtime_ns))
    return root


def _build_dir(path: bytes, spec: Dir) -> None:
    os.makedirs(path, exist_ok=True)
    for name, node in spec.entries.items():
        child = os.path.join(path, _fs(name))
        if isinstance(node, Mapping):
            node = Dir(node)
        if isinstance(node, Dir):
            _build_dir(child, node)
        elif isinstance(node, Symlink):
            os.symlink(_fs(node.target), child)
            os.utime(child, ns=(node.mtime_ns, node.mtime_ns), follow_symlinks=False)
        else:
            _build_file(child, node)
    os.chmod(path, spec.mode)
    os.utime(path, ns=(spec.mtime_ns, spec.mtime_ns))


def _build_file(path: bytes, spec: File | SparseFile) -> None:
    with open(path, "wb") as f:
        if isinstance(spec, SparseFile):
            f.truncate(spec.size)
            for offset, data in spec.pieces:
                f.seek(offset)
                f.write(data)
        else:
            f.write(spec.content)
    owner = getattr(spec, "owner", None)
    if owner is not None and os.geteuid() == 0:
        os.chown(path, *owner)
    os.chmod(path, spec.mode)
    os.utime(path, ns=(spec.mtime_ns, spec.mtime_ns))


@dataclass(frozen=True)
class Entry:
    type: str
    mode: int
    uid: int
    gid: int
    size: int
    sha256: str
    mtime_ns: int
    target: bytes


def sha256_file(path: bytes | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def manifest(root: Path) -> dict[bytes, Entry]:
    """Every entry below ``root`` (and ``root`` itself as ``b"."``), by relative byte path."""
    found: dict[bytes, Entry] = {}
    base = os.fsencode(root)

    def visit(rel: bytes) -> None:
        path = os.path.join(base, rel) if rel != b"." else base
        st = os.lstat(path)
        kind, digest, target = "other", "", b""
        if stat.S_ISDIR(st.st_mode):
            kind = "dir"
        elif stat.S_ISLNK(st.st_mode):
            kind, target = "symlink", os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            kind, digest = "file", sha256_file(path)
        size = st.st_size if kind == "file" else 0
        found[rel] = Entry(kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, size, digest,
                           st.st_mtime_ns, target)
        if kind == "dir":
            for name in sorted(os.listdir(path)):
                visit(name if rel == b"." else os.path.join(rel, name))

    visit(b".")
    return found


def restored(out: Path, source: Path) -> Path:
    """Where a restore into ``out`` puts ``source`` (its full original path under ``out``)."""
    return out.joinpath(*source.absolute().parts[1:])


def allocated_bytes(path: Path) -> int:
    return os.lstat(path).st_blocks * 512
