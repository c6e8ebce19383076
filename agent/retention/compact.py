"""Compaction: which packs to keep, rewrite or remove once the live blobs are known.

A blob is live when a stored snapshot reaches it. Every blob has one chosen copy
(the cache's location; other copies count as dead). Per indexed pack:

- first seen by this computer within the grace period (*young*): kept as it is;
- no live blob: removed;
- at least ``REPACK_DEAD_SHARE`` of its blob bytes dead: rewritten, i.e. its live
  blobs are copied, sealed bytes as they are, into new packs, then it is removed;
- otherwise kept as it is.

Packs no index file lists are never touched: a running backup may be about to
index them, and the next backup adopts the ones a killed run left.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from agent.archive.index_cache import BlobLocation, IndexCache
from agent.archive.index_file import IndexContent
from agent.archive.reach import reachable
from agent.archive.repository import Repository
from agent.codec.envelope import ObjectType
from agent.errors import IntegrityError
from agent.model.tree import decode_tree
from agent.pack.format import PackEntry
from agent.pack.writer import FinishedPack, PackWriter

REPACK_DEAD_SHARE = 0.5


@dataclass
class PackPlan:
    keep: dict[str, list[PackEntry]] = field(default_factory=dict)  # pack -> index entries
    repack: dict[str, list[PackEntry]] = field(default_factory=dict)  # pack -> live entries
    gone: dict[str, list[PackEntry]] = field(default_factory=dict)  # removed -> all entries
    sizes: dict[str, int] = field(default_factory=dict)
    dead: dict[str, int] = field(default_factory=dict)  # removed pack -> its dead blobs
    young: int = 0

    @property
    def removed(self) -> set[str]:
        """Packs to remove: those with no live blob and those rewritten."""
        return set(self.gone)

    @property
    def deleted(self) -> set[str]:
        return set(self.gone) - set(self.repack)

    def doomed(self) -> dict[bytes, BlobLocation]:
        """Where each blob of a removed pack lives until the pack is removed."""
        return {e.id: BlobLocation(pack, e.type, e.offset, e.length, e.raw_length)
                for pack, entries in self.gone.items() for e in entries}


def plan_packs(cache: IndexCache, stored: dict[str, int], live: set[bytes],
               young: set[str]) -> PackPlan:
    """Sort every indexed pack into keep / rewrite / remove."""
    by_pack: dict[str, list[PackEntry]] = {name: [] for name in cache.pack_names()}

    def visit(blob_id: bytes, loc: BlobLocation) -> None:
        by_pack[loc.pack].append(PackEntry(loc.type, blob_id, loc.offset, loc.length,
                                           loc.raw_length))

    cache.each_blob(visit)
    plan = PackPlan()
    for pack, entries in sorted(by_pack.items()):
        if pack not in stored:
            raise IntegrityError(f"Pack {pack[:12]} is in the index but missing from the "
                                 "destination; run `cairn check` before pruning.")
        entries.sort(key=lambda e: e.offset)
        plan.sizes[pack] = stored[pack]
        if pack in young:
            plan.keep[pack], plan.young = entries, plan.young + 1
            continue
        alive = [e for e in entries if e.id in live]
        dead_bytes = sum(e.length for e in entries) - sum(e.length for e in alive)
        if alive and dead_bytes < REPACK_DEAD_SHARE * sum(e.length for e in entries):
            plan.keep[pack] = entries
            continue
        plan.gone[pack], plan.dead[pack] = entries, len(entries) - len(alive)
        if alive:
            plan.repack[pack] = alive
    return plan


def repack(repo: Repository, plan: PackPlan,
           on_pack: Callable[[], None] = lambda: None) -> dict[str, FinishedPack]:
    """Copy the live blobs of the packs to rewrite into new stored packs; returns them."""
    writers: dict[ObjectType, PackWriter] = {}
    written: dict[str, FinishedPack] = {}
    staging = repo.dest.staging_dir()
    try:
        for pack in sorted(plan.repack):
            data = repo.dest.read("data", pack)
            if hashlib.sha256(data).hexdigest() != pack:
                raise IntegrityError(f"Pack {pack[:12]} is damaged; prune stopped before removing "
                                     "anything. Run `cairn check --read-data`.")
            for e in plan.repack[pack]:
                writer = writers.get(e.type) or writers.setdefault(
                    e.type, PackWriter(repo.keys, staging))
                writer.add(e.type, e.id, data[e.offset : e.offset + e.length], e.raw_length)
                if writer.full:
                    _store(repo, writers.pop(e.type).finish(), written)
            on_pack()
        for kind in list(writers):
            _store(repo, writers.pop(kind).finish(), written)
    except BaseException:
        for writer in writers.values():
            writer.discard()
        raise
    return written


def _store(repo: Repository, pack: FinishedPack, written: dict[str, FinishedPack]) -> None:
    repo.dest.put_file("data", pack.name, pack.path)
    written[pack.name] = pack


def survivors_index(plan: PackPlan, written: dict[str, list[PackEntry]],
                    superseded: Iterable[str]) -> IndexContent:
    """The index file that replaces every index file read: kept packs and new ones."""
    return IndexContent(packs={**plan.keep, **written}, superseded=sorted(superseded))


def packs_still_needed(repo: Repository, plan: PackPlan, roots: Iterable[str]) -> set[str]:
    """Packs about to be removed that trees under ``roots`` (new snapshots) still use."""
    doomed = plan.doomed()

    def locate(blob_id: bytes) -> BlobLocation | None:
        return repo.cache.lookup(blob_id) or doomed.get(blob_id)

    def load(tree_id: str) -> list[dict]:
        raw = bytes.fromhex(tree_id)
        loc = locate(raw)
        if loc is None:
            raise IntegrityError(f"Tree {tree_id[:12]} of a new snapshot is not in the index.")
        return decode_tree(repo.read_blob(raw, loc))

    needed = set()
    for blob_id in reachable(load, roots):
        if blob_id in doomed and repo.cache.lookup(blob_id) is None:
            needed.add(doomed[blob_id].pack)
    return needed


def index_for(plan: PackPlan, packs: Iterable[str]) -> IndexContent:
    """An index file listing removed-to-be packs again, so they stay (rescued)."""
    return IndexContent(packs={pack: plan.gone[pack] for pack in sorted(packs)})
