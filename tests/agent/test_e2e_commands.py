"""The JSON contracts of `snapshots` and `check`, and changing the passphrase."""

from __future__ import annotations

import re
import socket
from datetime import datetime
from pathlib import Path

from tests.agent.cairn_cli import Cairn
from tests.agent.treespec import File, build, manifest, restored


def test_snapshots_are_listed_newest_first_with_the_documented_fields(
        cairn: Cairn, tmp_path: Path) -> None:
    docs = build(tmp_path / "docs", {"a.txt": File(b"a")})
    photos = build(tmp_path / "photos", {"p.jpg": File(b"p")})
    ids = [cairn.backup(docs)["snapshot_id"], cairn.backup(photos)["snapshot_id"],
           cairn.backup(docs, photos)["snapshot_id"]]
    snaps = cairn.snapshots()
    assert [s["id"] for s in snaps] == ids[::-1]
    times = [datetime.fromisoformat(s["time"]) for s in snaps]
    assert times == sorted(times, reverse=True) and all(t.tzinfo for t in times)
    assert [sorted(s["paths"]) for s in snaps] == [sorted([str(docs), str(photos)]),
                                                   [str(photos)], [str(docs)]]
    assert {s["host"] for s in snaps} == {socket.gethostname()}
    assert all(re.fullmatch(r"[0-9a-f]{64}", s["id"]) for s in snaps)
    human = cairn.run("snapshots").stdout
    assert all(i[:8] in human for i in ids)


def test_backup_of_an_empty_folder_checks_clean(cairn: Cairn, tmp_path: Path) -> None:
    src = build(tmp_path / "src", {})
    doc = cairn.backup(src)
    assert doc["files_total"] == 0 and doc["errors"] == []
    report = cairn.check(read_data=True)
    assert report["ok"] and report["snapshots"] == 1 and report["errors"] == []
    assert report["damaged_packs"] == {} and report["affected_files"] == []
    assert report["packs_read"] == report["packs"] >= 1


def test_check_json_counts(cairn: Cairn, tmp_path: Path) -> None:
    src = build(tmp_path / "src", {"a.txt": File(b"a"), "b.txt": File(b"b"), "c": {}})
    cairn.backup(src)
    report = cairn.check()
    assert report["ok"] and report["packs_read"] == 0
    assert report["blobs"] == 2 and report["trees"] >= 2
    assert "No errors found." in cairn.run("check").stdout


def test_changing_the_passphrase(cairn: Cairn, tmp_path: Path) -> None:
    src = build(tmp_path / "src", {"a.txt": File(b"a"), "sub": {"b.txt": File(b"b")}})
    before = manifest(src)
    snap = cairn.backup(src)["snapshot_id"]
    packs = set(cairn.data_packs())
    result = cairn.run("passphrase", env={"CAIRN_NEW_PASSPHRASE": "a new passphrase"})
    assert "no data was re-encrypted" in result.stdout.lower()
    assert len(list((cairn.dest / "keys").iterdir())) == 1
    assert set(cairn.data_packs()) == packs

    old = cairn.run("snapshots", expect=5)
    assert "passphrase" in old.stderr.lower()
    cairn.passphrase = "a new passphrase"
    cairn.restore(snap, tmp_path / "out")
    assert manifest(restored(tmp_path / "out", src)) == before
    assert cairn.backup(src)["files_unchanged"] == 2


def test_passphrase_change_to_the_same_passphrase_is_refused(cairn: Cairn, tmp_path: Path) -> None:
    cairn.backup(build(tmp_path / "src", {"a.txt": File(b"a")}))
    keys = sorted((cairn.dest / "keys").iterdir())
    result = cairn.run("passphrase", env={"CAIRN_NEW_PASSPHRASE": cairn.passphrase}, expect=2)
    assert "same" in result.stderr
    assert sorted((cairn.dest / "keys").iterdir()) == keys


def test_a_path_reached_through_a_symlinked_folder_is_backed_up_and_kept(
        cairn: Cairn, tmp_path: Path) -> None:
    """macOS's /tmp and /var, or a /home linked elsewhere: the folders on the way are
    recorded as the folders they lead to, so the data below restores, and prune (which
    follows folders only) keeps it."""
    inner = build(tmp_path / "real" / "inner", {"a.txt": File(b"a"), "d": {"b.txt": File(b"b")}})
    (tmp_path / "lnk").symlink_to(tmp_path / "real")
    through = tmp_path / "lnk" / "inner"
    cairn.backup(through)
    listed = {e["path"]: e["type"] for e in cairn.json("ls", "latest")}
    assert listed[str(tmp_path / "lnk")] == "dir"
    assert listed[str(through / "d" / "b.txt")] == "file"
    cairn.run("prune", "--keep-within", "0", "--hourly", "0", "--daily", "0", "--weekly", "0",
              "--monthly", "1y", "--grace", "0")
    assert cairn.check(read_data=True)["ok"]
    cairn.restore("latest", tmp_path / "out")
    assert manifest(restored(tmp_path / "out", through)) == manifest(inner)


def test_backing_up_a_symlink_says_the_link_itself_is_backed_up(
        cairn: Cairn, tmp_path: Path) -> None:
    build(tmp_path / "real", {"a.txt": File(b"a")})
    (tmp_path / "Documents").symlink_to(tmp_path / "real")
    result = cairn.run("backup", tmp_path / "Documents", "--json")
    assert result.json()["files_total"] == 0
    assert "symbolic link" in result.stderr and str(tmp_path / "real") in result.stderr


def test_dot_dot_in_a_path_is_resolved_by_name(cairn: Cairn, tmp_path: Path) -> None:
    """`cairn backup docs/sub/..` once recorded a folder named ".." that no restore
    would accept; paths given with "." or ".." are the folders they name."""
    docs = build(tmp_path / "docs", {"a.txt": File(b"a"), "sub": {"b.txt": File(b"b")}})
    cairn.backup(docs / "sub" / ".." / ".")
    (snap,) = cairn.snapshots()
    assert snap["paths"] == [str(docs)]
    roundabout = str(docs / "sub" / ".." / "a.txt")
    assert [e["path"] for e in cairn.json("ls", "latest", roundabout)] == [str(docs / "a.txt")]
    cairn.restore("latest", tmp_path / "out", roundabout)
    assert (restored(tmp_path / "out", docs) / "a.txt").read_bytes() == b"a"
    cairn.restore("latest", tmp_path / "all")
    assert manifest(restored(tmp_path / "all", docs)) == manifest(docs)


def test_the_root_folder_itself_can_be_backed_up(cairn: Cairn, tmp_path: Path) -> None:
    """`cairn backup /` (a whole system, with excludes) was an internal error. Here every
    top folder but /etc is excluded."""
    excludes = ["--exclude", "/[!e]*", "--exclude", "/e[!t]*", "--exclude", "/et[!c]*"]
    first = cairn.run("backup", "/", *excludes, "--json").json()
    assert first["files_total"] > 0 and first["errors"] == []
    assert cairn.snapshots()[0]["paths"] == ["/"]
    again = cairn.run("backup", "/", *excludes, "--json").json()
    assert again["files_unchanged"] == first["files_total"] and again["files_new"] == 0
    cairn.restore("latest", tmp_path / "out", "/etc/passwd")
    assert (tmp_path / "out" / "etc" / "passwd").read_bytes() == Path("/etc/passwd").read_bytes()


def test_output_cut_short_by_a_pipe_is_not_an_error(cairn: Cairn, tmp_path: Path) -> None:
    """`cairn ls latest | head`: the reader closing the pipe ends cairn quietly."""
    import subprocess

    from tests.agent.cairn_cli import cairn_command

    cairn.backup(build(tmp_path / "many", {f"{i:04}-{'x' * 60}.txt": File(b"x")
                                           for i in range(1500)}))
    proc = subprocess.Popen([*cairn_command(), "ls", "latest", "--dest", str(cairn.dest)],
                            env=cairn.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline()
    proc.stdout.close()
    assert proc.wait(60) == 141
    assert proc.stderr is not None and proc.stderr.read() == b""
