"""Snapshots: what one backup run saw (docs/format.md, "Snapshots")."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from agent.errors import IntegrityError, NewerFormat

SNAPSHOT_VERSION = 1


@dataclass
class Snapshot:
    """One snapshot file's content; ``id`` is the file's name (not stored inside)."""

    time: str
    host: str
    device: str
    username: str
    paths: list[str]
    tree: str
    parent: str | None = None
    summary: dict = field(default_factory=dict)
    program_version: str = ""
    version: int = SNAPSHOT_VERSION
    id: str = ""

    def encode(self) -> bytes:
        doc = asdict(self)
        doc.pop("id")
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, plain: bytes, snapshot_id: str) -> Snapshot:
        try:
            doc = json.loads(plain)
            version = int(doc["version"])
        except (ValueError, KeyError, TypeError, OverflowError) as exc:
            raise IntegrityError(f"Snapshot {snapshot_id[:8]} is not valid.") from exc
        if version > SNAPSHOT_VERSION:
            raise NewerFormat(f"Snapshot {snapshot_id[:8]} has a newer format; upgrade Cairn.")
        known = {k: doc[k] for k in cls.__dataclass_fields__ if k in doc and k != "id"}
        try:
            snap = cls(**known, id=snapshot_id)
        except TypeError as exc:
            raise IntegrityError(f"Snapshot {snapshot_id[:8]} is missing fields.") from exc
        text_ok = all(isinstance(v, str) for v in (snap.time, snap.host, snap.device, snap.tree))
        if not text_ok or not isinstance(snap.paths, list) or not isinstance(snap.summary, dict):
            raise IntegrityError(f"Snapshot {snapshot_id[:8]} has malformed fields.")
        return snap

    @property
    def datetime(self) -> datetime:
        return datetime.fromisoformat(self.time)

    @property
    def is_carry(self) -> bool:
        """A carry snapshot: deleted files kept by retention (docs/format.md, "Carry")."""
        return isinstance(self.summary, dict) and self.summary.get("carry") is True


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")
