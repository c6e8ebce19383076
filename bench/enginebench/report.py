"""Turn tool results into the printed tables, Cairn's ratios to its peers, and JSON.

MB means 10^6 bytes. Throughput is the source's file bytes divided by wall time.
A tool's headline figure is the median over the rounds. A ratio is Cairn's median
divided by the peer's; whether higher or lower is better is printed next to it,
with the target issue 2 sets where it sets one, and in how many rounds the target
was met when each round's figures are compared on their own.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass

from .manifest import TreeStats
from .runner import ToolResult

MB = 1_000_000


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    better: str  # "higher" or "lower"


RATIO_METRICS = (
    Metric("backup_mb_s", "initial backup MB/s", "higher"),
    Metric("rebackup_s", "no-change re-backup s", "lower"),
    Metric("stored_mb", "stored size MB", "lower"),
    Metric("restore_mb_s", "restore MB/s", "higher"),
    Metric("peak_rss_mb", "peak RSS MB", "lower"),
)

# Issue 2's targets for Cairn, as ratios of Cairn's figure to the peer's.
TARGETS: dict[tuple[str, str], float] = {
    ("restic", "backup_mb_s"): 1.5,
    ("borg", "backup_mb_s"): 3.0,
    ("restic", "rebackup_s"): 0.5,
    ("restic", "stored_mb"): 1.05,
    ("restic", "restore_mb_s"): 1.0,
    ("restic", "peak_rss_mb"): 1.0,
}

COLUMNS = (
    ("backup_s", "backup s"), ("backup_mb_s", "backup MB/s"), ("backup_cpu_s", "backup CPU s"),
    ("rebackup_s", "re-backup s"), ("stored_mb", "stored MB"), ("restore_s", "restore s"),
    ("restore_mb_s", "restore MB/s"), ("peak_rss_mb", "peak RSS MB"),
    ("peak_pss_mb", "peak PSS MB"),
)


def summarize(result: ToolResult, data_bytes: int) -> dict[str, float | None]:
    """The headline figures of one tool (None where a phase did not complete)."""
    phases = result.phases
    backup, rebackup, restore = (phases.get(p) for p in ("backup", "rebackup", "restore"))
    rss = [m.peak_rss_bytes for m in phases.values()]
    pss = [m.peak_pss_bytes for m in phases.values() if m.peak_pss_bytes is not None]
    return {
        "backup_s": backup.seconds if backup else None,
        "backup_mb_s": data_bytes / MB / backup.seconds if backup else None,
        "backup_cpu_s": backup.cpu_seconds if backup else None,
        "rebackup_s": rebackup.seconds if rebackup else None,
        "stored_mb": result.stored_bytes / MB if result.stored_bytes is not None else None,
        "restore_s": restore.seconds if restore else None,
        "restore_mb_s": data_bytes / MB / restore.seconds if restore else None,
        "peak_rss_mb": max(rss) / MB if rss else None,
        "peak_pss_mb": max(pss) / MB if pss else None,
    }


def median_summary(per_round: list[dict[str, float | None]]) -> dict[str, float | None]:
    """Each figure's median over the rounds; None where any round lacks it."""
    merged: dict[str, float | None] = {}
    for key in per_round[0]:
        values = [summary[key] for summary in per_round]
        merged[key] = None if None in values else statistics.median(values)  # type: ignore[type-var]
    return merged


def rounds_met(per_round: list[dict[str, dict[str, float | None]]]) -> dict[str, dict[str, int]]:
    """For each peer and targeted metric: in how many rounds that round's ratio met it."""
    counts: dict[str, dict[str, int]] = {}
    for summaries in per_round:
        for peer, peer_ratios in ratios(summaries).items():
            for key, entry in peer_ratios.items():
                if entry["target"] is not None:
                    counts.setdefault(peer, {}).setdefault(key, 0)
                    counts[peer][key] += bool(entry["met"])
    return counts


def ratios(summaries: dict[str, dict[str, float | None]]) -> dict[str, dict[str, dict]]:
    """Cairn's figure over each peer's, per metric, with the target and whether it is met."""
    cairn = summaries.get("cairn")
    out: dict[str, dict[str, dict]] = {}
    if cairn is None:
        return out
    for peer, figures in summaries.items():
        if peer == "cairn":
            continue
        out[peer] = {}
        for metric in RATIO_METRICS:
            mine, theirs = cairn[metric.key], figures[metric.key]
            ratio = mine / theirs if mine is not None and theirs else None
            target = TARGETS.get((peer, metric.key))
            met = None
            if ratio is not None and target is not None:
                met = ratio >= target if metric.better == "higher" else ratio <= target
            out[peer][metric.key] = {"ratio": ratio, "better": metric.better,
                                     "target": target, "met": met}
    return out


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}" if value < 100 else f"{value:.1f}"


def _status(rounds: list[ToolResult]) -> str:
    if any(result.error for result in rounds):
        return "FAILED"
    differing = [result.mismatches for result in rounds if not result.verified]
    return f"DIFFERS ({max(differing)})" if differing else "identical"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


ROUND_COLUMNS = (("backup_s", "backup s"), ("backup_cpu_s", "backup CPU s"),
                 ("rebackup_s", "re-backup s"), ("restore_s", "restore s"),
                 ("peak_rss_mb", "peak RSS MB"))


def results_table(results: dict[str, list[ToolResult]], summaries: dict[str, dict]) -> str:
    """One row per tool with every headline figure (medians) and the restore check."""
    rows = [["tool", "version", *(label for _, label in COLUMNS), "restore check"]]
    for name, rounds in results.items():
        figures = summaries[name]
        rows.append([name, rounds[0].version, *(_cell(figures[k]) for k, _ in COLUMNS),
                     _status(rounds)])
    return _table(rows)


def rounds_table(per_round: list[dict[str, dict[str, float | None]]]) -> str:
    """Every round's main figures, one row per round and tool."""
    rows = [["round", "tool", *(label for _, label in ROUND_COLUMNS)]]
    for number, summaries in enumerate(per_round, start=1):
        for name, figures in summaries.items():
            rows.append([str(number), name, *(_cell(figures[k]) for k, _ in ROUND_COLUMNS)])
    return _table(rows)


def ratios_table(peer: str, peer_ratios: dict[str, dict], rounds: int = 1) -> str:
    """Cairn's ratio to one peer for each metric, with the issue's target when there is one
    (and, over several rounds, in how many rounds it was met)."""
    head = [f"Cairn / {peer}", "ratio", "better", "target", "verdict"]
    rows = [head + (["rounds met"] if rounds > 1 else [])]
    for metric in RATIO_METRICS:
        entry = peer_ratios[metric.key]
        target = entry["target"]
        sign = ">=" if metric.better == "higher" else "<="
        verdict = "-" if entry["met"] is None else "met" if entry["met"] else "MISSED"
        row = [metric.label, "-" if entry["ratio"] is None else f"{entry['ratio']:.2f}x",
               entry["better"], "-" if target is None else f"{sign} {target:.2f}x", verdict]
        if rounds > 1:
            met = entry.get("rounds_met")
            row.append("-" if met is None else f"{met} of {rounds}")
        rows.append(row)
    return _table(rows)


def result_json(rounds: list[ToolResult], summary: dict) -> dict:
    """A tool's results, every round's and the medians, as plain JSON data."""
    data: dict[str, object] = {"version": rounds[0].version, "settings": rounds[0].settings,
                               "summary": summary, "rounds": []}
    for result in rounds:
        measured_round = asdict(result)
        for measured in measured_round["phases"].values():
            measured.pop("stdout")
            measured["stderr_tail"] = measured.pop("stderr").strip().splitlines()[-5:]
        data["rounds"].append(measured_round)  # type: ignore[union-attr]
    return data


def dataset_line(path: str, tree: TreeStats) -> str:
    return (f"Data: {path}  ({tree.bytes / MB:,.1f} MB in {tree.files:,} files, "
            f"{tree.dirs:,} folders, {tree.links:,} symlinks)")
