"""The glibc arena cap (agent.allocator), checked in fresh processes: it must act
before threads start, and it must leave a cap the user set alone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from agent.allocator import WORKER_ARENAS, worker_environment

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


def subprocess_probe(cap: str, env: dict[str, str]) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", ARENA_PROBE, cap], capture_output=True,
                         text=True, check=True, env=env).stdout.split()
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


def test_workers_get_the_cap_in_their_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert worker_environment()["MALLOC_ARENA_MAX"] == str(WORKER_ARENAS)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "3")
    assert worker_environment()["MALLOC_ARENA_MAX"] == "3"
