"""Checks every backend shares: hash verification while copying, argument checks."""

from __future__ import annotations

import hashlib
import math
from typing import BinaryIO

from server.storage.base import ObjectCorrupt

CHUNK = 1 << 20


def copy_verified(body: BinaryIO, out: BinaryIO | None, kind: str, name: str) -> int:
    """Copy body to out (or only read it) while hashing; return the size.

    Raises ObjectCorrupt when SHA-256 of the bytes is not ``name``; the caller
    must then discard whatever reached ``out``.
    """
    digest = hashlib.sha256()
    size = 0
    while chunk := body.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if out is not None:
            out.write(chunk)
    if digest.hexdigest() != name:
        raise ObjectCorrupt(f"The uploaded {kind} object does not match its name {name}: its "
                            f"SHA-256 is {digest.hexdigest()}; nothing was stored.")
    return size


def check_range(offset: int, length: int | None) -> None:
    """Raise ValueError unless offset >= 0 and length is None or >= 0."""
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ValueError(f"Invalid offset {offset!r}: expected an integer >= 0.")
    if length is not None and (not isinstance(length, int) or isinstance(length, bool)
                               or length < 0):
        raise ValueError(f"Invalid length {length!r}: expected an integer >= 0 or None.")


def check_age(older_than_s: float) -> None:
    """Raise ValueError unless older_than_s is a number of seconds >= 0."""
    if (not isinstance(older_than_s, int | float) or isinstance(older_than_s, bool)
            or math.isnan(older_than_s) or older_than_s < 0):
        raise ValueError(f"Invalid age {older_than_s!r}: expected a number of seconds >= 0.")
