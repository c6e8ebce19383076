"""Folder listings (names + lstat) and their fingerprints."""

from __future__ import annotations

import os
from typing import NamedTuple

import blake3


class EntryStat(NamedTuple):
    """The lstat fields a walk uses; what lister processes send instead of a whole
    ``os.stat_result`` (a plain tuple pickles and loads several times faster)."""

    st_mode: int
    st_uid: int
    st_gid: int
    st_size: int
    st_mtime_ns: int
    st_ctime_ns: int
    st_ino: int
    st_blocks: int

    @classmethod
    def fields_of(cls, st: os.stat_result) -> tuple[int, ...]:
        return (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                st.st_ino, getattr(st, "st_blocks", 0))


Entry = tuple[str, "os.stat_result | EntryStat | OSError"]


def list_dir(path: str) -> list[Entry] | OSError:
    """Sorted (name, lstat result or error) of a folder, or the error listing it."""
    try:
        with os.scandir(path) as it:
            names = sorted(entry.name for entry in it)
    except OSError as exc:
        return exc
    listing: list[Entry] = []
    lstat = os.lstat
    prefix = path if path.endswith(os.sep) else path + os.sep
    for name in names:
        try:
            listing.append((name, lstat(prefix + name)))
        except OSError as exc:
            listing.append((name, exc))
    return listing


def fingerprint(listing: list[tuple[str, os.stat_result]]) -> bytes:
    """A 16-byte digest of a folder's direct entries and their metadata.

    Equal fingerprints mean no entry was added, removed, renamed, or changed in
    size, mtime, ctime, inode, mode or owner (content changes move mtime/ctime).
    """
    text = "".join(
        f"{name}\0{st.st_mode} {st.st_uid} {st.st_gid} {st.st_size} {st.st_mtime_ns} "
        f"{st.st_ctime_ns} {st.st_ino}\n"
        for name, st in listing
    )
    return blake3.blake3(text.encode("utf-8", "surrogateescape")).digest(16)
