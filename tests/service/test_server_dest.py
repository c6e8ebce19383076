"""A backup set whose destination is the Cairn server this computer is registered with."""

from __future__ import annotations

import json
from pathlib import Path

from agent.api import schemas as s
from tests.e2e.helpers import PASSWORD, launch_server, make_org, user_name
from tests.service.helpers import Agent, make_tree


def test_service_backs_up_to_the_registered_server(tmp_path: Path) -> None:
    server = launch_server(tmp_path / "server-data")
    try:
        org = make_org(server)
        make_tree(tmp_path / "src", 2, 3)
        agent = Agent(tmp_path / "home", env={"CAIRN_PASSWORD": PASSWORD})
        agent.add_set("cloud", tmp_path / "src", dest=Path("server"))
        before = json.loads(agent.cli("status", "--json").stdout)["sets"][0]
        assert before["destination_type"] == "cairn server"
        assert "not registered" in before["destination"]
        agent.cli("register", "--server", server.url, "--registration-key", org.key,
                  "--username", user_name())
        guid = json.loads((agent.home / "server.json").read_text())["device_guid"]
        agent.start()
        try:
            run = agent.wait_run("cloud", 0)
            assert run.files_new == 6
            status = agent.status()
            assert status.state == s.IDLE and status.device_id == guid
            assert status.sets[0].destination == server.url
            with agent.client() as client:
                (snap,) = client.snapshots("cloud")
            assert snap.device == guid
        finally:
            agent.stop()
    finally:
        server.stop()
