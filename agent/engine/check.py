"""Check: is every snapshot fully restorable?

Structure (always): the index is rebuilt from the destination's index files;
every snapshot's trees are read and verified; every blob a tree references
must be indexed, in a pack that exists and is long enough.

Data (``read_data``): every pack is read whole; its SHA-256 must equal its
name, its header must decrypt, and every blob in it must decrypt and hash to
its ID. Damaged packs are named, with the files (per snapshot) they affect.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from agent.archive.index_cache import BlobLocation, IndexCache
from agent.archive.locks import ArchiveLock
from agent.archive.repository import Repository
from agent.codec.envelope import open_blob
from agent.engine.progress import Progress
from agent.errors import CairnError
from agent.model.snapshot import Snapshot
from agent.model.tree import decode_name
from agent.pack.format import decode_header, header_length


@dataclass
class CheckReport:
    snapshots: int = 0
    trees: int = 0
    blobs: int = 0
    packs: int = 0
    packs_read: int = 0
    errors: list[str] = field(default_factory=list)
    damaged_packs: dict[str, str] = field(default_factory=dict)
    affected_files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.damaged_packs


def run_check(repo: Repository, read_data: bool = False,
              progress: Progress | None = None) -> CheckReport:
    progress = progress or Progress()
    shared_cache = repo.cache
    with tempfile.TemporaryDirectory(prefix="cairn-check-") as scratch:
        # A private index rebuilt from the destination: check never trusts (or
        # disturbs) the cache a running backup is using.
        repo.cache = IndexCache(Path(scratch) / "index.sqlite")
        try:
            return _check(repo, read_data, progress)
        finally:
            repo.cache.close()
            repo.cache = shared_cache


def _check(repo: Repository, read_data: bool, progress: Progress) -> CheckReport:
    report = CheckReport()
    progress.phase = "loading index"
    try:
        repo.sync_index()
    except CairnError as exc:
        report.errors.append(f"index: {exc}")
    for error in repo.unreadable_index_files.values():
        report.errors.append(f"index: {error} Its packs were read from their own headers; "
                             "`cairn rebuild-index` replaces the index.")
    stored = repo.dest.list("data")
    report.packs = len(stored)
    _check_pack_sizes(repo, stored, report)
    progress.phase = "checking snapshots"
    snaps = _load_snapshots(repo, report)
    bad_blobs: set[bytes] = set()
    _walk_snapshots(repo, snaps, stored, report, bad_blobs, collect_files=False)
    if read_data:
        progress.phase = "reading data"
        progress.files_total, progress.totals_known = len(stored), True
        progress.bytes_total = sum(stored.values())
        for name, size in sorted(stored.items()):
            reason = _read_pack(repo, name, size)
            if reason:
                report.damaged_packs[name] = reason
                bad_blobs.update(blob_id for blob_id, _ in repo.cache.blobs_of_pack(name))
            report.packs_read += 1
            progress.files_done += 1
            progress.bytes_done += size
    if bad_blobs:
        _walk_snapshots(repo, snaps, stored, report, bad_blobs, collect_files=True)
    progress.phase = "done"
    return report


def _check_pack_sizes(repo: Repository, stored: dict[str, int], report: CheckReport) -> None:
    ends: dict[str, int] = {}

    def visit(_blob_id: bytes, loc: BlobLocation) -> None:
        ends[loc.pack] = max(ends.get(loc.pack, 0), loc.offset + loc.length)

    repo.cache.each_blob(visit)
    for pack, end in ends.items():
        if pack not in stored:
            report.errors.append(f"pack {pack[:12]} is in the index but missing")
        elif stored[pack] < end:
            report.damaged_packs[pack] = "shorter than the index says (truncated)"


def _load_snapshots(repo: Repository, report: CheckReport) -> list[Snapshot]:
    snaps = []
    for name in repo.dest.list("snapshots"):
        try:
            snaps.append(repo.load_snapshot(name))
        except CairnError as exc:
            report.errors.append(f"snapshot {name[:8]}: {exc}")
    report.snapshots = len(snaps)
    return snaps


def _walk_snapshots(repo: Repository, snaps: list[Snapshot], stored: dict[str, int],
                    report: CheckReport, bad: set[bytes], *, collect_files: bool) -> None:
    """Verify trees and references; with ``collect_files``, name files using ``bad`` blobs."""
    seen_trees: set[str] = set()
    seen_blobs: set[bytes] = set()
    for snap in snaps:
        stack = [(snap.tree, "")]
        while stack:
            tree_id, prefix = stack.pop()
            if not collect_files and tree_id in seen_trees:
                continue
            seen_trees.add(tree_id)
            try:
                nodes = repo.tree(tree_id)
            except CairnError as exc:
                if not collect_files:
                    report.errors.append(f"tree {tree_id[:12]} (in {prefix or '/'}): {exc}")
                else:
                    report.affected_files.append(f"{snap.id[:8]}:{prefix or '/'} (whole folder)")
                continue
            for node in nodes:
                path = f"{prefix}/{decode_name(node, 'name')}"
                if node["type"] == "dir" and node.get("subtree"):
                    stack.append((node["subtree"], path))
                ids = [bytes.fromhex(h) for h in node.get("content", ())]
                if collect_files:
                    if any(i in bad for i in ids):
                        report.affected_files.append(f"{snap.id[:8]}:{path}")
                    continue
                for blob_id in ids:
                    if blob_id not in seen_blobs:
                        seen_blobs.add(blob_id)
                        _check_reference(repo, blob_id, stored, path, report, bad)
    if not collect_files:
        report.trees, report.blobs = len(seen_trees), len(seen_blobs)


def _check_reference(repo: Repository, blob_id: bytes, stored: dict[str, int], path: str,
                     report: CheckReport, bad: set[bytes]) -> None:
    loc = repo.cache.lookup(blob_id)
    if loc is None:
        report.errors.append(f"blob {blob_id.hex()[:12]} of {path} is not in the index")
        bad.add(blob_id)
    elif loc.pack not in stored:
        bad.add(blob_id)


def _read_pack(repo: Repository, name: str, size: int) -> str | None:
    """None if the pack is intact, else why not."""
    try:
        data = repo.dest.read("data", name)
    except CairnError as exc:
        return f"unreadable: {exc}"
    if hashlib.sha256(data).hexdigest() != name:
        reason = "content does not match its name (damaged)"
    else:
        reason = None
    try:
        length = header_length(data, len(data))
        entries = decode_header(repo.keys, data[len(data) - 4 - length : len(data) - 4], len(data))
    except CairnError as exc:
        return reason or f"header: {exc}"
    for entry in entries:
        try:
            open_blob(repo.keys, entry.type, entry.id,
                      memoryview(data)[entry.offset : entry.offset + entry.length],
                      entry.raw_length)
        except CairnError as exc:
            return f"blob {entry.id.hex()[:12]} at offset {entry.offset}: {exc}"
    return reason


def run_rebuild_index(repo: Repository, progress: Progress | None = None) -> tuple[int, int]:
    """Replace the archive's index files with new ones read from every pack's header,
    under the exclusive lock. Returns (packs indexed, packs whose header is damaged)."""
    progress = progress or Progress()
    progress.phase = "reading pack headers"

    def advance(done: int, total: int) -> None:
        progress.files_done, progress.files_total, progress.totals_known = done, total, True

    lock = ArchiveLock(repo.dest, repo.keys, exclusive=True).acquire()
    try:
        return repo.rebuild_index(advance)
    finally:
        lock.release()
