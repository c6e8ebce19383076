"""Scheduling with the real `cairn run`: missed runs after sleep, unreachable destinations."""

from __future__ import annotations

import time
from pathlib import Path

from agent.api import schemas as s
from tests.service.helpers import Agent, make_tree, wait_for


def _snapshots(agent: Agent, name: str) -> int:
    with agent.client() as client:
        return len(client.snapshots(name))


def test_missed_run_after_sleep_runs_on_wake_with_a_full_scan(tmp_path: Path) -> None:
    make_tree(tmp_path / "src", 3, 3)
    agent = Agent(tmp_path / "home")
    clock = agent.clock
    agent.add_set("docs", tmp_path / "src", dest=tmp_path / "archive", every="1h",
                  extra=("--verify-at", ""))
    agent.start()
    try:
        agent.wait_run("docs", 0)
        seq = agent.last_seq()
        for _ in range(3):  # a few scheduler ticks: nothing is due for an hour
            time.sleep(0.5)
            assert _snapshots(agent, "docs") == 1
        clock.write_text(str(2 * 3600))  # wall time jumps 2 h, monotonic time does not
        run = agent.wait_run("docs", seq)
        assert run.scan == "full" and "slept" in run.scan_reason
        assert _snapshots(agent, "docs") == 2
        assert "catching up" in agent.output()
    finally:
        agent.stop()


def test_waits_for_an_unplugged_destination(tmp_path: Path) -> None:
    make_tree(tmp_path / "src", 2, 2)
    drive = tmp_path / "usb-drive"
    agent = Agent(tmp_path / "home")
    agent.add_set("docs", tmp_path / "src", dest=drive / "cairn", every="1h")
    agent.start()
    try:
        status = agent.status()
        assert status.state == s.WAITING_FOR_DESTINATION
        assert "usb-drive" in status.sets[0].why
        seq = agent.last_seq()
        drive.mkdir()  # the drive is plugged in
        agent.wait_run("docs", seq)
        assert agent.status().state == s.IDLE
        (drive / "cairn").rename(tmp_path / "elsewhere")  # unplugged again, mount point stays
        status = agent.set_status("docs")
        assert status.state == s.WAITING_FOR_DESTINATION  # not recreated on the wrong disk
        seq = agent.last_seq()
        with agent.client() as client:
            client.backup_now("docs")
        run = agent.wait_run("docs", seq, result="failed")
        assert "is not available" in run.error
        status = agent.set_status("docs")
        assert status.state == s.WAITING_FOR_DESTINATION and "next try within" in status.why
        assert not (drive / "cairn").exists()
    finally:
        agent.stop()


def test_invalid_config_refuses_to_start_with_a_sentence(tmp_path: Path) -> None:
    agent = Agent(tmp_path / "home")
    (agent.home / "config.toml").write_text('[resources]\ncpu_away = "lots"\n')
    done = agent.cli("run", check=False)
    assert done.returncode == 2
    assert "resources.cpu_away must be a whole number" in done.stderr
    assert "Traceback" not in done.stderr


def test_second_service_on_the_same_home_is_refused(tmp_path: Path) -> None:
    agent = Agent(tmp_path / "home")
    agent.start()
    try:
        done = agent.cli("run", check=False)
        assert done.returncode == 2 and "already running" in done.stderr
        assert agent.status().state == s.IDLE
    finally:
        agent.stop()


def test_backup_without_paths_runs_every_set(tmp_path: Path) -> None:
    make_tree(tmp_path / "a", 2, 2)
    make_tree(tmp_path / "b", 2, 2)
    agent = Agent(tmp_path / "home")
    agent.add_set("one", tmp_path / "a", dest=tmp_path / "archive", every="1d")
    agent.add_set("two", tmp_path / "b", dest=tmp_path / "archive", every="1d")
    direct = agent.cli("backup", "--json")  # no service: runs here, in this process
    assert "one" in direct.stdout and '"result": "success"' in direct.stdout
    agent.start()
    try:
        wait_for(lambda: all(x.state == s.IDLE for x in agent.status().sets), what="idle")
        (tmp_path / "b" / "d000" / "new.txt").write_text("new")
        through = agent.cli("backup")  # through the running service
        assert "two: success" in through.stdout and "1 new" in through.stdout
    finally:
        agent.stop()
