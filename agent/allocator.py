"""glibc malloc settings that keep Cairn's resident memory down.

**Fewer arenas.** Freed memory stays resident in the arena that served it.

glibc gives each thread that allocates its own arena (up to eight per core) and
keeps what a thread frees for that arena's later use. Cairn's processes run many
threads for short bursts (crawl, walk, worker answers, large files, uploads in
the agent; read-ahead in each worker), so each arena holds its own high-water
mark. Measured on the full benchmark set (three interleaved cold first backups
each): summed peak RSS 181–200 MiB with glibc's defaults, 166–175 MiB capped at
one or two arenas per process, at the same speed.

**A fixed mmap threshold while backing up.** glibc serves a request of 128 KiB
or more with its own mapping, returned to the system on ``free``, but each time
such a block is freed it raises that threshold to the block's size (up to 32 MiB).
After the first multi-MiB chunk buffer, every ~1 MiB blob, zstd output and
worker answer of a backup is carved from the heap, and the heap keeps the high
water mark, fragmented. Fixed at 512 KiB in ``cairn backup`` and in its worker
processes, measured on the full benchmark set (interleaved cold first backups):
summed peak RSS 153–160 MiB against 171–184 MiB, for ~0.45 s more system CPU
(fresh mappings' page faults) and backups ~5 % longer on average over four timed
pairs (inside the run-to-run spread). Restores
keep glibc's default (every ~1 MiB buffer they use would become a mapping and
its page faults; 128 KiB cost them a tenth of their speed), and so does the
service process, which also restores.

Only these settings change; elsewhere (macOS, Windows, musl) this does nothing.
A ``MALLOC_ARENA_MAX`` or ``MALLOC_MMAP_THRESHOLD_`` the user set is left alone.
"""

from __future__ import annotations

import os
import sys

AGENT_ARENAS = 2
WORKER_ARENAS = 1
BACKUP_MMAP_THRESHOLD = 512 * 1024
_M_MMAP_THRESHOLD = -3  # mallopt parameter numbers in glibc's malloc.h
_M_ARENA_MAX = -8
_ENV = "MALLOC_ARENA_MAX"
_MMAP_ENV = "MALLOC_MMAP_THRESHOLD_"


def limit_arenas(count: int = AGENT_ARENAS) -> bool:
    """Cap this process's malloc arenas; True if glibc took it. Call before threads start."""
    return _mallopt(_ENV, _M_ARENA_MAX, count)


def fix_mmap_threshold(size: int = BACKUP_MMAP_THRESHOLD) -> bool:
    """Serve every block of ``size`` bytes or more with its own mapping, for good;
    True if glibc took it. For processes that only back up."""
    return _mallopt(_MMAP_ENV, _M_MMAP_THRESHOLD, size)


def worker_environment(count: int = WORKER_ARENAS) -> dict[str, str]:
    """The environment for a backup worker process: this one's, with the arena cap
    and the backup's mmap threshold set (glibc reads them at start-up; other C
    libraries ignore them)."""
    env = dict(os.environ)
    env.setdefault(_ENV, str(count))
    env.setdefault(_MMAP_ENV, str(BACKUP_MMAP_THRESHOLD))
    return env


def _mallopt(env_name: str, parameter: int, value: int) -> bool:
    if env_name in os.environ or not sys.platform.startswith("linux") or not _is_glibc():
        return False
    import ctypes

    return bool(ctypes.CDLL(None).mallopt(parameter, value))


def _is_glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):
        return False
