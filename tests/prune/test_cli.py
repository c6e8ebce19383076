"""`cairn prune` as a user runs it: dry run first, flags, JSON, errors as sentences."""

from __future__ import annotations

import pytest

from agent.archive.locks import ArchiveLock
from agent.dest.local import LocalDestination
from tests.agent.cairn_cli import Cairn
from tests.prune.conftest import PASSPHRASE, History, listing
from tests.prune.histories import FORGOTTEN, NOW, make


@pytest.fixture
def cli(history: History) -> Cairn:
    make(history)
    history.repo.close()
    return Cairn(home=history.root / "home", dest=history.dest, passphrase=PASSPHRASE)


def test_dry_run_changes_nothing_and_predicts_the_real_run(history: History, cli: Cairn) -> None:
    before = listing(history.dest)
    preview = cli.json("prune", "--dry-run", "--now", NOW.isoformat(), "--grace", "0")
    assert listing(history.dest) == before
    assert preview["dry_run"] is True
    expected = {history.labels[label] for label in FORGOTTEN}
    assert {s["id"] for s in preview["snapshots"] if s["action"] == "forget"} == expected
    (carry,) = preview["carries"]
    assert carry["id"] is None and carry["items"] == 4  # 3 files and the scratch/ folder
    assert preview["packs_removed"] > 0

    done = cli.json("prune", "--now", NOW.isoformat(), "--grace", "0")
    assert done["dry_run"] is False
    assert {s["id"] for s in done["snapshots"] if s["action"] == "forget"} == expected
    assert (done["packs_removed"], done["packs_rewritten"]) == (
        preview["packs_removed"], preview["packs_rewritten"])
    assert done["carries"][0]["items"] == 4 and done["carries"][0]["id"]
    assert listing(history.dest) != before
    assert cli.check(read_data=True)["ok"]


def test_human_output_says_what_would_go(history: History, cli: Cairn) -> None:
    out = cli.run("prune", "--dry-run", "--now", NOW.isoformat()).stdout
    assert f"forget {history.labels['s9'][:8]}" in out
    assert "hourly (7d): 2027-06-13 10:00 already has" in out
    assert "Would forget 4 of 12 snapshots (8 kept)." in out
    assert "deleted files kept: carry snapshot (new)" in out
    assert "Dry run: nothing was changed." in out


def test_policy_flags(history: History, cli: Cairn) -> None:
    doc = cli.json("prune", "--dry-run", "--now", NOW.isoformat(), "--keep-within", "0",
                   "--hourly", "0", "--daily", "0", "--weekly", "0", "--monthly", "0",
                   "--deleted-files", "30d")
    assert doc["policy"] == {"keep_within": "0", "hourly": "0", "daily": "0", "weekly": "0",
                             "monthly": "0", "deleted_files": "30d"}
    kept = [s for s in doc["snapshots"] if s["action"] == "keep"]
    assert [s["id"] for s in kept] == [history.labels["s12"]]
    # Deleted 30 days or less before NOW: nothing; all five deletions are older.
    assert doc["carries"] == []


@pytest.mark.parametrize(("args", "message"), [
    (["--daily", "often"], "Retention daily must be a duration"),
    (["--monthly=-1y"], "Retention monthly must be a duration"),
    (["--now", "yesterday"], "--now must be an ISO time"),
    (["--grace", "forever"], "--grace must be a duration like 1h"),
])
def test_bad_flags_are_sentences_and_change_nothing(history: History, args: list[str],
                                                    message: str) -> None:
    history.write({"a.txt": "a"})
    history.backup("only", NOW)
    history.repo.close()
    cli = Cairn(home=history.root / "home", dest=history.dest, passphrase=PASSPHRASE)
    before = listing(history.dest)
    result = cli.run("prune", *args, expect=2)
    assert message in result.stderr
    assert listing(history.dest) == before


def test_refused_while_another_process_holds_a_lock(history: History, cli: Cairn) -> None:
    held = ArchiveLock(LocalDestination(history.dest), history.repo.keys, exclusive=False)
    held.acquire()
    before = listing(history.dest)
    result = cli.run("prune", "--now", NOW.isoformat(), expect=4)
    assert "lock held by" in result.stderr and "try again later" in result.stderr
    assert listing(history.dest) == before
    held.release()
