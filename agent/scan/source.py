"""Opening a source file for backup: a regular file only, never through a symlink,
without touching atime.

``O_NOATIME`` (Linux) keeps a backup from rewriting the access time of every file
it reads: that is an inode write per file, and it changes what users and tools
see. Only the file's owner (or root) may use it, so an ``EPERM`` retries
without it. ``O_NOFOLLOW`` makes a file swapped for a symlink since the walk
listed it fail to open, instead of backing up whatever the link points to.
A file swapped for a FIFO or a device since the walk is refused too: opening a
FIFO waits for a writer that may never come, and a device such as
``/dev/zero`` never ends. ``O_NONBLOCK`` keeps the open from waiting (it does
not change reads of regular files), and ``fstat`` checks what was opened.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
          | getattr(os, "O_BINARY", 0))
_NOATIME = getattr(os, "O_NOATIME", 0)


def open_source(path: str) -> BinaryIO:
    """An unbuffered binary file object reading the regular file ``path``."""
    try:
        fd = os.open(path, _FLAGS | _NOATIME)
    except PermissionError as exc:
        if not _NOATIME or exc.errno != errno.EPERM:
            raise
        fd = os.open(path, _FLAGS)  # not the owner: atime may move, the read still works
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "no longer a regular file (it changed during the backup)")
    except BaseException:
        os.close(fd)
        raise
    return open(fd, "rb", buffering=0)


def read_small(f: BinaryIO, limit: int) -> bytes | None:
    """All of an open file if it holds at most ``limit`` bytes, else None (it grew since
    the walk listed it as small). The read is sized to the file: a read of ``limit``
    bytes allocates that much for every file, and measured on the benchmark set
    those 512 KiB buffers left each worker process 15 MB larger."""
    size = os.fstat(f.fileno()).st_size
    if size > limit:
        return None
    data = f.read(size + 1)
    if len(data) > size:  # growing as it is read: take what is there, up to the limit
        data += f.read(limit + 1 - len(data))
    return data if len(data) <= limit else None
