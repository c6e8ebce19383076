"""Linux facilities the end-to-end tests use to observe or provoke real conditions.

- ``OpenWatch``: inotify watches that record which files a process opened. They
  do not touch a file's size, mtime, ctime or inode, so they can prove that a
  backup did not read an unchanged file without changing what the backup sees.
- ``unreadable_for_child``: how to make a file genuinely unreadable to a child
  process, also when the tests run as root (root reads mode-000 files through
  CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH, so the child drops both from its
  capability bounding set before it execs).
- ``small_tmpfs``: a size-limited tmpfs mount, a real full disk (root only).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import struct
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

IN_ACCESS = 0x001
IN_OPEN = 0x020
IN_NONBLOCK = 0o4000
PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE = 1
CAP_DAC_READ_SEARCH = 2
_EVENT = struct.Struct("iIII")

_libc = ctypes.CDLL(None, use_errno=True)


class OpenWatch:
    """Records IN_OPEN / IN_ACCESS events on individual files."""

    def __init__(self, paths: list[Path]) -> None:
        self._fd = _libc.inotify_init1(IN_NONBLOCK)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._paths: dict[int, Path] = {}
        for path in paths:
            wd = _libc.inotify_add_watch(self._fd, os.fsencode(path), IN_OPEN | IN_ACCESS)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {path}")
            self._paths[wd] = path

    def opened(self) -> set[Path]:
        """Files opened or read since the watch started (drains pending events)."""
        seen: set[Path] = set()
        while True:
            try:
                buf = os.read(self._fd, 65536)
            except BlockingIOError:
                return seen
            pos = 0
            while pos < len(buf):
                wd, mask, _cookie, length = _EVENT.unpack_from(buf, pos)
                if mask & (IN_OPEN | IN_ACCESS) and wd in self._paths:
                    seen.add(self._paths[wd])
                pos += _EVENT.size + length

    def close(self) -> None:
        os.close(self._fd)


def _drop_dac_capabilities() -> None:
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def unreadable_for_child(path: Path) -> Callable[[], None] | None:
    """Make ``path`` mode 000; returns the ``preexec_fn`` a child needs to feel it."""
    os.chmod(path, 0)
    return _drop_dac_capabilities if os.geteuid() == 0 else None


def child_can_read(path: Path, preexec_fn: Callable[[], None] | None) -> bool:
    """Whether a child started like the backup can open ``path`` (the test's own control)."""
    proc = subprocess.run(["cat", str(path)], preexec_fn=preexec_fn, capture_output=True)
    return proc.returncode == 0


@contextlib.contextmanager
def small_tmpfs(mountpoint: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` (e.g. ``"3m"``) at ``mountpoint`` for the block."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mountpoint)],
                   check=True, capture_output=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False, capture_output=True)
