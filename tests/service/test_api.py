"""The local control API of the real `cairn run`: archives, tasks, events, errors, CLI clients."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent.api import schemas as s
from agent.api.client import ApiError
from tests.service.helpers import PASSPHRASE, Agent, make_tree, wait_for


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Agent, Path]]:
    base = tmp_path_factory.mktemp("api")
    src = base / "src"
    make_tree(src, 3, 4)
    agent = Agent(base / "home")
    agent.add_set("docs", src, dest=base / "archive", every="1h")
    agent.add_set("remote", src, dest=Path("server"), every="1h")
    agent.start()
    try:
        agent.wait_run("docs", 0)
        yield agent, src
    finally:
        agent.stop()


def test_status_shows_every_set(svc: tuple[Agent, Path]) -> None:
    agent, src = svc
    status = agent.status()
    assert status.mode == "user" and status.agent_version and len(status.device_id) >= 32
    docs, remote = status.sets
    assert docs.name == "docs" and docs.paths == [str(src)]
    assert docs.last_completed and docs.last_snapshot and docs.next_scheduled
    assert docs.destination_type == "local folder" and docs.watching
    assert remote.state == s.NOT_REGISTERED and remote.destination_type == "cairn server"
    assert status.state == s.NOT_REGISTERED  # one set cannot run until registration


def test_browse_and_restore_as_a_task(svc: tuple[Agent, Path], tmp_path: Path) -> None:
    agent, src = svc
    with agent.client() as client:
        snaps = client.snapshots("docs")
        assert snaps and snaps[0].files_total == 12
        root = client.browse("docs", snaps[0].id[:8], "/")
        assert [e.name for e in root] == [src.parts[1]] and root[0].type == "dir"
        listing = client.browse("docs", "latest", str(src / "d001"))
        assert [e.name for e in listing] == [f"f{i:03}.txt" for i in range(4)]
        task = client.restore("docs", "latest", str(tmp_path / "out"),
                              includes=[str(src / "d001")])
        done = client.wait_task(task.id, 60)
    assert done.status == s.TASK_SUCCESS and done.result["files"] == 4
    assert done.progress.files_done == 4 and done.progress.totals_known
    restored = tmp_path / "out" / src.relative_to("/") / "d001" / "f002.txt"
    assert restored.read_bytes() == (src / "d001" / "f002.txt").read_bytes()


def test_a_damaged_snapshot_file_hides_only_itself(svc: tuple[Agent, Path]) -> None:
    """A snapshot file that fails authentication (bit rot, tampering) is left out of the
    tray's list; the others stay listed and browsable."""
    agent, src = svc
    junk = bytes(range(256)) * 4
    planted = src.parent / "archive" / "snapshots" / hashlib.sha256(junk).hexdigest()
    with agent.client() as client:
        before = client.snapshots("docs")
        planted.write_bytes(junk)
        try:
            assert [snap.id for snap in client.snapshots("docs")] == [s.id for s in before]
            assert client.browse("docs", "latest", "/")
        finally:
            planted.unlink()


def test_refusals_are_clear_sentences(svc: tuple[Agent, Path]) -> None:
    agent, _src = svc
    with agent.client() as client:
        for call, status, text in [
            (lambda: client.backup_now("nope"), 400, "no backup set named 'nope'"),
            (lambda: client.browse("docs", "latest", "/no/such/dir"), 400, "is not a folder"),
            (lambda: client.restore("docs", "latest", "relative/out"), 400, "absolute"),
            (lambda: client.task("abc123"), 404, "No such item"),
            (lambda: client.change_settings({"resources.cpu_away": "lots"}), 400,
             "whole number"),
            (lambda: client.pause(-5), 400, "longer than zero"),
        ]:
            with pytest.raises(ApiError, match=text) as refused:
                call()
            assert refused.value.status == status
        assert client.settings()["resources"]["cpu_away"] == 100  # nothing changed
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(agent.home / "agent.sock")),
                      base_url="http://cairn") as raw:
        assert raw.post("/v1/backup", content=b"{not json").status_code == 400
        assert raw.get("/v1/backup").status_code == 405
        assert raw.get("/v1/nothing").json()["error"] == "No such API path: /v1/nothing."


def test_events_stream_follows_pause_and_resume(svc: tuple[Agent, Path]) -> None:
    agent, _src = svc
    seen: list[s.Event] = []
    client = agent.client()
    after = client.events(0, 0)[1]

    def follow() -> None:
        for event in agent.client().stream_events(after):
            seen.append(event)
            if event.type == "resumed":
                return

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    client.pause(3600)
    client.resume()
    reader.join(10)
    client.close()
    assert [e.type for e in seen if e.type in ("paused", "resumed")] == ["paused", "resumed"]
    assert [e.seq for e in seen] == sorted(e.seq for e in seen) and seen[0].seq > after


def test_prune_through_the_api_with_the_retention_table(svc: tuple[Agent, Path]) -> None:
    agent, src = svc
    for i in range(2):
        (src / "d000" / f"more{i}.txt").write_text(str(i))
        wait_for(lambda: agent.set_status("docs").changed_paths >= 1, what="journaled")
        agent.backup_now("docs")
    with agent.client() as client:
        client.pause()  # no scheduled run while the clock jumps
        try:
            assert len(client.snapshots("docs")) == 3
            agent.clock.write_text(str(400 * 86400))  # all three are now 400 days old
            dry = client.wait_task(client.prune("docs", dry_run=True).id, 60)
            assert dry.status == s.TASK_SUCCESS and dry.result["dry_run"] is True
            assert sum(x["action"] == "forget" for x in dry.result["snapshots"]) == 2
            assert len(client.snapshots("docs")) == 3  # a dry run changes nothing
            real = client.wait_task(client.prune("docs", dry_run=False).id, 60)
            assert real.status == s.TASK_SUCCESS, real.error
            assert len(client.snapshots("docs")) == 1  # one per month beyond a year
        finally:
            client.resume()
    check = agent.cli("check", "--read-data", "--dest", str(agent.home.parent / "archive"),
                      env={"CAIRN_PASSPHRASE": PASSPHRASE})
    assert "No errors found" in check.stdout


def test_cli_status_pause_and_resume(svc: tuple[Agent, Path]) -> None:
    agent, _src = svc
    doc = json.loads(agent.cli("status", "--json").stdout)
    assert doc["state"] in s.STATES and [x["name"] for x in doc["sets"]] == ["docs", "remote"]
    assert "Backups paused for 10m" in agent.cli("pause", "10m").stdout
    assert agent.status().state == s.PAUSED
    assert "docs: paused" in agent.cli("status").stdout
    agent.cli("resume")
    assert agent.status().state != s.PAUSED
    assert "must be a duration" in agent.cli("pause", "soon", check=False).stderr


def test_cli_status_without_a_service(tmp_path: Path) -> None:
    agent = Agent(tmp_path / "home")
    agent.add_set("docs", tmp_path, dest=tmp_path / "archive")
    doc = json.loads(agent.cli("status", "--json").stdout)
    assert doc["state"] == s.STOPPED and doc["sets"][0]["name"] == "docs"
    refused = agent.cli("pause", check=False)
    assert refused.returncode == 2 and "not running" in refused.stderr
