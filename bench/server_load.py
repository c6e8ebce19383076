#!/usr/bin/env python3
"""Load test of one Cairn server on loopback: N devices register and upload packs at once.

    .venv/bin/python bench/server_load.py [--devices 50] [--packs 4] [--pack-mib 4]

Starts ``cairn-server serve`` (SQLite + filesystem store, the embedded default)
in a fresh folder under ``bench/.work/``, creates an MSP organization with the
admin CLI, then runs N simulated devices concurrently: each registers with the
organization's key (a new user per device, so every registration hashes a
password and takes a license), then uploads its packs (random bytes, so nothing
dedups). Prints throughput and p50/p99 latency for registrations and uploads.

Bounded on purpose: at most 500 devices, 64 packs each, 64 MiB per pack, and a
wall-time limit (``--max-seconds``, default 600) after which the run stops. It
talks only to the server it started, on 127.0.0.1. The work folder is removed
afterwards unless ``--keep``. Exit status 0 when every request succeeded, 1
otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
AGENT_VERSION = "1.0.0"
MIB = 1024 * 1024


@dataclass
class Timings:
    """Latencies (seconds) of one kind of request, and failures seen."""

    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def cairn_server() -> list[str]:
    script = Path(sys.executable).parent / "cairn-server"
    return [str(script)] if script.exists() else [sys.executable, "-m", "server"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(data: Path, port: int) -> subprocess.Popen[bytes]:
    log = (data.parent / "server.log").open("wb")
    return subprocess.Popen([*cairn_server(), "serve", "--data", str(data), "--host",
                             "127.0.0.1", "--port", str(port), "--purge-interval", "0",
                             "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT)


def wait_until_up(url: str, proc: subprocess.Popen[bytes], limit_s: float = 90) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"cairn-server exited with status {proc.returncode}")
        try:
            if httpx.get(url + "/api/v1/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("cairn-server did not start within 90 s")


def create_org(data: Path) -> str:
    made = subprocess.run([*cairn_server(), "org", "create", "Bench MSP", "--json", "--data",
                           str(data)], capture_output=True, text=True, check=True)
    return json.loads(made.stdout)["registration_key"]


async def register(client: httpx.AsyncClient, key: str, index: int, reg: Timings) -> str | None:
    """Register device ``index`` as a new user; its token, or None on failure."""
    body = {"registration_key": key, "username": f"bench-{index}-{secrets.token_hex(3)}@bench",
            "password": "bench password " + secrets.token_hex(4),
            "device": {"guid": secrets.token_hex(8), "name": f"pc-{index}", "os": "Linux"}}
    started = time.perf_counter()
    response = await client.post("/api/v1/register", json=body,
                                 headers={"Cairn-Agent-Version": AGENT_VERSION})
    reg.latencies.append(time.perf_counter() - started)
    if response.status_code != 201:
        reg.failures.append(f"{response.status_code} {response.text[:200]}")
        return None
    return str(response.json()["device_token"])


async def upload(client: httpx.AsyncClient, token: str, index: int, args: argparse.Namespace,
                 up: Timings) -> int:
    """Upload this device's packs one after another; bytes stored."""
    headers = {"Cairn-Agent-Version": AGENT_VERSION, "Authorization": f"Bearer {token}"}
    rng = random.Random(index)
    sent = 0
    for _ in range(args.packs):
        pack = rng.randbytes(args.pack_mib * MIB)
        name = hashlib.sha256(pack).hexdigest()
        started = time.perf_counter()
        response = await client.put(f"/api/v1/archive/objects/data/{name}", content=pack,
                                    headers=headers)
        up.latencies.append(time.perf_counter() - started)
        if response.status_code != 201:
            up.failures.append(f"{response.status_code} {response.text[:200]}")
        else:
            sent += len(pack)
    return sent


async def run_load(url: str, key: str, args: argparse.Namespace) -> dict[str, Any]:
    """All devices register at once; then all of them upload at once."""
    reg, up = Timings(), Timings()
    limits = httpx.Limits(max_connections=args.devices, max_keepalive_connections=args.devices)
    async with httpx.AsyncClient(base_url=url, timeout=args.max_seconds, limits=limits) as client:
        started = time.perf_counter()
        tokens = await asyncio.gather(*(register(client, key, i, reg)
                                        for i in range(args.devices)))
        reg_wall = time.perf_counter() - started
        started = time.perf_counter()
        sent = await asyncio.gather(*(upload(client, token, i, args, up)
                                      for i, token in enumerate(tokens) if token))
        up_wall = time.perf_counter() - started
    return {"reg": reg, "up": up, "bytes": sum(sent), "reg_wall": reg_wall, "up_wall": up_wall}


def report(result: dict[str, Any], args: argparse.Namespace) -> bool:
    reg, up, sent = result["reg"], result["up"], result["bytes"]
    reg_wall, up_wall = result["reg_wall"], result["up_wall"]
    print(f"Cairn server load test: {args.devices} devices x {args.packs} packs of "
          f"{args.pack_mib} MiB, one server on 127.0.0.1 (SQLite + filesystem store), "
          f"{os.cpu_count()} CPUs")
    print(f"  registrations: {len(reg.latencies)} concurrent, {reg_wall:.1f} s = "
          f"{len(reg.latencies) / reg_wall:.1f}/s; p50 {reg.percentile(0.5) * 1000:.0f} ms, "
          f"p99 {reg.percentile(0.99) * 1000:.0f} ms")
    print(f"  uploads:       {len(up.latencies)} packs, {sent / MIB:.0f} MiB in {up_wall:.1f} s "
          f"= {sent / MIB / up_wall:.1f} MiB/s, {len(up.latencies) / up_wall:.1f} packs/s; "
          f"p50 {up.percentile(0.5) * 1000:.0f} ms, p99 {up.percentile(0.99) * 1000:.0f} ms")
    failures = reg.failures + up.failures
    for failure in failures[:10]:
        print(f"  FAILED: {failure}")
    return not failures


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=50, help="simulated devices (max 500)")
    parser.add_argument("--packs", type=int, default=4, help="packs per device (max 64)")
    parser.add_argument("--pack-mib", type=int, default=4, help="pack size in MiB (max 64)")
    parser.add_argument("--max-seconds", type=float, default=600, help="wall-time limit")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    if not (1 <= args.devices <= 500 and 1 <= args.packs <= 64 and 1 <= args.pack_mib <= 64
            and 0 < args.max_seconds <= 3600):
        parser.error("out of bounds: 1-500 devices, 1-64 packs, 1-64 MiB, at most 3600 s")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work_root = ROOT / "bench" / ".work"
    work_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="server-load-", dir=work_root))
    port = free_port()
    proc = start_server(work / "data", port)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url, proc)
        key = create_org(work / "data")
        ok = report(asyncio.run(asyncio.wait_for(run_load(url, key, args),
                                                 timeout=args.max_seconds)), args)
    except TimeoutError:
        print(f"Stopped: the run exceeded --max-seconds {args.max_seconds:g}.")
        ok = False
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
