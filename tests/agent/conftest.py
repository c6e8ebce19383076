"""Fixtures of the engine tests: archive keys for the pure stages, a CLI runner for the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.codec.keys import ArchiveKeys
from tests.agent.cairn_cli import Cairn


@pytest.fixture(scope="session")
def keys() -> ArchiveKeys:
    return ArchiveKeys.generate()


@pytest.fixture(scope="session")
def other_keys() -> ArchiveKeys:
    return ArchiveKeys.generate()


@pytest.fixture
def cairn(tmp_path: Path) -> Cairn:
    """A fresh agent home and a not-yet-created archive folder."""
    return Cairn(home=tmp_path / "home", dest=tmp_path / "archive")
