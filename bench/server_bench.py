#!/usr/bin/env python3
"""Benchmark Cairn to a local cairn-server over loopback, next to Cairn and restic to a folder.

    .venv/bin/python bench/server_bench.py [--size small|full | --data DIR]
        [--json-out FILE] [--work DIR] [--keep] [--warm]

Uses the engine benchmark's data sets, phases and checks (bench/engine_bench.py
and bench/enginebench/): each tool backs up the data, backs it up again
unchanged and restores it, and the restore is compared with the source's hash
manifest. The server (``cairn-server serve``, SQLite and its filesystem store
in the run's work folder, plain HTTP on 127.0.0.1) runs during the whole run;
its CPU time is reported separately because the measured commands are the
agents only. Prints each tool's figures and the server run's ratios to the two
local-folder runs. See bench/README-server.md.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import engine_bench
from enginebench import report
from enginebench.errors import BenchError
from enginebench.measure import Command, can_drop_caches, tree_bytes
from enginebench.runner import ToolResult, run_tool, say
from enginebench.tools import Cairn, Restic

HERE = Path(__file__).resolve().parent
BASE = "cairn-server"
PEERS = ("cairn", "restic")
ACCOUNT_PASSWORD = "cairn-bench-account-password"  # not a secret: a throw-away server


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("small", "full"), default="small")
    parser.add_argument("--data", type=Path, help="benchmark this folder instead of a data set")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--work", type=Path, default=HERE / ".work")
    parser.add_argument("--data-cache", type=Path, default=HERE / ".data")
    parser.add_argument("--warm", action="store_true", help="do not drop the page cache")
    parser.add_argument("--keep", action="store_true")
    return parser.parse_args(argv)


class LocalServer:
    """A ``cairn-server serve`` process on a free loopback port, with one organization."""

    def __init__(self, folder: Path) -> None:
        self.data = folder / "server-data"
        self.exe = Path(sys.executable).parent / "cairn-server"
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        folder.mkdir(parents=True, exist_ok=True)
        self._log = (folder / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [str(self.exe), "serve", "--data", str(self.data), "--port", str(port),
             "--purge-interval", "0", "--log-level", "warning"],
            stdout=self._log, stderr=subprocess.STDOUT)
        self._wait()
        org = self._cli("org", "create", f"bench-{secrets.token_hex(3)}", "--json")
        self.registration_key = json.loads(org)["registration_key"]

    def _cli(self, *args: str) -> str:
        done = subprocess.run([str(self.exe), *args, "--data", str(self.data)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise BenchError(f"cairn-server {args[0]} failed: {done.stderr.strip()}")
        return done.stdout

    def _wait(self) -> None:
        host, port = self.url.rsplit("/", 1)[1].split(":")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError("cairn-server exited at start; see server.log.")
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise BenchError("cairn-server did not start within 60 s.")

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self._log.close()


class CairnServer(Cairn):
    """Cairn's CLI registered with the local server: no --dest, the server is the default."""

    name = BASE

    def __init__(self, workdir: Path, server: LocalServer) -> None:
        super().__init__(workdir)
        self.server = server

    def settings(self) -> str:
        return f"{super().settings()}; to {self.server.url} over loopback HTTP, 4 uploads"

    def _env(self) -> dict[str, str]:
        return {"CAIRN_HOME": str(self.home / "state"), "CAIRN_PASSWORD": ACCOUNT_PASSWORD,
                "CAIRN_SECRET_STORE": "file"}

    def init_command(self) -> Command:
        return Command([str(self.exe), "register", "--server", self.server.url,
                        "--registration-key", self.server.registration_key,
                        "--username", "bench@example.test"], self._env())

    def backup_command(self, source: Path, run: int) -> Command:
        return Command([str(self.exe), "backup", str(source), "--json"], self._env())

    def restore_command(self, target: Path) -> Command:
        return Command([str(self.exe), "restore", "latest", "--target", str(target), "--json"],
                       self._env())

    def stored_bytes(self) -> int:
        return tree_bytes(self.server.data / "storage" / "objects")


def server_ratios(summaries: dict[str, dict]) -> str:
    """The server run's figure over each local-folder run's, per headline metric."""
    rows = [["cairn-server / peer", *PEERS, "better"]]
    mine = summaries[BASE]
    for metric in report.RATIO_METRICS:
        cells = []
        for peer in PEERS:
            theirs = summaries.get(peer, {}).get(metric.key)
            ratio = mine[metric.key] / theirs if mine[metric.key] is not None and theirs else None
            cells.append("-" if ratio is None else f"{ratio:.2f}x")
        rows.append([metric.label, *cells, metric.better])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def _run_all(source: Path, expected: object, workdir: Path, dropped: bool
             ) -> tuple[list[ToolResult], float]:
    server = LocalServer(workdir / BASE / "server")
    try:
        tools = [Cairn(workdir), CairnServer(workdir, server), Restic(workdir)]
        missing = [sentence for tool in tools if (sentence := tool.missing())]
        if missing:
            raise BenchError(" ".join(missing))
        results = []
        for tool in tools:
            cpu_before = server.cpu_seconds()
            results.append(run_tool(tool, source, expected, dropped))
            if tool.name == BASE:
                server_cpu = server.cpu_seconds() - cpu_before
        return results, server_cpu
    finally:
        server.stop()


def run(args: argparse.Namespace) -> int:
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    workdir = args.work.resolve() / time.strftime("server-run-%Y%m%d-%H%M%S")
    source, expected = engine_bench.prepare(args, workdir)
    tree = engine_bench.manifest.stats(expected)
    workdir.mkdir(parents=True)
    dropped, drop_note = (False, engine_bench.WARM_NOTE) if args.warm else can_drop_caches()
    try:
        results, server_cpu = _run_all(source, expected, workdir, dropped)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    machine = engine_bench.machine_info()
    header = [f"Cairn server benchmark, {started}", report.dataset_line(str(source), tree),
              f"Machine: {machine['cpus']} CPUs, {machine['system']}; client and server share "
              "it", f"Page cache: {drop_note}", "Settings:"]
    summaries = {r.name: report.summarize(r, tree.bytes) for r in results}
    print("\n".join(header))
    for result in results:
        print(f"  {result.name} {result.version}: {result.settings}")
    print()
    print(report.results_table(results, summaries))
    print(f"\ncairn-server process CPU during its three phases: {server_cpu:.1f} s "
          "(not included in the agent's CPU figures)\n")
    print(server_ratios(summaries))
    for result in results:
        if result.error or not result.verified:
            print(f"\nFAILED: {result.name}: {result.error or result.problems[:5]}")
    if args.json_out:
        args.json_out.write_text(json.dumps({
            "benchmark": "server", "started": started, "server_cpu_s": server_cpu,
            "tools": {r.name: report.result_json(r, summaries[r.name]) for r in results}},
            indent=2) + "\n")
    return 0 if all(r.verified and not r.error for r in results) else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        say("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
