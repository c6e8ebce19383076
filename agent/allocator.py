"""Fewer glibc malloc arenas: freed memory stays resident in the arena that served it.

glibc gives each thread that allocates its own arena (up to eight per core) and
keeps what a thread frees for that arena's later use. Cairn's processes run many
threads for short bursts (crawl, walk, worker answers, large files, uploads in
the agent; read-ahead in each worker), so each arena holds its own high-water
mark. Measured on the full benchmark set (three interleaved cold first backups
each): summed peak RSS 181–200 MiB with glibc's defaults, 166–175 MiB capped at
one or two arenas per process, at the same speed. A fixed mmap threshold saved more but cost
a tenth of backup and restore speed, so it is not used.

Only the number of arenas changes; elsewhere (macOS, Windows, musl) this does
nothing. A ``MALLOC_ARENA_MAX`` the user set is left alone.
"""

from __future__ import annotations

import os
import sys

AGENT_ARENAS = 2
WORKER_ARENAS = 1
_M_ARENA_MAX = -8  # mallopt parameter number in glibc's malloc.h
_ENV = "MALLOC_ARENA_MAX"


def limit_arenas(count: int = AGENT_ARENAS) -> bool:
    """Cap this process's malloc arenas; True if glibc took it. Call before threads start."""
    if _ENV in os.environ or not sys.platform.startswith("linux") or not _is_glibc():
        return False
    import ctypes

    return bool(ctypes.CDLL(None).mallopt(_M_ARENA_MAX, count))


def worker_environment(count: int = WORKER_ARENAS) -> dict[str, str]:
    """The environment for a worker process: this one's, with the arena cap set
    (glibc reads it at start-up; other C libraries ignore it)."""
    env = dict(os.environ)
    env.setdefault(_ENV, str(count))
    return env


def _is_glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):
        return False
