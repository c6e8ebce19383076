"""Turn tool results into the printed table, Cairn's ratios to its peers, and JSON.

MB means 10^6 bytes. Throughput is the source's file bytes divided by wall time.
A ratio is Cairn's figure divided by the peer's; whether higher or lower is
better is printed next to it, with the target issue 2 sets where it sets one.
"""

from __future__ import annotations

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


def _status(result: ToolResult) -> str:
    if result.error:
        return "FAILED"
    return "identical" if result.verified else f"DIFFERS ({result.mismatches})"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def results_table(results: list[ToolResult], summaries: dict[str, dict]) -> str:
    """One row per tool with every headline figure and the restore check."""
    rows = [["tool", "version", *(label for _, label in COLUMNS), "restore check"]]
    for result in results:
        figures = summaries[result.name]
        rows.append([result.name, result.version, *(_cell(figures[k]) for k, _ in COLUMNS),
                     _status(result)])
    return _table(rows)


def ratios_table(peer: str, peer_ratios: dict[str, dict]) -> str:
    """Cairn's ratio to one peer for each metric, with the issue's target when there is one."""
    rows = [[f"Cairn / {peer}", "ratio", "better", "target", "verdict"]]
    for metric in RATIO_METRICS:
        entry = peer_ratios[metric.key]
        target = entry["target"]
        sign = ">=" if metric.better == "higher" else "<="
        verdict = "-" if entry["met"] is None else "met" if entry["met"] else "MISSED"
        rows.append([metric.label, "-" if entry["ratio"] is None else f"{entry['ratio']:.2f}x",
                     entry["better"], "-" if target is None else f"{sign} {target:.2f}x",
                     verdict])
    return _table(rows)


def result_json(result: ToolResult, summary: dict) -> dict:
    """A tool's result as plain JSON data."""
    data = asdict(result)
    for measured in data["phases"].values():
        measured.pop("stdout")
        measured["stderr_tail"] = measured.pop("stderr").strip().splitlines()[-5:]
    data["summary"] = summary
    return data


def dataset_line(path: str, tree: TreeStats) -> str:
    return (f"Data: {path}  ({tree.bytes / MB:,.1f} MB in {tree.files:,} files, "
            f"{tree.dirs:,} folders, {tree.links:,} symlinks)")
