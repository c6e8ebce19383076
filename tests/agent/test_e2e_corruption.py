"""Damaged archives: check names the damage, restore saves everything else and says what not."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.agent.cairn_cli import Cairn
from tests.agent.strategies import random_bytes
from tests.agent.treespec import File, build, manifest, restored


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x5A
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))


@pytest.fixture
def two_snapshots(cairn: Cairn, tmp_path: Path) -> tuple[Path, dict, dict, str]:
    """A tree backed up twice; the second run adds ``victim.bin``, alone in a new data pack.

    Returns (source, first backup, second backup, name of the victim's pack).
    """
    src = build(tmp_path / "src", {
        "keep.txt": File(b"keep\n"),
        "big.bin": File(random_bytes(1_500_000, 1)),
        "sub": {"also.bin": File(random_bytes(300_000, 2))},
    })
    first = cairn.backup(src)
    packs = {name: path.stat().st_size for name, path in cairn.data_packs().items()}
    (src / "sub" / "victim.bin").write_bytes(random_bytes(400_000, 3))
    second = cairn.backup(src)
    new = {name: path.stat().st_size for name, path in cairn.data_packs().items()
           if name not in packs}
    victim_pack = max(new, key=new.__getitem__)  # the data pack; tree packs are tiny
    assert new[victim_pack] > 400_000 > sum(new.values()) - new[victim_pack]
    return src, first, second, victim_pack


def test_flipped_byte_is_found_and_restore_saves_the_rest(
        cairn: Cairn, tmp_path: Path, two_snapshots: tuple) -> None:
    src, first, second, victim_pack = two_snapshots
    expected = manifest(src)
    flip_byte(cairn.data_packs()[victim_pack], 200_000)
    victim = f"{second['snapshot_id'][:8]}:{src}/sub/victim.bin"

    report = cairn.check(read_data=True, expect=6)
    assert not report["ok"]
    assert list(report["damaged_packs"]) == [victim_pack]
    assert report["affected_files"] == [victim]
    human = cairn.run("check", "--read-data", expect=6).stdout
    assert victim_pack in human and f"{src}/sub/victim.bin" in human

    out = tmp_path / "out"
    result = cairn.run("restore", second["snapshot_id"], "--target", out, "--json", expect=6)
    doc = result.json()
    assert len(doc["errors"]) == 1 and "victim.bin" in doc["errors"][0]
    assert "victim.bin" in result.stderr
    copy = restored(out, src)
    assert not (copy / "sub" / "victim.bin").exists(), "no damaged file may be left behind"
    del expected[b"sub/victim.bin"]
    assert manifest(copy) == expected

    # The first snapshot never referenced the damaged pack.
    cairn.restore(first["snapshot_id"], tmp_path / "first")


def test_a_deleted_pack_is_reported(cairn: Cairn, tmp_path: Path, two_snapshots: tuple) -> None:
    src, _first, second, victim_pack = two_snapshots
    cairn.data_packs()[victim_pack].unlink()
    report = cairn.check(expect=6)
    assert not report["ok"]
    assert any(victim_pack[:12] in error for error in report["errors"])
    assert f"{src}/sub/victim.bin" in " ".join(report["affected_files"])
    doc = cairn.restore(second["snapshot_id"], tmp_path / "out", expect=6)
    assert len(doc["errors"]) == 1 and "victim.bin" in doc["errors"][0]
    assert (restored(tmp_path / "out", src) / "keep.txt").read_bytes() == b"keep\n"


def test_a_damaged_stray_pack_does_not_block_backups(cairn: Cairn, tmp_path: Path) -> None:
    """A bit-rotten pack nobody indexed yet (e.g. left by a killed run) is never adopted."""
    src = build(tmp_path / "src", {"a.txt": File(b"a")})
    cairn.backup(src)
    junk = random_bytes(5000, 9) + (200).to_bytes(4, "little")
    name = hashlib.sha256(junk).hexdigest()
    (cairn.dest / "data" / name[:2]).mkdir(exist_ok=True)
    (cairn.dest / "data" / name[:2] / name).write_bytes(junk)
    (src / "b.txt").write_bytes(b"b")
    assert cairn.backup(src)["files_new"] == 1
    report = cairn.check(read_data=True, expect=6)
    assert list(report["damaged_packs"]) == [name]
    assert report["affected_files"] == []


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_damaged_snapshot_is_named_and_blocks_nothing_but_prune(
        cairn: Cairn, tmp_path: Path, two_snapshots: tuple) -> None:
    """One bit-rotten snapshot file must not stop every later backup and restore: it is
    left out with a warning naming it. Only prune, which could delete data that snapshot
    alone holds, stops (changing nothing)."""
    src, first, second, _ = two_snapshots
    damaged, intact = first["snapshot_id"], second["snapshot_id"]
    flip_byte(cairn.dest / "snapshots" / damaged, 40)

    listed = cairn.run("snapshots", "--json", expect=6)
    assert [s["id"] for s in listed.json()] == [intact]
    assert f"Snapshot {damaged[:8]} is damaged" in listed.stderr

    out = tmp_path / "out"
    result = cairn.run("restore", "latest", "--target", out, "--json")
    assert result.json()["snapshot_id"] == intact
    assert manifest(restored(out, src)) == manifest(src)
    assert "warning" in result.stderr and damaged[:8] in result.stderr

    asked = cairn.run("restore", damaged[:8], "--target", tmp_path / "old", expect=6)
    assert f"Snapshot {damaged[:8]} is damaged" in asked.stderr
    assert not (tmp_path / "old").exists()

    (src / "new.txt").write_bytes(b"new")
    third = cairn.run("backup", src, "--json")
    assert third.json()["files_new"] == 1 and damaged[:8] in third.stderr
    newest = cairn.run("snapshots", "--json", expect=6).json()[0]
    assert newest["id"] == third.json()["snapshot_id"] and newest["parent"] == intact

    before = files_of(cairn.dest)
    refused = cairn.run("prune", "--keep-within", "0", "--hourly", "0", "--daily", "0",
                        "--weekly", "0", "--monthly", "1y", "--grace", "0", expect=6)
    assert "Prune removes nothing" in refused.stderr and damaged[:8] in refused.stderr
    assert files_of(cairn.dest) == before

    cairn.run("forget", damaged[:4], expect=2)  # too short to name one for good
    assert cairn.json("forget", damaged[:8]) == {"forgotten": damaged}
    assert len(cairn.snapshots()) == 2  # exit 0: nothing damaged is left
    cairn.run("prune", "--keep-within", "0", "--hourly", "0", "--daily", "0",
              "--weekly", "0", "--monthly", "1y", "--grace", "0")
    assert cairn.check(read_data=True)["ok"]
    cairn.restore("latest", tmp_path / "again")
    assert manifest(restored(tmp_path / "again", src)) == manifest(src)


def test_when_the_newest_snapshot_is_damaged_latest_is_the_newest_readable(
        cairn: Cairn, tmp_path: Path, two_snapshots: tuple) -> None:
    src, first, second, _ = two_snapshots
    flip_byte(cairn.dest / "snapshots" / second["snapshot_id"], 10)
    result = cairn.run("restore", "latest", "--target", tmp_path / "out", "--json")
    assert result.json()["snapshot_id"] == first["snapshot_id"]
    assert second["snapshot_id"][:8] in result.stderr
    copy = restored(tmp_path / "out", src)
    assert (copy / "keep.txt").read_bytes() == b"keep\n"
    assert not (copy / "sub" / "victim.bin").exists()


def test_damaged_index_files_are_read_around_and_rebuilt_from_the_packs(
        cairn: Cairn, tmp_path: Path, two_snapshots: tuple) -> None:
    """Index files only repeat what every pack's header says: when they are damaged,
    reads and backups go on from the headers, prune refuses, and rebuild-index
    replaces them."""
    src, _first, second, _ = two_snapshots
    index_files = sorted((cairn.dest / "index").rglob("*"))
    index_files = [p for p in index_files if p.is_file()]
    assert len(index_files) >= 2
    for path in index_files:
        flip_byte(path, 30)
    cairn.home.joinpath("cache").rename(tmp_path / "old-cache")  # a computer without a cache

    result = cairn.run("restore", "latest", "--target", tmp_path / "out", "--json")
    assert result.json()["snapshot_id"] == second["snapshot_id"]
    assert manifest(restored(tmp_path / "out", src)) == manifest(src)
    assert "rebuild-index" in result.stderr and index_files[0].name[:12] in result.stderr

    (src / "new.txt").write_bytes(b"new")
    assert cairn.backup(src)["files_new"] == 1
    report = cairn.check(expect=6)
    assert len([e for e in report["errors"] if "rebuild-index" in e]) == len(index_files)

    before = files_of(cairn.dest)
    refused = cairn.run("prune", "--grace", "0", expect=6)
    assert "Prune removes nothing" in refused.stderr
    assert files_of(cairn.dest) == before

    packs = len(cairn.data_packs())
    assert cairn.json("rebuild-index") == {"packs_indexed": packs, "packs_damaged": 0}
    assert not any(p.exists() for p in index_files)
    assert cairn.check(read_data=True)["ok"]
    cairn.run("prune", "--grace", "0")
    cairn.restore("latest", tmp_path / "again")
    assert manifest(restored(tmp_path / "again", src)) == manifest(src)


def test_rebuild_index_names_packs_whose_header_is_damaged(
        cairn: Cairn, tmp_path: Path, two_snapshots: tuple) -> None:
    src, first, _second, victim_pack = two_snapshots
    victim = cairn.data_packs()[victim_pack]
    flip_byte(victim, victim.stat().st_size - 10)  # inside the encrypted header at the end
    done = cairn.run("rebuild-index", "--json", expect=6)
    assert done.json() == {"packs_indexed": len(cairn.data_packs()) - 1, "packs_damaged": 1}
    cairn.restore(first["snapshot_id"], tmp_path / "first")  # never used the damaged pack
    assert (restored(tmp_path / "first", src) / "keep.txt").read_bytes() == b"keep\n"


def test_rebuild_index_in_groups_supersedes_the_old_index_last(
        cairn: Cairn, tmp_path: Path, two_snapshots: tuple,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A run killed after some groups leaves the old index live beside them: only the
    last index file written names the old ones as superseded."""
    from agent.archive import repository
    from agent.archive.repository import Repository
    from agent.dest.local import LocalDestination

    src, _first, second, _ = two_snapshots
    old = {p.name for p in (cairn.dest / "index").iterdir()}
    monkeypatch.setattr(repository, "REBUILD_PACKS_PER_INDEX", 1)
    repo = Repository.open(LocalDestination(cairn.dest), cairn.passphrase, tmp_path / "cache")
    written: list[tuple[int, list[str]]] = []
    real_write = repo.write_index
    repo.write_index = lambda content: (  # type: ignore[method-assign]
        written.append((len(content.packs), list(content.superseded))), real_write(content))[1]
    packs = len(cairn.data_packs())
    try:
        assert repo.rebuild_index() == (packs, 0)
    finally:
        repo.close()
    assert [n for n, _ in written] == [1] * packs + [0]  # then the one that supersedes
    assert all(not superseded for _, superseded in written[:-1])
    assert sorted(written[-1][1]) == sorted(old)
    assert not old & {p.name for p in (cairn.dest / "index").iterdir()}
    assert cairn.check(read_data=True)["ok"]
    cairn.restore(second["snapshot_id"], tmp_path / "out")
    assert manifest(restored(tmp_path / "out", src)) == manifest(src)


def test_files_in_the_way_of_two_folders_block_only_what_is_below_them(
        cairn: Cairn, tmp_path: Path) -> None:
    """Folders are restored a level at a time; a file where a folder goes is reported
    once, nothing below it is attempted, and everything else is restored."""
    src = build(tmp_path / "src", {
        "a": {"deep": {"x.txt": File(b"x")}, "y.txt": File(b"y")},
        "b": {"deep": {"z.txt": File(b"z")}},
        "c": {"ok.txt": File(b"ok")},
    })
    cairn.backup(src)
    out = tmp_path / "out"
    copy = out / src.relative_to("/")
    copy.mkdir(parents=True)
    (copy / "a").write_bytes(b"in the way")
    (copy / "b").write_bytes(b"in the way too")
    doc = cairn.restore("latest", out, expect=6)
    assert sorted(e.split(":")[0] for e in doc["errors"]) == [str(copy / "a"), str(copy / "b")]
    assert (copy / "c" / "ok.txt").read_bytes() == b"ok"
    assert (copy / "a").read_bytes() == b"in the way"


def test_tree_reads_are_grouped_into_runs_of_nearby_blobs() -> None:
    from agent.archive.index_cache import BlobLocation
    from agent.archive.repository import READ_GAP, _read_runs
    from agent.codec.envelope import ObjectType

    def blob(offset: int, length: int) -> tuple[bytes, BlobLocation]:
        return bytes(32), BlobLocation("p", ObjectType.TREE, offset, length, length)

    blobs = [blob(0, 100), blob(100, 50), blob(150 + READ_GAP, 10), blob(10**9, 5)]
    runs = list(_read_runs(blobs))
    assert [(start, end, len(run)) for start, end, run in runs] == [
        (0, 150 + READ_GAP + 10, 3), (10**9, 10**9 + 5, 1)]


def test_a_level_wider_than_one_batch_of_trees_restores_whole(
        cairn: Cairn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Restore loads a level's folders in batches (bounded memory); with a batch of two,
    a tree three levels deep and five wide still restores byte for byte."""
    from agent.archive.repository import Repository
    from agent.dest.local import LocalDestination
    from agent.engine import restore

    src = build(tmp_path / "src", {f"d{i}": {f"e{j}": {"f.txt": File(b"%d%d" % (i, j))}
                                             for j in range(5)} for i in range(5)})
    snap_id = cairn.backup(src)["snapshot_id"]
    monkeypatch.setattr(restore, "TREES_AT_ONCE", 2)
    repo = Repository.open(LocalDestination(cairn.dest), cairn.passphrase, tmp_path / "cache")
    try:
        result = restore.run_restore(repo, repo.find_snapshot(snap_id),
                                     restore.RestoreOptions(tmp_path / "out"))
    finally:
        repo.close()
    assert result.files == 25 and not result.errors
    assert manifest(restored(tmp_path / "out", src)) == manifest(src)


def damage_listing(cairn: Cairn, folder: Path, scratch: Path) -> None:
    """Flip a byte in the middle of ``folder``'s tree blob in the latest snapshot."""
    from agent.archive.repository import Repository
    from agent.dest.local import LocalDestination
    from agent.model.tree import decode_name

    repo = Repository.open(LocalDestination(cairn.dest), cairn.passphrase, scratch)
    try:
        repo.sync_index()
        tree = repo.find_snapshot("latest").tree
        for part in folder.relative_to("/").parts:
            tree = next(n for n in repo.tree(tree) if decode_name(n, "name") == part)["subtree"]
        loc = repo.locate(bytes.fromhex(tree))
    finally:
        repo.close()
    flip_byte(cairn.data_packs()[loc.pack], loc.offset + loc.length // 2)


def test_a_damaged_folder_listing_costs_only_that_folder(cairn: Cairn, tmp_path: Path) -> None:
    """A flipped byte in one folder's tree blob: restore names that folder, restores
    everything else, and exits 6 (it used to stop the whole restore with no name)."""
    src = build(tmp_path / "src", {"a": {"x.txt": File(b"x")}, "b": {"y.txt": File(b"y")},
                                   "top.txt": File(b"top")})
    cairn.backup(src)
    damage_listing(cairn, src / "a", tmp_path / "cache")

    result = cairn.run("restore", "latest", "--target", tmp_path / "out", "--json", expect=6)
    copy = restored(tmp_path / "out", src)
    assert result.json()["errors"] == [f"{copy / 'a'}: its listing cannot be read (a sealed "
                                       "object failed authentication (damaged or tampered)); "
                                       "nothing in it was restored"]
    assert (copy / "b" / "y.txt").read_bytes() == b"y"
    assert (copy / "top.txt").read_bytes() == b"top"
    assert not (copy / "a" / "x.txt").exists()
    report = cairn.check(read_data=True, expect=6)
    assert report["affected_files"] == [
        f"{cairn.snapshots()[0]['id'][:8]}:{src / 'a'} (whole folder)"]
    listed = cairn.run("ls", "latest", "--json", expect=6)
    assert {e["path"] for e in listed.json()} >= {str(src / "b" / "y.txt"), str(src / "top.txt")}
    assert f"could not list {src / 'a'}" in listed.stderr


def test_a_damaged_listing_in_the_parent_snapshot_does_not_stop_backups(
        cairn: Cairn, tmp_path: Path) -> None:
    """The next backup reads that folder's files again instead of failing, and its
    snapshot restores whole."""
    src = build(tmp_path / "src", {"a": {"x.txt": File(b"x")}, "b": {"y.txt": File(b"y")}})
    cairn.backup(src)
    damage_listing(cairn, src / "a", tmp_path / "cache")
    (src / "a" / "x.txt").write_bytes(b"x, changed")
    done = cairn.backup(src)
    assert done["errors"] == [] and done["files_total"] == 2
    cairn.restore("latest", tmp_path / "out")
    assert manifest(restored(tmp_path / "out", src)) == manifest(src)
