#!/usr/bin/env python3
"""Benchmark Cairn's engine against restic and BorgBackup on the same real data.

    .venv/bin/python bench/engine_bench.py [--size small|full | --data DIR] [--rounds N]
        [--tools cairn,restic,borg] [--json-out FILE] [--work DIR] [--keep]

Each tool backs up the data, backs it up again unchanged, and restores it; the
restore is checked against a hash manifest of the source. Every tool does this
once per round (the tools take turns going first); the tables show each figure's
median over the rounds and Cairn's ratio to each peer. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from enginebench import manifest, report
from enginebench.dataset import SETS, ensure_dataset
from enginebench.errors import BenchError
from enginebench.measure import can_drop_caches
from enginebench.runner import ToolResult, run_tool, say
from enginebench.tools import DRIVERS, Tool

HERE = Path(__file__).resolve().parent
WARM_NOTE = "not dropped (--warm): hashing the source just before left it in memory"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SETS), default="full",
                        help="built-in data set from PyPI: small (~150 MB) or full (~1 GB)")
    parser.add_argument("--data", type=Path, help="benchmark this folder instead of a data set")
    parser.add_argument("--rounds", type=int, default=3,
                        help="run every tool this many times; figures are the medians "
                             "(default: %(default)s)")
    parser.add_argument("--tools", default="cairn,restic,borg",
                        help="comma-separated tools to run, in order (default: %(default)s)")
    parser.add_argument("--json-out", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--work", type=Path, default=HERE / ".work",
                        help="folder for repositories and restores (default: bench/.work)")
    parser.add_argument("--data-cache", type=Path, default=HERE / ".data",
                        help="where downloads and data sets are kept (default: bench/.data)")
    parser.add_argument("--warm", action="store_true",
                        help="do not drop the page cache: every tool reads the source from memory")
    parser.add_argument("--keep", action="store_true",
                        help="keep repositories and logs of this run under --work")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def make_tools(names: str, workdir: Path) -> list[Tool]:
    """The drivers for the named tools; every missing tool is reported at once."""
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in DRIVERS]
    if unknown or not chosen:
        raise BenchError(f"Unknown tool(s) {', '.join(unknown) or '(none given)'}: "
                         f"choose from {', '.join(DRIVERS)}.")
    tools = [DRIVERS[name](workdir) for name in dict.fromkeys(chosen)]
    missing = [sentence for tool in tools if (sentence := tool.missing())]
    if missing:
        raise BenchError(" ".join(missing) + " Or leave it out with --tools.")
    for tool in tools:
        tool.prepare()
    return tools


def source_folder(args: argparse.Namespace) -> Path:
    if args.data is None:
        return ensure_dataset(args.data_cache.resolve(), args.size)
    source = args.data.resolve()
    if not source.is_dir():
        raise BenchError(f"{args.data} is not a folder.")
    return source


def machine_info() -> dict[str, object]:
    commit = None
    if shutil.which("git"):
        git = subprocess.run(["git", "-C", str(HERE), "describe", "--always", "--dirty"],
                             capture_output=True, text=True)
        commit = git.stdout.strip() if git.returncode == 0 else None
    return {"cpus": os.cpu_count(), "system": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(),
            "cairn_commit": commit}


def print_report(results: dict[str, list[ToolResult]], tree: manifest.TreeStats,
                 header: list[str]) -> dict:
    """Print the tables; return the medians and ratios (for the JSON)."""
    rounds = len(next(iter(results.values())))
    per_round = [{name: report.summarize(runs[i], tree.bytes) for name, runs in results.items()}
                 for i in range(rounds)]
    summaries = {name: report.median_summary([s[name] for s in per_round]) for name in results}
    ratios = report.ratios(summaries)
    for peer, counts in report.rounds_met(per_round).items():
        for key, met in counts.items():
            ratios[peer][key]["rounds_met"] = met
    print("\n".join(header))
    for runs in results.values():
        print(f"  {runs[0].name} {runs[0].version}: {runs[0].settings}")
    print()
    if rounds > 1:
        print(report.rounds_table(per_round))
        print(f"\nMedians of {rounds} rounds:")
    print(report.results_table(results, summaries))
    for peer, peer_ratios in ratios.items():
        print()
        print(report.ratios_table(peer, peer_ratios, rounds))
    for runs in results.values():
        for number, result in enumerate(runs, start=1):
            where = f" (round {number})" if rounds > 1 else ""
            if result.error:
                print(f"\nFAILED{where}: {result.error}")
            elif not result.verified:
                print(f"\nFAILED{where}: the restore by {result.name} differs from the source "
                      f"in {result.mismatches} entries:\n  " + "\n  ".join(result.problems))
    return {"summaries": summaries, "ratios": ratios}


def prepare(args: argparse.Namespace, workdir: Path) -> tuple[Path, manifest.Manifest]:
    """The source folder and its hash manifest, after checking there is room to work."""
    source = source_folder(args)
    if workdir.is_relative_to(source):
        raise BenchError(f"The work folder {workdir} is inside the data {source}: use --work.")
    say(f"hashing the source {source}")
    expected = manifest.build(source)
    needed = 2.5 * manifest.stats(expected).bytes
    workdir.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(workdir.parent).free
    if free < needed:
        raise BenchError(f"{workdir.parent} has {free / 1e9:.1f} GB free; the benchmark needs "
                         f"about {needed / 1e9:.1f} GB (a repository and a restore).")
    return source, expected


def write_json(path: Path, context: dict, results: dict[str, list[ToolResult]],
               figures: dict) -> None:
    """Write the run's context, every tool's measurements and the ratios to `path`."""
    document = {"benchmark": "engine", "schema": 2, **context,
                "tools": {name: report.result_json(runs, figures["summaries"][name])
                          for name, runs in results.items()},
                "ratios": figures["ratios"]}
    path.write_text(json.dumps(document, indent=2) + "\n")


def run(args: argparse.Namespace) -> int:
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    workdir = args.work.resolve() / time.strftime("run-%Y%m%d-%H%M%S")
    tools = make_tools(args.tools, workdir)
    source, expected = prepare(args, workdir)
    tree = manifest.stats(expected)
    workdir.mkdir()
    dropped, drop_note = (False, WARM_NOTE) if args.warm else can_drop_caches()
    load_start = os.getloadavg()[0]
    results: dict[str, list[ToolResult]] = {tool.name: [] for tool in tools}
    try:
        for number in range(1, args.rounds + 1):
            round_dir = workdir / f"round-{number}"
            turn = (number - 1) % len(tools)  # each tool goes first in turn
            order = [type(tool)(round_dir) for tool in tools[turn:] + tools[:turn]]
            say(f"round {number} of {args.rounds}: {', '.join(t.name for t in order)}")
            for tool in order:
                results[tool.name].append(run_tool(tool, source, expected, dropped))
            if not args.keep:
                shutil.rmtree(round_dir, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    load_end = os.getloadavg()[0]
    machine = machine_info()
    header = [f"Cairn engine benchmark, {started}", report.dataset_line(str(source), tree),
              f"Machine: {machine['cpus']} CPUs, {machine['system']}; load average "
              f"{load_start:.2f} at start, {load_end:.2f} at end (other work on the machine "
              "skews wall times; CPU seconds are steadier)",
              f"Page cache: {drop_note}", "Settings:"]
    figures = print_report(results, tree, header)
    if args.json_out:
        context = {"started": started, "rounds": args.rounds,
                   "machine": {**machine, "load_start": load_start, "load_end": load_end},
                   "data": {"path": str(source), "size": "custom" if args.data else args.size,
                            **vars(tree)},
                   "page_cache": {"dropped": dropped, "note": drop_note}}
        write_json(args.json_out, context, results, figures)
    return 0 if all(r.verified and not r.error for runs in results.values() for r in runs) else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
