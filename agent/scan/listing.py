"""Folder listings (names + lstat) and their fingerprints."""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Iterator, Sequence
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

# EntryStat's fields packed: mode, uid, gid, size, mtime_ns, ctime_ns, inode, blocks.
_PACKED_STAT = struct.Struct("<QQQqqqQQ")
_PACKED_MODE = struct.Struct("<Q56x")  # the mode alone, from the same records


class PackedListing(Sequence[Entry]):
    """A folder's listing as lister processes send it and the crawl holds it: the
    names, and every entry's ``EntryStat`` fields packed into one buffer.

    About 140 bytes an entry, against ~460 for the list of tuples of ints it
    stands for; a crawl holds tens of thousands of entries ahead of the walk.
    ``entries`` gives that list back.
    """

    __slots__ = ("_errors", "_names", "_stats")

    def __init__(self, names: list[str], stats: bytes, errors: dict[int, OSError]) -> None:
        if len(stats) != len(names) * _PACKED_STAT.size:
            raise ValueError("a packed listing's names and fields do not match")
        self._names, self._stats, self._errors = names, stats, errors

    @classmethod
    def pack(cls, listing: list[Entry]) -> PackedListing:
        """Pack ``list_dir``'s result (raises ``struct.error`` for a field beyond 64 bits)."""
        names, parts, errors = [], [], {}
        pack, fields, zero = _PACKED_STAT.pack, EntryStat.fields_of, bytes(_PACKED_STAT.size)
        for i, (name, st) in enumerate(listing):
            names.append(name)
            if isinstance(st, OSError):
                errors[i] = st
                parts.append(zero)
            else:
                parts.append(pack(*fields(st)))  # type: ignore[arg-type]
        return cls(names, b"".join(parts), errors)

    def parts(self) -> tuple[list[str], bytes, dict[int, OSError]]:
        """What ``PackedListing(*parts)`` rebuilds this from (for a pipe)."""
        return self._names, self._stats, self._errors

    def names(self) -> list[str]:
        return self._names

    def subfolder_names(self) -> list[str]:
        """``subfolder_names`` without unpacking every field."""
        modes = _PACKED_MODE.iter_unpack(self._stats)  # an entry in error has mode 0
        return [name for name, (mode,) in zip(self._names, modes, strict=True)
                if stat.S_ISDIR(mode)]

    def entries(self) -> list[Entry]:
        """The listing as ``list_dir`` gives it, with ``EntryStat`` for the lstat results."""
        return list(self)

    def __len__(self) -> int:
        return len(self._names)

    def __iter__(self) -> Iterator[Entry]:
        stats = map(EntryStat._make, _PACKED_STAT.iter_unpack(self._stats))
        if not self._errors:
            return zip(self._names, stats, strict=True)
        errors = self._errors
        return ((name, errors.get(i, st))
                for i, (name, st) in enumerate(zip(self._names, stats, strict=True)))

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return self.entries()[index]
        name = self._names[index]
        index %= len(self._names)
        if index in self._errors:
            return name, self._errors[index]
        return name, EntryStat._make(_PACKED_STAT.unpack_from(self._stats,
                                                              index * _PACKED_STAT.size))


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


def subfolder_names(listing: Sequence[Entry]) -> list[str]:
    """The names of a listing's folders (as lstat saw them: links to folders are not)."""
    if isinstance(listing, PackedListing):
        return listing.subfolder_names()
    return [name for name, st in listing
            if not isinstance(st, OSError) and stat.S_ISDIR(st.st_mode)]


def entry_names(listing: Sequence[Entry]) -> list[str]:
    if isinstance(listing, PackedListing):
        return listing.names()
    return [name for name, _ in listing]


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
