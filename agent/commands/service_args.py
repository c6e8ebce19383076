"""Arguments of the service commands (run, status, pause, resume, cancel, sets, config,
support-bundle). The commands themselves live in ``agent.commands.service`` and are
imported only when one runs, so other commands start without the service's imports.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable


def _lazy(name: str) -> Callable[[argparse.Namespace, object], int]:
    def run(args: argparse.Namespace, ctx: object) -> int:
        from agent.commands import service

        return getattr(service, name)(args, ctx)

    return run


def register(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "run", "run the backup service in the foreground (for service managers)")
    p.set_defaults(func=_lazy("cmd_run"))
    p = _add(sub, "status", "show what the service is doing")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_lazy("cmd_status"))
    p = _add(sub, "pause", "pause backups (for DURATION, like 30m or 2h; else until resumed)")
    p.add_argument("duration", nargs="?", metavar="DURATION")
    p.set_defaults(func=_lazy("cmd_pause"))
    _add(sub, "resume", "resume paused backups").set_defaults(func=_lazy("cmd_resume"))
    p = _add(sub, "cancel", "cancel the running backup (it runs again at its next time)")
    p.add_argument("set", nargs="?", metavar="SET")
    p.set_defaults(func=_lazy("cmd_cancel"))
    _register_sets(sub)
    _register_config(sub)
    p = _add(sub, "support-bundle", "write a zip with what support needs (no secrets, no files)")
    p.add_argument("--out", metavar="FILE", help="where to write it (default: current folder)")
    p.add_argument("--description", default="", metavar="TEXT",
                   help="what went wrong, in your words")
    p.set_defaults(func=_lazy("cmd_support_bundle"))


def _add(sub: argparse._SubParsersAction, name: str, help_: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_)
    p.add_argument("--system", action="store_true",
                   help="the system-wide service (its state in /var/lib/cairn or the "
                        "service manager's STATE_DIRECTORY)")
    return p


def _register_sets(sub: argparse._SubParsersAction) -> None:
    sets = sub.add_parser("sets", help="backup sets: what the service backs up, where, how often")
    verbs = sets.add_subparsers(dest="verb", metavar="VERB", required=True)
    p = _add(verbs, "add", "add a backup set")
    p.add_argument("name", metavar="NAME")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--dest", default="", metavar="DEST",
                   help="archive folder, or 'server' (default: the agent home's archive/)")
    p.add_argument("--every", default="15m", metavar="DURATION", help="how often (default 15m)")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB")
    p.add_argument("--window", action="append", default=[], metavar="HH:MM-HH:MM",
                   help="only run inside this time window (repeatable; default: always)")
    p.add_argument("--verify-at", default="03:00", metavar="HH:MM",
                   help="daily full verification scan time ('' for none)")
    p.add_argument("--passphrase-file", default="", metavar="FILE",
                   help="file (mode 600) holding the archive passphrase")
    p.add_argument("--no-builtin-excludes", action="store_true",
                   help="also back up caches, temp files and CACHEDIR.TAG folders")
    p.set_defaults(func=_lazy("cmd_sets_add"))
    p = _add(verbs, "list", "list backup sets")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_lazy("cmd_sets_list"))
    p = _add(verbs, "show", "show one backup set")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_lazy("cmd_sets_show"))
    p = _add(verbs, "remove", "remove a backup set (its snapshots stay in the archive)")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=_lazy("cmd_sets_remove"))


def _register_config(sub: argparse._SubParsersAction) -> None:
    conf = sub.add_parser("config", help="show or change the service configuration")
    verbs = conf.add_subparsers(dest="verb", metavar="VERB", required=True)
    p = _add(verbs, "show", "print the configuration (TOML, or --json)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_lazy("cmd_config_show"))
    p = _add(verbs, "get", "print one setting")
    p.add_argument("key", metavar="KEY", help="dotted key, like resources.cpu_away")
    p.set_defaults(func=_lazy("cmd_config_get"))
    p = _add(verbs, "set", "change one setting (validated; the service reloads it)")
    p.add_argument("key", metavar="KEY")
    p.add_argument("value", metavar="VALUE", help="lists: comma-separated or [\"a\", \"b\"]")
    p.set_defaults(func=_lazy("cmd_config_set"))
