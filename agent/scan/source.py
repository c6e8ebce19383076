"""Opening a source file for backup: never through a symlink, without touching atime.

``O_NOATIME`` (Linux) keeps a backup from rewriting the access time of every file
it reads: that is an inode write per file, and it changes what users and tools
see. Only the file's owner (or root) may use it, so an ``EPERM`` retries
without it. ``O_NOFOLLOW`` makes a file swapped for a symlink since the walk
listed it fail to open, instead of backing up whatever the link points to.
"""

from __future__ import annotations

import errno
import os
from typing import BinaryIO

_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
_NOATIME = getattr(os, "O_NOATIME", 0)


def open_source(path: str) -> BinaryIO:
    """An unbuffered binary file object reading ``path``."""
    try:
        fd = os.open(path, _FLAGS | _NOATIME)
    except PermissionError as exc:
        if not _NOATIME or exc.errno != errno.EPERM:
            raise
        fd = os.open(path, _FLAGS)  # not the owner: atime may move, the read still works
    return open(fd, "rb", buffering=0)
