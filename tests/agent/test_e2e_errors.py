"""User errors are one sentence on stderr with the documented exit code (agent/errors.py)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.agent.cairn_cli import Cairn
from tests.agent.oshelp import child_can_read, small_tmpfs, unreadable_for_child
from tests.agent.strategies import random_bytes
from tests.agent.treespec import File, build, manifest, restored

EXIT_USAGE, EXIT_PARTIAL, EXIT_ARCHIVE, EXIT_PASSPHRASE, EXIT_INTEGRITY, EXIT_FULL = (
    2, 3, 4, 5, 6, 8)
EXIT_DESTINATION, EXIT_NO_SNAPSHOT = 7, 9


def listing(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def one_sentence(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("cairn: ") and lines[0].endswith("."), stderr
    return lines[0]


@pytest.fixture
def archived(cairn: Cairn, tmp_path: Path) -> tuple[Cairn, Path, dict]:
    src = build(tmp_path / "src", {"a.txt": File(b"a"), "b": {"c.txt": File(b"c")}})
    return cairn, src, cairn.backup(src)


def test_wrong_passphrase_changes_nothing(archived: tuple, tmp_path: Path) -> None:
    cairn, src, _ = archived
    before = listing(cairn.dest)
    out = tmp_path / "out"
    for args in (["snapshots"], ["backup", src], ["restore", "latest", "--target", out]):
        result = cairn.run(*args, passphrase="not the passphrase", expect=EXIT_PASSPHRASE)
        assert "wrong passphrase" in one_sentence(result.stderr).lower()
    assert listing(cairn.dest) == before
    assert not out.exists()


@pytest.mark.parametrize("contents,commands", [
    ({}, (["snapshots"], ["check", "--read-data"])),
    ({"notes.txt": File(b"mine")}, (["ls", "latest"], ["restore", "latest", "--target", "OUT"])),
], ids=["empty", "full"])
def test_not_an_archive(cairn: Cairn, tmp_path: Path, contents: dict, commands: tuple) -> None:
    folder = build(tmp_path / "folder", contents)
    for args in commands:
        args = [tmp_path / "out" if a == "OUT" else a for a in args]
        result = cairn.run(*args, dest=folder, expect=EXIT_ARCHIVE)
        assert "not a Cairn archive" in one_sentence(result.stderr)
    assert listing(folder) == listing(build(tmp_path / "again", contents))
    assert not (tmp_path / "out").exists()


def test_backup_into_a_non_empty_folder_that_is_no_archive(cairn: Cairn, tmp_path: Path) -> None:
    src = build(tmp_path / "src", {"a.txt": File(b"a")})
    folder = build(tmp_path / "photos", {"holiday.jpg": File(b"jpeg")})
    for extra in (["--json"], []):  # no "Creating a new archive" before the refusal
        result = cairn.run("backup", src, *extra, dest=folder, expect=EXIT_ARCHIVE)
        assert "not empty" in one_sentence(result.stderr)
    assert sorted(os.listdir(folder)) == ["holiday.jpg"]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs (a real full disk) needs root")
def test_a_full_agent_home_warns_and_every_command_still_works(
        cairn: Cairn, tmp_path: Path) -> None:
    """The laptop's own disk is full while the archive (a USB drive) has room: the
    caches are only caches, so backups, re-backups and restores go on, with a warning."""
    src = build(tmp_path / "src", {f"d{i}": {f"f{j}.txt": File(b"%d-%d" % (i, j) * 50)
                                              for j in range(40)} for i in range(40)})
    with small_tmpfs(tmp_path / "home", "200k") as home:
        cairn.home = home
        first = cairn.run("backup", src, "--json")
        assert "could not be written" in first.stderr and "warning" in first.stderr
        assert first.json()["files_new"] == 1600
        again = cairn.run("backup", src, "--json").json()
        assert again["files_unchanged"] == 1600 and again["bytes_stored"] < 50_000
        restored_run = cairn.run("restore", "latest", "--target", tmp_path / "out", "--json")
        assert restored_run.json()["files"] == 1600
        assert manifest(restored(tmp_path / "out", src)) == manifest(src)
    assert cairn.check(read_data=True)["ok"]


def test_a_destination_that_is_a_file_is_a_sentence(cairn: Cairn, tmp_path: Path) -> None:
    src = build(tmp_path / "src", {"a.txt": File(b"a")})
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_bytes(b"mine")
    result = cairn.run("backup", src, dest=not_a_folder, expect=EXIT_DESTINATION)
    assert "is a file, not a folder" in one_sentence(result.stderr)
    assert not_a_folder.read_bytes() == b"mine"


def test_a_damaged_key_file_is_named_not_taken_for_a_wrong_passphrase(archived: tuple) -> None:
    cairn, _src, _ = archived
    (key,) = [p for p in (cairn.dest / "keys").rglob("*") if p.is_file()]
    original = key.read_bytes()
    junk = b"not a key file\n"
    (key.parent / hashlib.sha256(junk).hexdigest()).write_bytes(junk)
    cairn.run("snapshots")  # the intact key file still opens the archive
    wrong = cairn.run("snapshots", passphrase="not the passphrase", expect=EXIT_PASSPHRASE)
    assert "1 damaged key file skipped" in one_sentence(wrong.stderr)
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0x01
    key.write_bytes(bytes(damaged))
    for passphrase in (None, "not the passphrase"):
        result = cairn.run("snapshots", passphrase=passphrase, expect=EXIT_INTEGRITY)
        sentence = one_sentence(result.stderr)
        assert "key files" in sentence and "damaged" in sentence
        assert "Wrong passphrase" not in sentence


def test_nonexistent_source(cairn: Cairn, tmp_path: Path) -> None:
    result = cairn.run("backup", tmp_path / "no-such-folder", "--json", expect=EXIT_USAGE)
    assert "no-such-folder" in one_sentence(result.stderr)
    assert not cairn.dest.exists()


def test_no_passphrase_without_a_terminal(cairn: Cairn, tmp_path: Path) -> None:
    src = build(tmp_path / "src", {"a.txt": File(b"a")})
    result = cairn.run("backup", src, "--json", env={"CAIRN_PASSPHRASE": ""}, expect=EXIT_USAGE)
    assert "CAIRN_PASSPHRASE" in one_sentence(result.stderr)
    assert not cairn.dest.exists()


def test_unknown_snapshot(archived: tuple, tmp_path: Path) -> None:
    cairn, _, _ = archived
    result = cairn.run("restore", "deadbeef", "--target", tmp_path / "out",
                       expect=EXIT_NO_SNAPSHOT)
    assert "deadbeef" in one_sentence(result.stderr)


def test_a_path_the_snapshot_lacks_is_named_and_nothing_is_restored(
        archived: tuple, tmp_path: Path) -> None:
    cairn, src, _ = archived
    out = tmp_path / "out"
    for args, missing in [
        (["restore", "latest", "--target", out, "--include", src / "b", "--include",
          src / "nope.txt"], src / "nope.txt"),
        (["restore", "latest", "--target", out, "--include", src / "a.txt" / "below"],
         src / "a.txt" / "below"),  # below a file
        (["ls", "latest", src / "nope.txt"], src / "nope.txt"),
    ]:
        result = cairn.run(*args, expect=EXIT_NO_SNAPSHOT)
        assert one_sentence(result.stderr).startswith(f"cairn: {missing} is not in snapshot ")
    assert not out.exists()  # not even the folders on the way


@pytest.mark.parametrize("kind", ["a file", "not creatable"])
def test_a_restore_target_that_cannot_be_a_folder_is_a_sentence(
        archived: tuple, tmp_path: Path, kind: str) -> None:
    cairn, _, _ = archived
    target = tmp_path / "target"
    if kind == "a file":
        target.write_bytes(b"mine")
        expected = f"cairn: {target} is a file, not a folder: choose a folder to restore into."
    else:
        target = Path("/proc/no-folders-here")
        expected = f"cairn: Cannot restore into {target}: No such file or directory."
    result = cairn.run("restore", "latest", "--target", target, expect=1)
    assert one_sentence(result.stderr) == expected
    if kind == "a file":
        assert target.read_bytes() == b"mine"


def test_newer_key_file_version_is_refused(archived: tuple) -> None:
    cairn, src, _ = archived
    (key_file,) = (cairn.dest / "keys").iterdir()
    doc = json.loads(key_file.read_bytes())
    doc["version"] = 99
    newer = json.dumps(doc).encode()
    key_file.unlink()  # a newer Cairn names its key files by their SHA-256 too
    (key_file.parent / hashlib.sha256(newer).hexdigest()).write_bytes(newer)
    for args in (["snapshots"], ["backup", src]):
        result = cairn.run(*args, expect=EXIT_ARCHIVE)
        assert "newer" in one_sentence(result.stderr)


def test_unreadable_files_are_named_and_the_snapshot_is_still_written(
        cairn: Cairn, tmp_path: Path) -> None:
    src = build(tmp_path / "src", {"ok.txt": File(b"fine"), "locked.txt": File(b"secret"),
                                   "locked-dir": {"inside.txt": File(b"x")},
                                   "sub": {"ok2.txt": File(b"fine too")}})
    preexec = unreadable_for_child(src / "locked.txt")
    os.chmod(src / "locked-dir", 0)
    assert not child_can_read(src / "locked.txt", preexec), "the test must really lock it"

    result = cairn.run("backup", src, "--json", preexec_fn=preexec, expect=EXIT_PARTIAL)
    doc = result.json()
    assert f"{src}/locked.txt" in result.stderr and f"{src}/locked-dir" in result.stderr
    assert len(doc["errors"]) == 2
    assert [s["id"] for s in cairn.snapshots()] == [doc["snapshot_id"]]

    cairn.restore(doc["snapshot_id"], tmp_path / "out")
    copy = restored(tmp_path / "out", src)
    assert (copy / "ok.txt").read_bytes() == b"fine"
    assert (copy / "sub" / "ok2.txt").read_bytes() == b"fine too"
    assert not (copy / "locked.txt").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs (a real full disk) needs root")
def test_full_destination(cairn: Cairn, tmp_path: Path) -> None:
    src = build(tmp_path / "src", {"small.txt": File(b"small")})
    with small_tmpfs(tmp_path / "usb-stick", "3m") as stick:
        cairn.dest = stick / "archive"
        earlier = cairn.backup(src)
        before = manifest(src)
        (src / "big.bin").write_bytes(random_bytes(5 * 1024 * 1024, 5))
        result = cairn.run("backup", src, "--json", expect=EXIT_FULL)
        assert "full" in one_sentence(result.stderr)
        assert result.stdout == ""
        assert [s["id"] for s in cairn.snapshots()] == [earlier["snapshot_id"]]
        assert list((cairn.dest / "tmp").iterdir()) == [], "no temp files left to fill the disk"
        assert cairn.check(read_data=True)["ok"]
        cairn.restore(earlier["snapshot_id"], tmp_path / "out")
        assert manifest(restored(tmp_path / "out", src)) == before
        (src / "big.bin").unlink()
        assert cairn.backup(src)["files_unchanged"] == 1  # once space is free, backups work


def test_an_empty_path_is_refused_not_taken_for_the_current_folder(
        archived: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`cairn restore latest --target "$OUT"` with OUT unset must not restore into the
    current folder (nor `cairn backup "$DIR"` back it up)."""
    cairn, _src, _ = archived
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    before = listing(cairn.dest)
    for args in (["backup", ""], ["restore", "latest", "--target", ""],
                 ["restore", "latest", "--target", tmp_path / "out", "--include", " "]):
        result = cairn.run(*args, expect=EXIT_USAGE)
        assert "empty" in one_sentence(result.stderr)
    assert listing(cairn.dest) == before and not (tmp_path / "out").exists()
    assert list((tmp_path / "cwd").iterdir()) == []


def test_two_runs_creating_the_same_archive_at_once_share_one_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The folder is claimed by making keys/ (atomic): the run that loses the race waits
    for the winner's key file and opens the archive with it, instead of writing a second
    master key (half the data would then not open)."""
    import threading

    from agent.archive import repository
    from agent.archive.repository import Repository
    from agent.codec.keys import ArchiveKeys, make_key_file
    from agent.dest.local import LocalDestination
    from agent.errors import ArchiveError

    dest = LocalDestination(tmp_path / "archive")
    assert dest.claim_creation()  # another run claimed the folder...
    assert dest.creation_claimed() and not dest.claim_creation()
    keys = ArchiveKeys.generate()
    key_file = make_key_file(keys, "pw")
    writer = threading.Timer(0.3, dest.put_bytes,  # ...and writes its key file a moment later
                             ("keys", hashlib.sha256(key_file).hexdigest(), key_file))
    writer.start()
    loser = Repository.create(dest, "pw", tmp_path / "cache")
    writer.join()
    assert loser.keys.archive_id == keys.archive_id and len(dest.list("keys")) == 1
    loser.close()

    monkeypatch.setattr(repository, "CREATION_WAIT_S", 0.2)
    stuck = LocalDestination(tmp_path / "stuck")
    stuck.claim_creation()  # a run killed before its key file
    with pytest.raises(ArchiveError, match="unfinished archive"):
        Repository.create(stuck, "pw", tmp_path / "cache-2")
