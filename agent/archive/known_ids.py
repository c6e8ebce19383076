"""The known blob IDs of an archive, compact: a sorted array of 32-byte IDs.

Its own module, free of SQLite and the rest of the index cache, because every
seal worker process imports it (``agent.engine.sealworkers``).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence


class KnownIds:
    """A sorted array of 32-byte IDs: 32 bytes per blob, O(log n) membership."""

    def __init__(self, sorted_ids: bytes) -> None:
        self._ids = _IdArray(sorted_ids)

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def raw(self) -> bytes:
        """The sorted IDs, concatenated (to hand to worker processes)."""
        return self._ids.raw

    def __contains__(self, blob_id: bytes) -> bool:
        ids = self._ids
        i = bisect.bisect_left(ids, blob_id)
        return i < len(ids) and ids[i] == blob_id


class _IdArray(Sequence[bytes]):
    """Read-only view of concatenated 32-byte IDs as a sequence (for ``bisect``)."""

    def __init__(self, raw: bytes) -> None:
        self._raw = raw

    @property
    def raw(self) -> bytes:
        return self._raw

    def __len__(self) -> int:
        return len(self._raw) // 32

    def __getitem__(self, i):  # type: ignore[override]
        return self._raw[i * 32 : i * 32 + 32]
