"""The glibc settings (agent.allocator), checked in fresh processes: the arena cap
must act before threads start, the backup's mmap threshold must stop glibc from
raising it, and both must leave what the user set alone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from agent.allocator import BACKUP_MMAP_THRESHOLD, WORKER_ARENAS, worker_environment

glibc_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not os.confstr("CS_GNU_LIBC_VERSION"),
    reason="the arena cap exists only in glibc")

# Four threads each hold a malloc'd buffer at once, then the process counts its
# arena heaps: anonymous mappings aligned to glibc's 64 MiB heap size.
ARENA_PROBE = """
import sys, threading
from agent.allocator import limit_arenas
took = limit_arenas(int(sys.argv[1])) if sys.argv[1] != "none" else None
hold, start = [], threading.Barrier(4)
def grab():
    start.wait()
    hold.append(bytearray(100_000))
threads = [threading.Thread(target=grab) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
arenas = 0
for line in open("/proc/self/maps"):
    fields = line.split()
    low = int(fields[0].split("-")[0], 16)
    if len(fields) == 5 and low % (64 << 20) == 0:
        arenas += 1
print(took, arenas)
"""


def run_probe(code: str, arg: str, env: dict[str, str]) -> list[str]:
    """The words a probe printed, run in a fresh Python with ``env``."""
    return subprocess.run([sys.executable, "-c", code, arg], capture_output=True,
                          text=True, check=True, env=env).stdout.split()


def subprocess_probe(cap: str, env: dict[str, str]) -> tuple[str, int]:
    out = run_probe(ARENA_PROBE, cap, env)
    return out[0], int(out[1])


@glibc_only
def test_the_cap_keeps_threads_in_the_main_arena() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    took, arenas = subprocess_probe("1", env)
    assert took == "True" and arenas == 0
    _, uncapped = subprocess_probe("none", env)
    assert uncapped >= 1  # glibc's default: threads get arenas of their own


@glibc_only
def test_a_cap_the_user_set_is_left_alone() -> None:
    took, _ = subprocess_probe("1", {**os.environ, "MALLOC_ARENA_MAX": "4"})
    assert took == "False"


def test_workers_get_the_settings_in_their_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    env = worker_environment()
    assert env["MALLOC_ARENA_MAX"] == str(WORKER_ARENAS)
    assert env["MALLOC_MMAP_THRESHOLD_"] == str(BACKUP_MMAP_THRESHOLD)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "3")
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    env = worker_environment()
    assert env["MALLOC_ARENA_MAX"] == "3" and env["MALLOC_MMAP_THRESHOLD_"] == "65536"


# Free a 4 MiB block (glibc then raises its threshold to 4 MiB), then hold a 1 MiB
# one: print whether that one got a mapping of its own (mallinfo2's hblkhd grew).
MMAP_PROBE = """
import ctypes, sys
from agent.allocator import fix_mmap_threshold
took = fix_mmap_threshold() if sys.argv[1] == "fixed" else None
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
del_me = bytearray(4 << 20)
del del_me
before = libc.mallinfo2().hblkhd
held = bytearray(1 << 20)
print(took, libc.mallinfo2().hblkhd - before >= 1 << 20)
"""


def mmap_probe(mode: str, env: dict[str, str]) -> list[str]:
    return run_probe(MMAP_PROBE, mode, env)


@glibc_only
def test_the_backup_threshold_keeps_mid_sized_blocks_out_of_the_heap() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    assert mmap_probe("fixed", env) == ["True", "True"]
    assert mmap_probe("default", env) == ["None", "False"]  # glibc's sliding threshold


@glibc_only
def test_a_threshold_the_user_set_is_left_alone() -> None:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(8 << 20)}
    assert mmap_probe("fixed", env) == ["False", "False"]
