"""Outages: the server killed mid-backup, the agent killed mid-backup, requests dropped."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.agent.strategies import random_bytes
from tests.agent.treespec import manifest, restored
from tests.e2e.faulty_proxy import FaultyProxy
from tests.e2e.helpers import (
    Agent,
    Org,
    finish,
    kill9,
    launch_server,
    make_org,
    user_name,
    wait_for,
)
from tests.server.helpers import ServerProcess

MiB = 1024 * 1024


def _big_tree(root: Path, files: int, size: int) -> int:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (root / f"part-{i}.bin").write_bytes(random_bytes(size, 100 + i))
    return files * size


def _packs(server: ServerProcess) -> dict[str, int]:
    """Every data pack in the server's filesystem store, name → size."""
    return {p.name: p.stat().st_size
            for p in (server.data / "storage" / "objects").glob("*/data/*/*") if p.is_file()}


def test_server_killed_and_restarted_mid_backup(tmp_path: Path, tree: Path,
                                                computer: Callable[[], Agent]) -> None:
    data = tmp_path / "server-data"
    server = launch_server(data)
    port = int(server.url.rsplit(":", 1)[1])
    try:
        org = make_org(server)
        pc = computer()
        pc.register(org, user_name())
        _big_tree(tree / "bulk", 2, 16 * MiB)
        args = ("backup", str(tree), "--json", "--limit-rate", "8M")
        running = pc.start(*args)
        wait_for(lambda: len(_packs(server)) >= 1, what="a first pack on the server")
        server.kill9()
        time.sleep(1.0)
        server = launch_server(data, port)
        done = finish(running, args)  # the run retried through the outage and completed
        assert "snapshot_id" in done.json()
        assert pc.json("check", "--read-data")["ok"]
        pc.json("restore", "latest", "--target", tmp_path / "out")
        assert manifest(restored(tmp_path / "out", tree)) == manifest(tree)
    finally:
        server.stop()


def test_killed_backup_resumes_without_uploading_again(server: ServerProcess, tmp_path: Path,
                                                       computer: Callable[[], Agent]) -> None:
    pc = computer()
    org = make_org(server)
    pc.register(org, user_name())
    source = tmp_path / "bulk"
    total = _big_tree(source, 3, 16 * MiB)
    before = set(_packs(server))
    args = ("backup", str(source), "--json", "--limit-rate", "8M")
    running = pc.start(*args)
    wait_for(lambda: len(set(_packs(server)) - before) >= 1, what="a first pack")
    kill9(running)
    stored_first = {n: s for n, s in _packs(server).items() if n not in before}
    assert 0 < sum(stored_first.values()) < total

    second = pc.json("backup", source)
    # Only what the killed run had not stored yet went up again.
    assert second["bytes_stored"] <= total - sum(stored_first.values()) + 2 * MiB
    mine = {n: s for n, s in _packs(server).items() if n not in before}
    assert sum(mine.values()) < total * 1.02  # no content is stored twice
    assert pc.json("check", "--read-data")["ok"]


def test_backup_completes_through_a_network_dropping_20_percent(
        server: ServerProcess, tree: Path, tmp_path: Path,
        computer: Callable[[], Agent]) -> None:
    org: Org = make_org(server)
    _big_tree(tree / "bulk", 1, 10 * MiB)
    with FaultyProxy(server.url, drop=0.2) as proxy:
        pc = computer()
        pc.register(org, user_name(), url=proxy.url)
        assert pc.json("backup", tree)["destination"] == proxy.url
        assert pc.json("check", "--read-data")["ok"]
        pc.json("restore", "latest", "--target", tmp_path / "out")
        assert manifest(restored(tmp_path / "out", tree)) == manifest(tree)
        assert proxy.dropped["before"] > 0 and proxy.dropped["after"] > 0
