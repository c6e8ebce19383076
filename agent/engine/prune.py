"""Prune: apply a retention policy, keep deleted files, and compact the packs.

Order of writes; every step leaves an archive that passes ``check --read-data``
(docs/format.md, §14 "Retention and prune"):

1. carry snapshots (deleted files): their tree packs, an index file, the snapshot;
2. forgotten snapshots, and carry snapshots a new one replaces, are removed;
3. live blobs are those of every snapshot now stored (new ones included);
4. packs whose blob bytes are mostly dead are rewritten: live blobs copied as they are;
5. one index file lists every surviving pack and supersedes every index file read;
6. the superseded index files are removed;
7. snapshots stored meanwhile (a backup whose lock lapsed) are walked: packs
   they still use are indexed again instead of being removed;
8. the dead and rewritten packs are removed.

Prune holds an exclusive lock (a dry run takes none and writes nothing), keeps
every pack this computer first saw less than ``grace_s`` ago, and never touches
packs no index lists.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from agent import __version__
from agent.archive.index_file import IndexContent
from agent.archive.locks import ArchiveLock
from agent.archive.reach import reachable
from agent.archive.repository import Repository
from agent.codec.envelope import ObjectType, seal
from agent.engine.progress import Progress
from agent.errors import ArchiveError, IntegrityError, SnapshotNotFound, UsageError
from agent.model.snapshot import Snapshot
from agent.model.tree import decode_tree
from agent.pack.writer import PackWriter
from agent.retention import compact
from agent.retention.carry import CarryBuilder, CarryTree
from agent.retention.policy import Decision, RetentionPolicy, SnapshotRef, decide

GRACE_S = 3600
SetKey = tuple[str, tuple[str, ...]]  # (device, sorted paths)
#: The policy of a set, or None to leave that set alone (another device prunes it).
PolicyFor = Callable[[str, tuple[str, ...]], RetentionPolicy | None]


@dataclass
class PruneReport:
    """What prune did (or, with ``dry_run``, would do); ``to_dict`` is JSON-able."""

    dry_run: bool
    now: str
    policy: dict[str, str] | None  # None when each set has its own (see ``sets``)
    sets: list[dict] = field(default_factory=list)  # device, paths, policy, kept, forgotten
    snapshots: list[dict] = field(default_factory=list)  # one per snapshot, with action and reason
    carries: list[dict] = field(default_factory=list)  # carry snapshots written
    packs_total: int = 0
    packs_removed: int = 0
    packs_rewritten: int = 0
    packs_written: int = 0
    packs_young: int = 0  # kept only because of the grace period
    packs_rescued: int = 0  # kept because a snapshot stored during prune uses them
    blobs_removed: int = 0
    bytes_freed: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def forgotten(self) -> list[dict]:
        return [s for s in self.snapshots if s["action"] == "forget"]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Set:
    policy: RetentionPolicy | None
    backups: list[Snapshot]  # newest first
    carries: list[Snapshot] = field(default_factory=list)
    tree: CarryTree | None = None  # a new carry tree to store
    carry_time: datetime | None = None  # the newest snapshot it was built from
    kept_carries: list[Snapshot] = field(default_factory=list)

    def kept(self, decisions: dict[str, Decision]) -> list[Snapshot]:
        return [s for s in self.backups if decisions[s.id].keep]

    def forgotten(self, decisions: dict[str, Decision]) -> list[Snapshot]:
        return [s for s in self.backups if not decisions[s.id].keep]


def run_prune(repo: Repository, policy: RetentionPolicy | PolicyFor, *, now: datetime,
              dry_run: bool, progress: Progress | None = None,
              grace_s: float = GRACE_S) -> PruneReport:
    """Forget what the policy drops as of ``now``, keep deleted files, free dead packs.

    ``policy`` applies to every set, or is a function giving each set's policy (None:
    leave the set as it is)."""
    progress = progress or Progress()
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    single = policy.to_dict() if isinstance(policy, RetentionPolicy) else None
    report = PruneReport(dry_run, now.isoformat(), single)
    policy_for = _policy_function(policy)
    lock = None if dry_run else ArchiveLock(repo.dest, repo.keys, exclusive=True).acquire()
    try:
        progress.phase = "reading snapshots"
        _sync_every_index_file(repo)
        young_after = time.time() - grace_s  # packs first seen since then are kept
        snaps = _every_snapshot(repo)
        sets, decisions = _decide(snaps, policy_for, now)
        progress.phase = "finding deleted files"
        _plan_carries(repo, sets, decisions, now)
        _report_snapshots(report, sets, decisions)
        progress.phase = "marking live data"
        live = reachable(_loader(repo, sets), _live_roots(sets, decisions))
        if dry_run:
            report.carries = [_carry_doc(_carry_snapshot(e), e) for e in sets.values() if e.tree]
            plan = compact.plan_packs(repo.cache, repo.dest.list("data"), live,
                                      repo.cache.packs_seen_since(young_after))
            _report_plan(report, plan, rescued=set(), written={})
        else:
            assert lock is not None
            _execute(repo, lock, sets, decisions, snaps, live, young_after, report, progress)
        progress.phase = "done"
        return report
    finally:
        if lock is not None:
            lock.release()


def forget_snapshot(repo: Repository, ref: str) -> str:
    """Remove the one snapshot whose ID starts with ``ref`` (8 hex digits or more; a
    damaged snapshot too), under the exclusive lock; returns its ID. Its data stays
    until a prune finds nothing else uses it."""
    prefix = ref.lower()
    if len(prefix) < 8 or prefix.strip("0123456789abcdef"):
        raise UsageError(f"Name the snapshot to forget by its ID (8 hex digits or more, as "
                         f"`cairn snapshots` shows it), not {ref!r}.")
    lock = ArchiveLock(repo.dest, repo.keys, exclusive=True).acquire()
    try:
        names = [name for name in repo.dest.list("snapshots") if name.startswith(prefix)]
        if len(names) != 1:
            what = "matches no snapshot" if not names else "matches several snapshots"
            raise SnapshotNotFound(f"{ref!r} {what}; see `cairn snapshots`.")
        repo.dest.remove("snapshots", names[0])
    finally:
        lock.release()
    return names[0]


def _sync_every_index_file(repo: Repository) -> None:
    """The index, complete; prune stops if an index file cannot be read, since it could
    name packs or index files that compaction must know about."""
    try:
        repo.sync_index(strict=True)
    except IntegrityError as exc:
        raise IntegrityError(
            f"{exc} Prune removes nothing while an index file cannot be read. "
            "`cairn rebuild-index` replaces the index from the packs' own headers.") from exc


def _every_snapshot(repo: Repository) -> list[Snapshot]:
    """Every snapshot; prune stops if one cannot be read, since it could hold data no
    other snapshot does."""
    try:
        return repo.snapshots()
    except IntegrityError as exc:
        raise IntegrityError(
            f"{exc} Prune removes nothing while a snapshot cannot be read: the data only it "
            "holds would be deleted. `cairn check` reports the damage; `cairn forget` removes "
            "a snapshot that cannot be repaired.") from exc


def _policy_function(policy: RetentionPolicy | PolicyFor) -> PolicyFor:
    if isinstance(policy, RetentionPolicy):
        return lambda _device, _paths: policy
    return policy


def _decide(snaps: list[Snapshot], policy_for: PolicyFor,
            now: datetime) -> tuple[dict[SetKey, _Set], dict[str, Decision]]:
    sets: dict[SetKey, _Set] = {}
    for snap in snaps:  # newest first
        key = (snap.device or snap.host, tuple(sorted(snap.paths)))
        if key not in sets:
            sets[key] = _Set(policy_for(*key), [])
        entry = sets[key]
        (entry.carries if snap.is_carry else entry.backups).append(snap)
    decisions: dict[str, Decision] = {}
    for (device, _paths), entry in sets.items():
        refs = [SnapshotRef(s.id, s.datetime, device, tuple(s.paths)) for s in entry.backups]
        if entry.policy is None:
            found = [Decision(r, True, "no-policy", "no retention policy for this set here")
                     for r in refs]
        else:
            found = decide(refs, entry.policy, now)
        decisions.update((d.snapshot.id, d) for d in found)
    return sets, decisions


def _plan_carries(repo: Repository, sets: dict[SetKey, _Set], decisions: dict[str, Decision],
                  now: datetime) -> None:
    """Decide each set's carry tree: keep the old one, build a new one, or none."""
    for entry in sets.values():
        if entry.policy is None or not entry.backups:  # leave it be
            entry.kept_carries = list(entry.carries)
            continue
        keep_s = entry.policy.deleted_files
        if keep_s == 0:
            continue
        cutoff = None if keep_s is None else now - timedelta(seconds=keep_s)
        forgotten = entry.forgotten(decisions)
        if not forgotten and not entry.carries:
            continue
        if not forgotten and len(entry.carries) == 1 and not _expiring(entry.carries[0], cutoff):
            entry.kept_carries = list(entry.carries)
            continue
        builder = CarryBuilder(repo.tree)
        chronological = sorted(entry.backups, key=lambda s: (s.datetime, s.id))
        after = {s.id: chronological[i + 1] for i, s in enumerate(chronological[:-1])}
        for snap in forgotten:  # never the newest of its set, so it has a next one
            builder.add_deletions(snap.tree, after[snap.id].tree, after[snap.id].datetime)
        for carry in entry.carries:
            builder.add_carry(carry.tree)
        entry.tree = builder.build(cutoff, repo.keys.blob_id)
        entry.carry_time = max(s.datetime for s in forgotten + entry.carries)
        if entry.tree and len(entry.carries) == 1 and entry.tree.root == entry.carries[0].tree:
            entry.kept_carries, entry.tree = list(entry.carries), None


def _expiring(carry: Snapshot, cutoff: datetime | None) -> bool:
    if cutoff is None:
        return False
    try:
        return datetime.fromisoformat(carry.summary["oldest_deleted"]) < cutoff
    except (KeyError, TypeError, ValueError):
        return True


def _loader(repo: Repository, sets: dict[SetKey, _Set]) -> Callable[[str], Sequence[dict]]:
    """Tree loader that also knows the carry trees built but not stored yet."""
    built = {tid: plain for e in sets.values() if e.tree for tid, plain in e.tree.trees.items()}

    def load(tree_id: str) -> Sequence[dict]:
        plain = built.get(tree_id)
        return decode_tree(plain) if plain is not None else repo.tree(tree_id)

    return load


def _live_roots(sets: dict[SetKey, _Set], decisions: dict[str, Decision]) -> list[str]:
    roots = []
    for entry in sets.values():
        roots += [s.tree for s in entry.kept(decisions)]
        roots += [s.tree for s in entry.kept_carries]
        if entry.tree:
            roots.append(entry.tree.root)
    return roots


def _execute(repo: Repository, lock: ArchiveLock, sets: dict[SetKey, _Set],
             decisions: dict[str, Decision], snaps: list[Snapshot], live: set[bytes],
             young_after: float, report: PruneReport, progress: Progress) -> None:
    progress.phase = "writing carry snapshots"
    carried = _write_carries(repo, sets, report)
    progress.phase = "forgetting snapshots"
    for entry in sets.values():
        doomed = entry.forgotten(decisions)
        doomed += [c for c in entry.carries if c not in entry.kept_carries]
        for snap in doomed:
            repo.dest.remove("snapshots", snap.id)
            lock.refresh_if_due()
    marked = ({s.id for s in snaps} | carried) - {d["id"] for d in report.forgotten}
    marked |= _mark_new_snapshots(repo, marked, live)
    progress.phase = "compacting"
    stored = repo.dest.list("data")
    plan = compact.plan_packs(repo.cache, stored, live, repo.cache.packs_seen_since(young_after))
    _remove_leftover_indexes(repo)
    if not plan.gone:
        _report_plan(report, plan, rescued=set(), written={})
        return
    superseded = set(repo.dest.list("index")) & (repo.cache.index_files()
                                                  | repo.cache.superseded())
    written = compact.repack(repo, plan, on_pack=lock.refresh_if_due)
    repo.write_index(compact.survivors_index(plan, {n: p.entries for n, p in written.items()},
                                             superseded))
    for name in sorted(superseded):
        repo.dest.remove("index", name)
    repo.sync_index(strict=True)
    rescued = _rescue(repo, lock, plan, marked, report)
    progress.phase = "removing packs"
    progress.files_total, progress.totals_known = len(plan.removed - rescued), True
    for pack in sorted(plan.removed - rescued):
        repo.dest.remove("data", pack)
        progress.files_done += 1
        progress.bytes_done += plan.sizes[pack]
        lock.refresh_if_due()
    repo.sync_index(strict=True)
    _report_plan(report, plan, rescued, {n: p.size for n, p in written.items()})


def _write_carries(repo: Repository, sets: dict[SetKey, _Set], report: PruneReport) -> set[str]:
    """Store the new carry trees (packs, then an index file), then the carry snapshots."""
    todo = [entry for entry in sets.values() if entry.tree]
    if not todo:
        return set()
    writer = PackWriter(repo.keys, repo.dest.staging_dir())
    added: set[bytes] = set()
    for entry in todo:
        assert entry.tree is not None
        for tree_id, plain in entry.tree.trees.items():
            raw = bytes.fromhex(tree_id)
            if raw not in added and repo.cache.lookup(raw) is None:
                added.add(raw)
                writer.add(ObjectType.TREE, raw, seal(repo.keys, ObjectType.TREE, raw, plain),
                           len(plain))
    if writer.empty:
        writer.discard()
    else:
        pack = writer.finish()
        repo.dest.put_file("data", pack.name, pack.path)
        repo.write_index(IndexContent(packs={pack.name: pack.entries}))
    written = set()
    for entry in todo:
        snap = _carry_snapshot(entry)
        written.add(repo.save_snapshot(snap))
        report.carries.append(_carry_doc(snap, entry))
    return written


def _carry_snapshot(entry: _Set) -> Snapshot:
    tree, latest = entry.tree, entry.backups[0]
    assert tree is not None and entry.carry_time is not None
    when = entry.carry_time.astimezone(UTC).isoformat(timespec="microseconds")
    summary = {"carry": True, "files_total": tree.items,
               "oldest_deleted": tree.oldest.isoformat(timespec="microseconds"),
               "newest_deleted": tree.newest.isoformat(timespec="microseconds")}
    return Snapshot(time=when, host=latest.host, device=latest.device,
                    username=latest.username, paths=sorted(latest.paths), tree=tree.root,
                    summary=summary, program_version=__version__)


def _carry_doc(snap: Snapshot, entry: _Set) -> dict:
    return {"id": snap.id or None, "time": snap.time, "device": snap.device, "paths": snap.paths,
            "items": snap.summary["files_total"], "oldest_deleted": snap.summary["oldest_deleted"],
            "newest_deleted": snap.summary["newest_deleted"],
            "replaces": [c.id for c in entry.carries]}


def _mark_new_snapshots(repo: Repository, marked: set[str], live: set[bytes]) -> set[str]:
    """Snapshots stored since prune started (a lapsed backup): their blobs are live too."""
    new = set(repo.dest.list("snapshots")) - marked
    if new:
        repo.sync_index(strict=True)
        reachable(repo.tree, [repo.load_snapshot(name).tree for name in sorted(new)], into=live)
    return new


def _remove_leftover_indexes(repo: Repository) -> None:
    """Index files a killed prune superseded but did not remove."""
    for name in sorted(set(repo.dest.list("index")) & repo.cache.superseded()):
        repo.dest.remove("index", name)


def _rescue(repo: Repository, lock: ArchiveLock, plan: compact.PackPlan, marked: set[str],
            report: PruneReport) -> set[str]:
    """Packs to keep after all: used by snapshots stored meanwhile, or every one if a
    backup took the archive while this prune's lease had lapsed."""
    rescued: set[str] = set()
    if lock.lapsed:
        try:
            lock.acquire()
        except ArchiveError:
            rescued = plan.removed
            report.warnings.append("This prune's lock lapsed (the computer slept) and another "
                                   "process now uses the archive; no pack was removed.")
    if not rescued:
        new = set(repo.dest.list("snapshots")) - marked
        roots = [repo.load_snapshot(name).tree for name in sorted(new)]
        rescued = compact.packs_still_needed(repo, plan, roots) if roots else set()
    if rescued:
        repo.write_index(compact.index_for(plan, rescued))
    return rescued


def _report_snapshots(report: PruneReport, sets: dict[SetKey, _Set],
                      decisions: dict[str, Decision]) -> None:
    for (device, paths), entry in sets.items():
        forgotten = len(entry.forgotten(decisions))
        report.sets.append({"device": device, "paths": list(paths),
                            "policy": entry.policy.to_dict() if entry.policy else None,
                            "kept": len(entry.backups) - forgotten, "forgotten": forgotten})
        for snap in entry.backups:
            d = decisions[snap.id]
            report.snapshots.append(_snap_doc(snap, "keep" if d.keep else "forget", d.tier,
                                              d.reason))
        for carry in entry.carries:
            if carry in entry.kept_carries:
                why, action = "deleted files (carry snapshot), unchanged", "keep"
            elif entry.tree:
                why, action = "replaced by a new carry snapshot", "forget"
            elif entry.policy is not None and entry.policy.deleted_files == 0:
                why, action = "deleted files are not kept (deleted-files 0)", "forget"
            else:
                why, action = "every deleted file it held has expired", "forget"
            report.snapshots.append(_snap_doc(carry, action, "carry", why))


def _snap_doc(snap: Snapshot, action: str, tier: str, reason: str) -> dict:
    return {"id": snap.id, "time": snap.time, "host": snap.host, "device": snap.device,
            "paths": snap.paths, "carry": snap.is_carry, "action": action, "tier": tier,
            "reason": reason}


def _report_plan(report: PruneReport, plan: compact.PackPlan, rescued: set[str],
                 written: dict[str, int]) -> None:
    removed = plan.removed - rescued
    report.packs_total = len(plan.sizes)
    report.packs_removed = len(removed)
    report.packs_rewritten = len(set(plan.repack) - rescued)
    report.packs_young = plan.young
    report.packs_rescued = len(rescued)
    report.blobs_removed = sum(plan.dead[p] for p in removed)
    if report.dry_run:  # about what the rewritten packs will take
        new_bytes = sum(e.length for entries in plan.repack.values() for e in entries)
    else:
        new_bytes = sum(written.values())
    report.packs_written = len(written)
    report.bytes_freed = sum(plan.sizes[p] for p in removed) - new_bytes
