"""Fixtures of the agent ↔ server end-to-end tests: one real server, organizations, computers.

``server`` is one ``cairn-server serve`` process for the session (SQLite and the
filesystem store in a temporary data folder); tests stay out of each other's
way with their own organization (``org``). Tests that kill or reconfigure a
server start their own with ``launch_server``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.agent.strategies import random_bytes
from tests.agent.treespec import File, SparseFile, Symlink, build
from tests.e2e.helpers import Agent, Org, launch_server, make_org
from tests.server.helpers import ServerProcess

MiB = 1024 * 1024


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = launch_server(tmp_path_factory.mktemp("e2e-server") / "data")
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def org(server: ServerProcess) -> Org:
    return make_org(server)


@pytest.fixture
def computer(tmp_path: Path) -> Callable[[], Agent]:
    """Make computers: each call is a fresh agent home."""
    made: list[Agent] = []

    def make() -> Agent:
        agent = Agent(tmp_path / f"computer-{len(made)}")
        made.append(agent)
        return agent

    return make


def edge_tree() -> dict:
    shared = random_bytes(700 * 1024, 12)  # a chunked file, stored once for both copies
    return {
        "empty.txt": File(b""),
        "hello.txt": File(b"hello\n", mtime_ns=1_234_567_890_987_654_321),
        "run.sh": File(b"#!/bin/sh\necho hi\n", mode=0o755),
        "readonly.txt": File(b"read only", mode=0o444),
        "big.bin": File(random_bytes(3 * MiB, 11)),
        "dup-a.bin": File(shared),
        "nested": {"dup-b.bin": File(shared, mode=0o640), "empty-dir": {}},
        "sparse.img": SparseFile(4 * MiB, ((0, b"head"), (3 * MiB, b"tail"))),
        "links": {"to-file": Symlink("../hello.txt"), "dangling": Symlink("no/such/file"),
                  b"raw-target": Symlink(b"\xff-not-utf8")},
        "ünïcødé-名前.txt": File("ünïcødé".encode()),
        b"latin1-\xe9.bin": File(b"a name that is not UTF-8"),
        "with space 'quoted'.txt": File(b"space"),
        "deep": {"a": {"b": {"c": {"d": {"bottom.txt": File(b"deep")}}}}},
    }


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A folder full of edge cases (names, modes, links, sparse, duplicate and big files)."""
    return build(tmp_path / "documents", edge_tree())
