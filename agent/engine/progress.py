"""Progress counters a running job updates and any reader (CLI, service) samples.

Writers only add to integer fields (atomic enough under the GIL); readers take
a ``snapshot()`` copy. Nothing here calls back into a UI.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field


@dataclass
class Progress:
    phase: str = "starting"
    files_total: int = 0  # estimate from the counting scan; 0 while unknown
    bytes_total: int = 0
    files_done: int = 0
    bytes_done: int = 0
    bytes_stored: int = 0
    current: str = ""
    errors: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    totals_known: bool = False

    def snapshot(self) -> dict:
        doc = asdict(self)
        elapsed = max(time.monotonic() - self.started, 1e-6)
        doc["elapsed_s"] = elapsed
        doc["rate_bps"] = self.bytes_done / elapsed
        remaining = max(self.bytes_total - self.bytes_done, 0)
        known = self.totals_known and doc["rate_bps"]
        doc["eta_s"] = remaining / doc["rate_bps"] if known else None
        doc.pop("started")
        return doc
