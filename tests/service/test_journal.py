"""The change journal: record, take, commit, roll back, survive a restart."""

from __future__ import annotations

from pathlib import Path

from agent.service import journal as jmod
from agent.service.journal import ChangeJournal


def test_take_returns_changes_then_starts_afresh(tmp_path: Path) -> None:
    j = ChangeJournal(tmp_path)
    j.record("docs", ["/a/x", "/a/y"])
    j.record("docs", ["/a/x"])
    j.record("pics", ["/p/1"])
    assert j.pending("docs") == (None, 2)
    taken = j.take("docs")
    assert taken.dirty == frozenset({"/a/x", "/a/y"}) and taken.reason == "2 changed paths"
    assert j.pending("docs") == (None, 0) and j.pending("pics") == (None, 1)
    j.commit(taken)
    assert j.take("docs").dirty == frozenset()


def test_full_scan_marker_wins_over_paths(tmp_path: Path) -> None:
    j = ChangeJournal(tmp_path)
    j.record("docs", ["/a/x"])
    j.mark_full("docs", "events overflowed")
    j.mark_full("docs", "a later reason")  # the first reason is kept
    j.record("docs", ["/a/y"])
    taken = j.take("docs")
    assert taken.dirty is None and taken.reason == "events overflowed"


def test_rollback_merges_a_failed_take_back(tmp_path: Path) -> None:
    j = ChangeJournal(tmp_path)
    j.record("docs", ["/a/x"])
    taken = j.take("docs")
    j.record("docs", ["/a/z"])  # changed during the failed run
    j.rollback(taken)
    assert j.take("docs").dirty == frozenset({"/a/x", "/a/z"})
    j.mark_full("docs", "sleep")
    full = j.take("docs")
    j.rollback(full)
    assert j.pending("docs") == ("sleep", 0)


def test_journal_survives_a_restart_and_a_crash_mid_run(tmp_path: Path) -> None:
    j = ChangeJournal(tmp_path)
    j.record("docs", ["/a/x", "/a/\n odd name"])
    j.take("docs")  # a run took these, then the process died
    j.record("docs", ["/a/y"])
    j.flush()
    again = ChangeJournal(tmp_path)
    again.load(["docs"])
    assert again.take("docs").dirty == frozenset({"/a/x", "/a/\n odd name", "/a/y"})
    j2 = ChangeJournal(tmp_path)
    j2.mark_full("docs", "overflow")
    j2.flush()
    j3 = ChangeJournal(tmp_path)
    j3.load(["docs"])
    assert j3.pending("docs") == ("overflow", 0)


def test_damaged_journal_means_a_full_scan(tmp_path: Path) -> None:
    (tmp_path / "docs.jsonl").write_text('"/a/x"\n{not json\n')
    j = ChangeJournal(tmp_path)
    j.load(["docs"])
    assert j.pending("docs")[0] == "the change journal was damaged"


def test_too_many_changes_become_a_full_scan(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(jmod, "MAX_PATHS", 10)
    j = ChangeJournal(tmp_path)
    j.record("docs", [f"/a/{i}" for i in range(11)])
    assert "more than 10 changes" in (j.pending("docs")[0] or "")


def test_forget_removes_a_set(tmp_path: Path) -> None:
    j = ChangeJournal(tmp_path)
    j.record("docs", ["/a/x"])
    j.flush()
    j.forget("docs")
    assert j.pending("docs") == (None, 0) and not list(tmp_path.iterdir())
