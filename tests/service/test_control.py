"""Controlling a long backup through the API of the real `cairn run`: progress, pause,
resume, cancel, settings, SIGTERM — and archive-reading CLI commands meanwhile."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.api import schemas as s
from agent.api.client import ApiError
from tests.service.helpers import PASSPHRASE, Agent, wait_for

FILES = 40
LIMIT_KIB = 12 * 1024  # upload limit while nobody is at the computer (a Linux service: always)


def _batch(src: Path, name: str) -> None:
    """80 MiB of new, incompressible data: ~7 s of upload at the limit."""
    folder = src / name
    folder.mkdir(parents=True)
    for i in range(FILES):
        (folder / f"{i:03}.bin").write_bytes(os.urandom(2 << 20))


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Agent, Path]]:
    base = tmp_path_factory.mktemp("control")
    src = base / "src"
    (src / "start").mkdir(parents=True)
    (src / "start" / "hello.txt").write_text("hello")
    agent = Agent(base / "home")
    agent.add_set("docs", src, dest=base / "archive", every="1h")
    agent.config_set("resources.upload_limit_away", str(LIMIT_KIB))
    agent.config_set("resources.upload_limit_present", str(LIMIT_KIB))
    agent.start()
    try:
        agent.wait_run("docs", 0)
        yield agent, src
    finally:
        agent.kill()


def _start(agent: Agent) -> int:
    seq = agent.last_seq()
    with agent.client() as client:
        client.backup_now("docs")
    wait_for(lambda: agent.set_status("docs").state == s.BACKING_UP, what="backing up")
    return seq


def _read_archive(agent: Agent, results: list[tuple[int, str]]) -> None:
    """Run the archive-reading commands; note each one's exit code and the set's state after."""
    dest = str(agent.home.parent / "archive")
    for command in (("snapshots", "--json"), ("ls", "latest"), ("check",)):
        done = agent.cli(*command, "--dest", dest, env={"CAIRN_PASSPHRASE": PASSPHRASE},
                         check=False)
        results.append((done.returncode, agent.set_status("docs").state))


def test_progress_moves_and_archive_reads_work_meanwhile(big: tuple[Agent, Path]) -> None:
    agent, src = big
    _batch(src, "batch1")
    seq = _start(agent)
    reads: list[tuple[int, str]] = []
    reader = threading.Thread(target=_read_archive, args=(agent, reads))
    reader.start()
    samples: list[s.ProgressInfo] = []
    while (status := agent.status()).state == s.BACKING_UP:
        assert "scan" in status.why
        progress = status.sets[0].progress
        if progress is not None:
            samples.append(progress)
        time.sleep(0.1)
    run = agent.wait_run("docs", seq)
    reader.join()
    assert run.files_new == FILES
    done = [p.files_done for p in samples]
    assert done == sorted(done) and done[-1] == FILES, done  # never backwards
    stored = [p.bytes_stored for p in samples]  # grows pack by pack (16 MiB) with the upload
    assert stored == sorted(stored) and len(set(stored)) >= 3, stored
    assert any(p.current_file.startswith(str(src / "batch1")) for p in samples)
    assert all(p.rate_bps > 0 for p in samples if p.bytes_done)
    assert [code for code, _ in reads] == [0, 0, 0], reads  # snapshots, ls, check
    assert reads[0][1] == s.BACKING_UP  # ... while the backup held its lock


def test_pause_resume_and_cancel_through_the_api(big: tuple[Agent, Path]) -> None:
    agent, src = big
    _batch(src, "batch2")
    seq = _start(agent)
    with agent.client() as client:
        assert "paused" in client.pause(600).message
        run = agent.wait_run("docs", seq, result="paused")
        status = client.status()
        assert status.state == s.PAUSED and "paused by the user" in status.why
        assert status.paused_until is not None and status.sets[0].state == s.PAUSED
        with pytest.raises(ApiError, match="paused") as refused:
            client.backup_now("docs")
        assert refused.value.status == 409
        seq = client.events(0, 0)[1]
        client.resume()
        wait_for(lambda: agent.set_status("docs").state == s.BACKING_UP,
                 what="the paused backup to start again")
        assert "being cancelled" in client.cancel("docs").message
        run = agent.wait_run("docs", seq, result="cancelled")
        assert run.snapshot_id == ""
        status = client.status()
        assert status.state == s.IDLE
        next_time = status.sets[0].next_scheduled
        assert next_time is not None and next_time > run.finished  # not again right away
        changed = client.change_settings({"resources.upload_limit_away": "0",
                                          "resources.upload_limit_present": "0"})
        assert changed["resources"]["upload_limit_away"] == 0
    run = agent.backup_now("docs")  # unthrottled now
    assert run.files_new == FILES
    assert 'upload_limit_away = 0' in (agent.home / "config.toml").read_text()


def test_sigterm_during_a_backup_exits_quickly_and_cleanly(big: tuple[Agent, Path]) -> None:
    agent, src = big
    agent.config_set("resources.upload_limit_away", str(LIMIT_KIB))
    agent.config_set("resources.upload_limit_present", str(LIMIT_KIB))
    with agent.client() as client:
        wait_for(lambda: client.settings()["resources"]["upload_limit_away"] == LIMIT_KIB,
                 what="the edited config reloaded")
    _batch(src, "batch3")
    _start(agent)
    assert agent.stop(timeout=10) == 0  # SIGTERM; must exit within 10 s
    dest = agent.home.parent / "archive"
    assert list((dest / "locks").iterdir()) == []  # its shared lock was released
    state = json.loads((agent.home / "service" / "state.json").read_text())
    assert state["sets"]["docs"]["last_result"] == "interrupted"
    assert not (agent.home / "api.json").exists()
    check = agent.cli("check", "--dest", str(dest), env={"CAIRN_PASSPHRASE": PASSPHRASE})
    assert "No errors found" in check.stdout


def test_kill_9_during_a_backup_leaves_a_sound_archive(big: tuple[Agent, Path]) -> None:
    agent, src = big
    if agent.proc is None:  # the SIGTERM test stopped it
        agent.start()
    _batch(src, "batch4")
    _start(agent)
    wait_for(lambda: (p := agent.set_status("docs").progress) and p.bytes_stored > 0,
             what="a first pack stored")
    agent.kill()  # SIGKILL: no cleanup at all
    dest = str(agent.home.parent / "archive")
    env = {"CAIRN_PASSPHRASE": PASSPHRASE}
    assert "No errors found" in agent.cli("check", "--read-data", "--dest", dest, env=env).stdout
    agent.config_set("resources.upload_limit_away", "0")
    agent.config_set("resources.upload_limit_present", "0")
    agent.start()  # the interrupted run is due at once and adopts the stored packs
    run = agent.wait_run("docs", 0)
    assert run.scan == "full" and run.files_new >= FILES  # (batch3 too, after the SIGTERM test)
    assert run.bytes_stored < run.files_new * (2 << 20)  # packs stored before the kill: reused
    assert "No errors found" in agent.cli("check", "--read-data", "--dest", dest, env=env).stdout
