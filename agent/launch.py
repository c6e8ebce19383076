"""The ``cairn`` console script: starts reading the disk before the rest of Cairn loads.

On a cold cache, ``cairn backup`` is bound by listing folders from disk. Loading
Cairn's modules and deriving the archive key take a few hundred milliseconds,
so for ``cairn backup PATH...`` the crawl of the named folders starts here, on
threads, and the walk adopts it (``agent.scan.crawler``). Only ``os``, ``sys``
and the crawler are imported first; everything else is ``agent.cli``'s. For a
local ``--dest`` with the passphrase in ``CAIRN_PASSPHRASE``, the archive key is
derived next, while the process is still small (``agent.archive.unlock_early``).
For a first backup into that folder (it holds no snapshot yet), the small-file
worker processes start then too (``agent.engine.sealworkers.start_early``): a
first backup is mostly new files, and the workers' start-up then overlaps the
rest of Cairn's.
"""

from __future__ import annotations

import os
import sys

SWITCH_INTERVAL_S = 0.0005
VALUE_OPTIONS = frozenset({"--dest", "--exclude", "--limit-rate"})  # of `cairn backup`


def backup_folders(argv: list[str]) -> list[str]:
    """The folders a ``cairn backup`` command line names (absolute), else none."""
    if not argv or argv[0] != "backup":
        return []
    folders, skip_value = [], False
    for arg in argv[1:]:
        if skip_value:
            skip_value = False
        elif arg in VALUE_OPTIONS:
            skip_value = True
        elif arg == "--":
            return []  # unusual enough to leave to the normal walk
        elif not arg.startswith("-"):
            path = os.path.abspath(os.path.expanduser(arg))
            if os.path.isdir(path) and not os.path.islink(path):
                folders.append(path)
    return folders


def backup_dest(argv: list[str]) -> str | None:
    """The ``--dest`` folder of a ``cairn backup`` command line, else None."""
    if not argv or argv[0] != "backup":
        return None
    dest = None
    for i, arg in enumerate(argv[1:], start=1):
        if arg == "--":
            break
        if arg == "--dest" and i + 1 < len(argv):
            dest = argv[i + 1]
        elif arg.startswith("--dest="):
            dest = arg.removeprefix("--dest=")
    return dest or None


def first_backup(dest: str) -> bool:
    """True if the local archive folder ``dest`` holds no snapshot yet (or is not there)."""
    try:
        with os.scandir(os.path.join(dest, "snapshots")) as entries:
            return next(entries, None) is None
    except OSError:
        return True


def main() -> int:
    from agent.allocator import fix_mmap_threshold, limit_arenas

    limit_arenas()  # before any thread or lister process starts
    if sys.argv[1:2] == ["backup"]:
        fix_mmap_threshold()
    folders = backup_folders(sys.argv[1:])
    if folders:
        from agent.scan.crawler import start_early

        # The crawl threads wait for the GIL after every system call; with the default
        # 5 ms switch interval, imports and the walk starve them (measured: 0.4 s slower).
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        start_early(folders)
    dest, passphrase = backup_dest(sys.argv[1:]), os.environ.get("CAIRN_PASSPHRASE")
    if dest and passphrase:
        from agent.archive.unlock_early import unlock_early

        unlock_early(dest, passphrase)
    if folders and dest and first_backup(dest):
        from agent.engine.sealworkers import start_early as start_workers

        start_workers(os.cpu_count() or 1)
    from agent.cli import main as cli_main

    return cli_main()
