"""The engine benchmark's rounds: medians, per-round verdicts, and a real two-round run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from enginebench import report  # noqa: E402


def figures(backup_s: float, rebackup_s: float, rss_mb: float | None = 100.0) -> dict:
    return {"backup_s": backup_s, "backup_mb_s": 1000 / backup_s, "backup_cpu_s": backup_s,
            "rebackup_s": rebackup_s, "stored_mb": 400.0, "restore_s": 5.0,
            "restore_mb_s": 200.0, "peak_rss_mb": rss_mb, "peak_pss_mb": rss_mb}


def test_the_headline_figure_is_the_median_of_the_rounds() -> None:
    merged = report.median_summary([figures(6.0, 1.5), figures(9.0, 1.4), figures(5.0, 1.9)])
    assert merged["backup_s"] == 6.0
    assert merged["rebackup_s"] == 1.5
    assert report.median_summary([figures(6.0, 1.5), figures(7.0, 1.5, None)])[
        "peak_rss_mb"] is None  # a round without the figure leaves no median


def test_rounds_met_counts_each_rounds_own_verdict() -> None:
    per_round = [{"cairn": figures(5.0, 1.4), "restic": figures(10.0, 3.0)},  # 2.0x, 0.47x
                 {"cairn": figures(8.0, 1.7), "restic": figures(10.0, 3.0)},  # 1.25x, 0.57x
                 {"cairn": figures(6.0, 1.5), "restic": figures(10.0, 3.0)}]  # 1.67x, 0.5x
    met = report.rounds_met(per_round)["restic"]
    assert met["backup_mb_s"] == 2
    assert met["rebackup_s"] == 2
    assert met["stored_mb"] == 3
    assert "backup_cpu_s" not in met  # no target, no count


@pytest.mark.timeout(300)
def test_a_two_round_run_of_cairn_reports_every_round(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "docs").mkdir(parents=True)
    for i in range(40):
        (data / "docs" / f"note{i}.txt").write_text(f"note {i}\n" * (50 * i + 1))
    (data / "blob.bin").write_bytes(bytes(range(256)) * 4096)
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "engine_bench.py"), "--data", str(data), "--tools", "cairn",
         "--rounds", "2", "--warm", "--work", str(tmp_path / "work"), "--json-out", str(out)],
        capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Medians of 2 rounds:" in done.stdout
    document = json.loads(out.read_text())
    assert document["schema"] == 2 and document["rounds"] == 2
    cairn = document["tools"]["cairn"]
    assert len(cairn["rounds"]) == 2
    assert all(r["verified"] and r["error"] is None for r in cairn["rounds"])
    backups = [r["phases"]["backup"]["seconds"] for r in cairn["rounds"]]
    assert cairn["summary"]["backup_s"] == pytest.approx(sum(backups) / 2)
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())
