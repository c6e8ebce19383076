"""Prune for real against a backup history made at chosen times, with a controlled clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from agent.archive.reach import reachable
from agent.engine.prune import run_prune
from agent.model.snapshot import Snapshot
from agent.retention import compact
from agent.retention.policy import DAY, RetentionPolicy
from tests.prune.conftest import History, at
from tests.prune.histories import CARRIED, FORGOTTEN, NOW, make


def carry_snapshots(history: History) -> list[Snapshot]:
    return [s for s in history.repo.snapshots() if s.is_carry]


def carried_files(history: History, carry: Snapshot) -> dict[str, tuple[bytes, str]]:
    """What restoring the carry snapshot gives, with each file's deleted time."""
    restored = history.restored(carry)
    stamps: dict[str, str] = {}
    stack = [(carry.tree, "", None)]
    while stack:
        tree_id, prefix, stamp = stack.pop()
        for node in history.repo.tree(tree_id):
            path, node_stamp = f"{prefix}/{node['name']}", node.get("deleted", stamp)
            if node["type"] == "dir":
                stack.append((node["subtree"], path, node_stamp))
            else:
                stamps[path.split(history.src.name + "/", 1)[1]] = node_stamp
    return {path: (content, stamps[path]) for path, content in restored.items()}


def expected_carry(items: dict[str, tuple[bytes, str]]) -> dict[str, tuple[bytes, str]]:
    return {path: (content, at(when).isoformat(timespec="microseconds"))
            for path, (content, when) in items.items()}


def test_prune_keeps_the_retention_table_and_every_deleted_file(history: History) -> None:
    make(history)
    ids = dict(history.labels)
    report = run_prune(history.repo, RetentionPolicy(), now=NOW, dry_run=False, grace_s=0)

    forgotten = {d["id"] for d in report.forgotten}
    assert forgotten == {ids[label] for label in FORGOTTEN}
    assert all(d["reason"] for d in report.snapshots)
    (carry,) = carry_snapshots(history)
    assert history.snapshot_ids() == (set(ids.values()) - forgotten) | {carry.id}
    for label, snap_id in ids.items():
        if label not in FORGOTTEN:
            assert history.restored(history.repo.load_snapshot(snap_id)) == history.states[snap_id]
    assert carried_files(history, carry) == expected_carry(CARRIED)
    assert history.repo.find_snapshot("latest").id == ids["s12"]  # never the carry
    assert report.packs_removed > 0 and report.bytes_freed > 0
    history.check()

    again = run_prune(history.repo, RetentionPolicy(), now=NOW, dry_run=False, grace_s=0)
    assert not again.forgotten and not again.carries and again.packs_removed == 0
    assert carry_snapshots(history) == [carry]


def test_no_pack_is_left_mostly_dead(history: History) -> None:
    make(history)
    run_prune(history.repo, RetentionPolicy(), now=NOW, dry_run=False, grace_s=0)
    repo = history.repo
    live = reachable(repo.tree, [s.tree for s in repo.snapshots()])
    plan = compact.plan_packs(repo.cache, repo.dest.list("data"), live, young=set())
    assert not plan.gone and plan.keep
    assert set(repo.dest.list("data")) == set(plan.keep)


def test_a_second_prune_merges_new_deletions_and_expires_old_ones(history: History) -> None:
    make(history)
    run_prune(history.repo, RetentionPolicy(), now=NOW, dry_run=False, grace_s=0)
    (first,) = carry_snapshots(history)
    make(history, [
        ("r1", "2028-08-01 10:00", {"a.txt": "a9", "temp.txt": "T"}, ("*.log",)),
        ("r2", "2028-08-01 20:00", {"temp.txt": None}, ("*.log",)),
        ("r3", "2028-08-31 10:00", {"a.txt": "a10"}, ("*.log",)),
    ])
    policy = RetentionPolicy(deleted_files=500 * DAY)  # cutoff 2027-04-20
    report = run_prune(history.repo, policy, now=at("2028-09-01 12:00"), dry_run=False,
                       grace_s=0)
    (second,) = carry_snapshots(history)
    assert second.id != first.id and report.carries[0]["replaces"] == [first.id]
    expected = {k: v for k, v in CARRIED.items() if k in ("secret.log", "scratch/tmp1",
                                                            "scratch/tmp2")}
    expected["temp.txt"] = (b"T", "2028-08-01 20:00")
    assert carried_files(history, second) == expected_carry(expected)
    # Beyond a year now: November 2026 keeps s6 (not s5), June 2027 keeps s12 (not s10, s11).
    assert {d["id"] for d in report.forgotten} == {first.id} | {
        history.labels[label] for label in ("r1", "s5", "s10", "s11")}
    history.check()


def test_deleted_files_zero_keeps_no_carry(history: History) -> None:
    make(history)
    report = run_prune(history.repo, RetentionPolicy(deleted_files=0), now=NOW, dry_run=False,
                       grace_s=0)
    assert not report.carries and not carry_snapshots(history)
    assert {d["id"] for d in report.forgotten} == {history.labels[x] for x in FORGOTTEN}
    history.check()


def test_sets_of_other_devices_are_pruned_on_their_own(history: History) -> None:
    other = history.root / "desktop-src"
    other.mkdir()
    history.write({"x.txt": "x"})
    (other / "y.txt").write_text("y1")
    history.backup("laptop-1", at("2027-06-13 10:10"))
    history.backup("desktop-1", at("2027-06-13 10:12"), host="desktop", src=other)
    (other / "y.txt").write_text("y2")
    history.backup("desktop-2", at("2027-06-13 10:50"), host="desktop", src=other)
    report = run_prune(history.repo, RetentionPolicy(), now=NOW, dry_run=False, grace_s=0)
    assert {d["id"] for d in report.forgotten} == {history.labels["desktop-1"]}
    assert history.snapshot_ids() == {history.labels["laptop-1"], history.labels["desktop-2"]}
    history.check()


def test_the_grace_period_keeps_packs_this_computer_saw_recently(history: History) -> None:
    make(history)
    report = run_prune(history.repo, RetentionPolicy(), now=NOW, dry_run=False)
    assert len(report.forgotten) == len(FORGOTTEN)  # snapshots go at once
    assert report.packs_removed == 0 and report.packs_young == report.packs_total
    history.check()
    later = run_prune(history.repo, RetentionPolicy(), now=NOW + timedelta(minutes=1),
                      dry_run=False, grace_s=0)
    assert later.packs_removed > 0
    history.check()


def test_a_carry_snapshot_is_never_a_parent_nor_latest(history: History) -> None:
    make(history)
    run_prune(history.repo, RetentionPolicy(), now=NOW, dry_run=False, grace_s=0)
    (carry,) = carry_snapshots(history)
    # Even dated after every backup (it never is), a carry snapshot is skipped.
    history.repo.save_snapshot(replace(carry, id="", time=at("2027-06-15 11:30").isoformat()))
    assert history.repo.find_snapshot("latest").id == history.labels["s12"]
    history.write({"a.txt": "a-next"})
    snap = history.backup("next", at("2027-06-15 11:45"), ("*.log",))
    assert snap.parent == history.labels["s12"]
    assert history.restored(snap) == history.states[snap.id]


def test_each_set_can_have_its_own_policy_or_none(history: History) -> None:
    other = history.root / "desktop-src"
    other.mkdir()
    for i, when in enumerate(["2027-06-13 10:10", "2027-06-13 10:40", "2027-06-14 10:00"]):
        history.write({"x.txt": f"x{i}"})
        (other / "y.txt").write_text(f"y{i}")
        history.backup(f"laptop-{i}", at(when))
        history.backup(f"desktop-{i}", at(when), host="desktop", src=other)
    keep_less = RetentionPolicy(keep_within=0, hourly=0, daily=0, weekly=0, monthly=0)

    def policy_for(device: str, paths: tuple[str, ...]) -> RetentionPolicy | None:
        assert paths in ((str(history.src),), (str(other),))
        return keep_less if device == "laptop" else None  # the desktop prunes its own

    report = run_prune(history.repo, policy_for, now=NOW, dry_run=False, grace_s=0)
    assert report.policy is None
    by_device = {s["device"]: s for s in report.sets}
    assert by_device["laptop"]["policy"] == keep_less.to_dict()
    assert (by_device["laptop"]["kept"], by_device["laptop"]["forgotten"]) == (1, 2)
    assert (by_device["desktop"]["policy"], by_device["desktop"]["forgotten"]) == (None, 0)
    assert {s["id"] for s in report.forgotten} == {history.labels["laptop-0"],
                                                    history.labels["laptop-1"]}
    history.check()
