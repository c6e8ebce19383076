"""Run one tool through the benchmark's phases and check its restore against the source.

Phases, each a fresh child process, with the page cache dropped before each when
possible: init (untimed), initial backup, no-change re-backup, restore of the
latest snapshot. The restore is then compared with the source's hash manifest.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import manifest
from .measure import Command, Measurement, drop_caches, run_measured
from .tools import Tool


class PhaseFailed(Exception):
    """A tool's command failed; the message names the tool, phase and error."""


@dataclass
class ToolResult:
    """Everything measured for one tool."""

    name: str
    version: str
    settings: str
    phases: dict[str, Measurement] = field(default_factory=dict)
    reports: dict[str, dict[str, object]] = field(default_factory=dict)
    stored_bytes: int | None = None
    stored_bytes_after_rebackup: int | None = None
    verified: bool | None = None
    mismatches: int = 0
    problems: list[str] = field(default_factory=list)
    error: str | None = None


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _step(tool: Tool, phase: str, cmd: Command, drop: bool) -> Measurement:
    if drop:
        drop_caches()
    say(f"{tool.name}: {phase}")
    try:
        measured = run_measured(cmd, tool.home / "logs" / phase)
    except OSError as exc:
        raise PhaseFailed(f"{tool.name} {phase} could not start: {exc}") from exc
    if measured.exit_code != 0:
        tail = " | ".join(measured.stderr.strip().splitlines()[-3:]) or "no error output"
        raise PhaseFailed(f"{tool.name} {phase} failed with exit code {measured.exit_code}: "
                          f"{tail}")
    say(f"{tool.name}: {phase} took {measured.seconds:.2f} s")
    return measured


def _verify(result: ToolResult, restored: Path, expected: manifest.Manifest) -> None:
    say(f"{result.name}: comparing the restore with the source")
    if not restored.is_dir():
        result.verified, result.mismatches = False, len(expected)
        result.problems = [f"nothing was restored at {restored}"]
        return
    count, problems = manifest.differences(expected, manifest.build(restored))
    result.verified, result.mismatches, result.problems = count == 0, count, problems


def _run_phases(tool: Tool, source: Path, expected: manifest.Manifest, drop: bool,
                result: ToolResult) -> None:
    tool.home.mkdir(parents=True, exist_ok=True)
    init = tool.init_command()
    if init is not None:
        _step(tool, "init", init, drop=False)
    for run, phase in enumerate(("backup", "rebackup"), start=1):
        measured = _step(tool, phase, tool.backup_command(source, run), drop)
        result.phases[phase] = measured
        result.reports[phase] = tool.parse_report(measured.stdout)
        if phase == "backup":
            result.stored_bytes = tool.stored_bytes()
    result.stored_bytes_after_rebackup = tool.stored_bytes()
    target = tool.home / "restore"
    target.mkdir()
    result.phases["restore"] = measured = _step(tool, "restore", tool.restore_command(target),
                                                drop)
    result.reports["restore"] = tool.parse_report(measured.stdout)
    _verify(result, target / source.relative_to(source.anchor), expected)
    shutil.rmtree(target)


def run_tool(tool: Tool, source: Path, expected: manifest.Manifest, drop: bool) -> ToolResult:
    """Benchmark `tool` on `source`; failures are recorded in the result, not raised."""
    result = ToolResult(tool.name, tool.version(), tool.settings())
    try:
        _run_phases(tool, source, expected, drop, result)
    except PhaseFailed as exc:
        result.error = str(exc)
        say(str(exc))
    return result
