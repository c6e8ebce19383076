"""Extended attributes as tree nodes store them: name → base64 of the value.

Files' attributes are read by whoever reads the file's content, from the open
descriptor (the same inode as the content, and no syscall on the walker's
thread, where each one hands the GIL away); folders' by the backup's tree
builder, by path.
"""

from __future__ import annotations

import base64
import os


def read_xattrs(target: str | int) -> dict[str, str] | None:
    """The attributes of an open descriptor, or of a path (a symlink is not followed);
    None when there are none, or the platform or file system has none to give."""
    if not hasattr(os, "listxattr"):
        return None
    try:
        if isinstance(target, int):
            return {n: _text(os.getxattr(target, n)) for n in os.listxattr(target)} or None
        return {n: _text(os.getxattr(target, n, follow_symlinks=False))
                for n in os.listxattr(target, follow_symlinks=False)} or None
    except OSError:
        return None  # not supported here, or vanished: metadata only


def _text(value: bytes) -> str:
    return base64.b64encode(value).decode()
