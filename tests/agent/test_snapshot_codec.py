"""Snapshot documents: round trip, newer versions refused, garbage is an integrity error."""

from __future__ import annotations

import json

import pytest

from agent.errors import IntegrityError, NewerFormat
from agent.model.snapshot import Snapshot, now_iso


def sample() -> Snapshot:
    return Snapshot(time=now_iso(), host="laptop", device="dev-1", username="ann",
                    paths=["/home/ann/Documents"], tree="ab" * 32, parent=None,
                    summary={"files_total": 3}, program_version="0.1.0")


def test_round_trip_keeps_every_field_but_the_id() -> None:
    snap = sample()
    back = Snapshot.decode(snap.encode(), "cd" * 32)
    assert back.id == "cd" * 32
    back.id = snap.id
    assert back == snap


def test_unknown_fields_are_ignored_and_newer_versions_refused() -> None:
    doc = json.loads(sample().encode())
    doc["added_later"] = True
    assert Snapshot.decode(json.dumps(doc).encode(), "ef" * 32).host == "laptop"
    doc["version"] = 2
    with pytest.raises(NewerFormat):
        Snapshot.decode(json.dumps(doc).encode(), "ef" * 32)


@pytest.mark.parametrize("raw", [b"", b"[]", b"{}", b'{"version": "x"}', b'{"version": 1}',
                                 b"\xff"])
def test_garbage_is_an_integrity_error(raw: bytes) -> None:
    with pytest.raises(IntegrityError):
        Snapshot.decode(raw, "00" * 32)
