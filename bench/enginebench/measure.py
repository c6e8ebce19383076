"""Run one command in a fresh child and measure wall time, CPU time and peak memory.

Peak memory is taken two ways and the larger is kept as "peak RSS":
- `os.wait4` returns the child's ru_maxrss, which on Linux is the largest RSS of the
  child or of any descendant it waited for (the maximum of single processes). The
  kernel also counts the pre-exec image, i.e. this benchmark's own memory, so the
  figure is used only when it exceeds the benchmark's own peak;
- a sampler thread polls /proc every 50 ms and sums the RSS of the whole process tree,
  which counts concurrent worker processes together. It also sums PSS (shared pages
  split between the processes sharing them), reported separately.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

SAMPLE_INTERVAL_S = 0.05
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class Command:
    """A command line with its extra environment and working folder."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None


@dataclass(frozen=True)
class Measurement:
    """What one measured run cost."""

    exit_code: int
    seconds: float
    cpu_seconds: float
    peak_rss_bytes: int
    peak_pss_bytes: int | None
    stdout: str
    stderr: str


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                kids.extend(int(k) for k in fh.read().split())
    except OSError:
        pass  # the process exited meanwhile
    return kids


def _tree(root: int) -> list[int]:
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(_children(pid))
    return pids


def _rss_pss(pid: int) -> tuple[int, int]:
    """Resident and proportional set size of one process in bytes (0, 0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as fh:
            rss = int(fh.read().split()[1]) * PAGE_SIZE
        pss = 0
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
                    break
        return rss, pss
    except (OSError, ValueError, IndexError):
        return 0, 0


class TreeSampler(threading.Thread):
    """Polls the summed RSS and PSS of a process tree until stopped."""

    def __init__(self, root_pid: int) -> None:
        super().__init__(daemon=True)
        self.root_pid = root_pid
        self.peak_rss = 0
        self.peak_pss = 0
        self.enabled = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
        self._stop_event = threading.Event()

    def run(self) -> None:
        while self.enabled and not self._stop_event.is_set():
            sizes = [_rss_pss(pid) for pid in _tree(self.root_pid)]
            self.peak_rss = max(self.peak_rss, sum(s[0] for s in sizes))
            self.peak_pss = max(self.peak_pss, sum(s[1] for s in sizes))
            self._stop_event.wait(SAMPLE_INTERVAL_S)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def run_measured(cmd: Command, log_stem: Path) -> Measurement:
    """Run `cmd` to completion in a new child; its output goes to `<log_stem>.out/.err`."""
    log_stem.parent.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_stem.with_suffix(".out"), log_stem.with_suffix(".err")
    env = {**os.environ, **cmd.env}
    rss_unit = 1 if sys.platform == "darwin" else 1024
    own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * rss_unit
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd.argv, env=env, cwd=cmd.cwd, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        sampler.stop()
    proc.returncode = os.waitstatus_to_exitcode(status)
    maxrss = usage.ru_maxrss * rss_unit
    trusted = maxrss if maxrss > own_peak else 0
    return Measurement(
        exit_code=proc.returncode,
        seconds=seconds,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss_bytes=max(trusted, sampler.peak_rss) or maxrss,
        peak_pss_bytes=sampler.peak_pss if sampler.enabled else None,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
    )


def can_drop_caches() -> tuple[bool, str]:
    """Whether the page cache can be dropped here, and a sentence saying why (not)."""
    if not hasattr(os, "geteuid") or not os.path.exists("/proc/sys/vm/drop_caches"):
        return False, "not dropped: no /proc/sys/vm/drop_caches on this system"
    if os.geteuid() != 0:
        return False, "not dropped: not running as root, so later phases may read warm caches"
    try:
        drop_caches()
    except OSError as exc:
        return False, f"not dropped: writing /proc/sys/vm/drop_caches failed ({exc.strerror})"
    return True, "dropped before every timed phase (sync; echo 3 > /proc/sys/vm/drop_caches)"


def drop_caches() -> None:
    """Flush dirty pages and drop the page, dentry and inode caches (root only)."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as fh:
        fh.write("3\n")


def tree_bytes(root: Path) -> int:
    """Sum of the sizes of all regular files under `root` (what a repository occupies)."""
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                total += os.path.getsize(path)
    return total
