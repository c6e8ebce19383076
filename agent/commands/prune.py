"""`cairn prune`: apply the retention policy (docs/retention.md)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from agent.cli import Context, add_dest_options, print_json
from agent.engine.progress import Progress
from agent.engine.prune import GRACE_S, PruneReport, forget_snapshot, run_prune
from agent.errors import UsageError
from agent.retention.policy import RetentionPolicy, format_duration, parse_duration
from agent.term_progress import shown

#: flag -> (policy field, help)
POLICY_FLAGS = {
    "--keep-within": ("keep_within", "keep every snapshot younger than this (default 1d)"),
    "--hourly": ("hourly", "then one per hour up to this age (default 7d)"),
    "--daily": ("daily", "then one per day up to this age (default 90d)"),
    "--weekly": ("weekly", "then one per week up to this age (default 1y)"),
    "--monthly": ("monthly", "then one per month up to this age (default forever)"),
    "--deleted-files": ("deleted_files",
                        "keep deleted or newly excluded files this long (default forever)"),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prune", help="forget snapshots the retention policy drops; free space")
    p.add_argument("--dry-run", action="store_true",
                   help="show what would be forgotten and freed; change nothing")
    for flag, (_field, text) in POLICY_FLAGS.items():
        p.add_argument(flag, metavar="DURATION", help=text + "; 0 = off")
    p.add_argument("--grace", metavar="DURATION", default=format_duration(GRACE_S),
                   help="never remove packs this computer first saw less than this long ago "
                        "(default 1h; protects backups running elsewhere)")
    p.add_argument("--now", metavar="TIME",
                   help="apply the policy as if it were this ISO time (for tests and what-if "
                        "runs; default: the clock)")
    add_dest_options(p)
    p.set_defaults(func=cmd_prune)

    p = sub.add_parser("forget", help="remove one snapshot, e.g. a damaged one (its data is "
                                      "freed by the next prune)")
    p.add_argument("snapshot", metavar="SNAPSHOT", help="its ID (8 hex digits or more)")
    add_dest_options(p)
    p.set_defaults(func=cmd_forget)


def policy_from_args(args: argparse.Namespace) -> RetentionPolicy:
    given = {field: getattr(args, field) for field, _ in POLICY_FLAGS.values()
             if getattr(args, field) is not None}
    return RetentionPolicy.from_dict(given)


def parse_now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--now must be an ISO time like 2027-01-31T12:00:00+00:00, "
                         f"not {text!r}.") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def cmd_prune(args: argparse.Namespace, ctx: Context) -> int:
    policy = policy_from_args(args)
    now = parse_now(args.now)
    grace = parse_duration(args.grace, "--grace")
    if grace is None:
        raise UsageError("--grace must be a duration like 1h, not forever.")
    repo = ctx.open_repo(args)
    progress = Progress()
    try:
        with shown(progress, "Pruning", ctx.show_progress(args)):
            report = run_prune(repo, policy, now=now, dry_run=args.dry_run, progress=progress,
                               grace_s=grace)
    finally:
        repo.close()
    if args.json:
        print_json(report.to_dict())
    else:
        print_report(report)
    return 0


def print_report(report: PruneReport) -> None:
    would = "Would forget" if report.dry_run else "Forgot"
    for snap in report.forgotten:
        print(f"forget {snap['id'][:8]}  {snap['time'][:16].replace('T', ' ')}  "
              f"{snap['device']:<14} {', '.join(snap['paths'])}  ({snap['reason']})")
    for carry in report.carries:
        name = (carry["id"] or "(new)")[:8]
        print(f"deleted files kept: carry snapshot {name} for {carry['device']} "
              f"{', '.join(carry['paths'])}: {carry['items']} item(s)")
    kept = len(report.snapshots) - len(report.forgotten)
    print(f"{would} {len(report.forgotten)} of {len(report.snapshots)} snapshots "
          f"({kept} kept).")
    verb = "would be" if report.dry_run else "were"
    rewritten = f"{report.packs_rewritten} rewritten" + (
        "" if report.dry_run else f" into {report.packs_written} new")
    print(f"Packs: {report.packs_removed} of {report.packs_total} {verb} removed ({rewritten}), "
          f"{report.packs_young} kept for the grace period; about {_size(report.bytes_freed)} "
          "freed.")
    for warning in report.warnings:
        print(f"warning: {warning}")
    if report.dry_run:
        print("Dry run: nothing was changed.")


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def cmd_forget(args: argparse.Namespace, ctx: Context) -> int:
    repo = ctx.open_repo(args)
    try:
        forgotten = forget_snapshot(repo, args.snapshot)
    finally:
        repo.close()
    if args.json:
        print_json({"forgotten": forgotten})
    else:
        print(f"Forgot snapshot {forgotten[:8]}; the next `cairn prune` frees the data only it "
              "held.")
    return 0
