"""Service commands: run, status, pause, resume, cancel, sets, config, support-bundle.

Every command takes ``--system`` to address the system-wide service instead
of the per-user one (docs/service.md). Commands that act on a running service
go through its local API (``agent.api.client``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from agent.api import schemas as s
from agent.api.client import AgentClient, ApiError, ServiceNotRunning
from agent.api.server import ApiServer
from agent.cli import Context, print_json
from agent.commands.archive import require_given
from agent.errors import EXIT_PARTIAL, CairnError, UsageError
from agent.scan.walker import source_path
from agent.service import config as cfgmod
from agent.service import logs, support, tomlwrite
from agent.service import status as statusmod
from agent.service.archives import Archives
from agent.service.backend import ServiceBackend
from agent.service.clock import Clock
from agent.service.config import SetConfig
from agent.service.daemon import Service, acquire_instance_lock, install_signal_handlers
from agent.service.durations import format_duration, parse_duration
from agent.service.layout import ServiceLayout
from agent.service.resources import Decision
from agent.service.runner import BackupRunner, RunEnv
from agent.service.secrets import read_passphrase_file
from agent.service.state import StateStore
from agent.service.throttle import RateLimiter

T = TypeVar("T")


def layout_of(args: argparse.Namespace, ctx: Context) -> ServiceLayout:
    if getattr(args, "system", False):
        return ServiceLayout.for_system(ctx.env)
    return ServiceLayout.for_user(ctx.paths)


def _client(layout: ServiceLayout) -> AgentClient:
    return AgentClient.for_home(layout.home)


def _running_client(layout: ServiceLayout) -> AgentClient:
    try:
        client = _client(layout)
        client.version()
        return client
    except ServiceNotRunning:
        raise UsageError("The Cairn service is not running; start it with `cairn run`.") from None


# --- run ------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace, ctx: Context) -> int:
    layout = layout_of(args, ctx)
    layout.prepare()
    _lock = acquire_instance_lock(layout.lock_file)
    service = Service(layout, ctx.env)
    settings = service.config.service
    logs.setup(layout.logs, settings)
    if settings.nice and hasattr(os, "nice"):
        os.nice(settings.nice)
    api = ApiServer(ServiceBackend(service), transport=service.config.api.transport,
                    socket_path=layout.socket, endpoint_file=layout.endpoint_file,
                    token_file=layout.token_file, system=layout.system,
                    allowed_uids=_uids(service.config.api.allowed_users))
    install_signal_handlers(service)
    endpoint = api.start()
    try:
        service.start()
        where = endpoint.socket or f"127.0.0.1:{endpoint.port}"
        print(f"Cairn service running ({layout.mode} mode, home {layout.home}, API on {where}).",
              file=sys.stderr, flush=True)
        service.loop()
    finally:
        stopped = service.shutdown()
        api.stop()
    if not stopped:  # a worker is still busy in a large file: do not wait for it
        sys.stderr.flush()
        os._exit(0)
    return 0


def _uids(users: tuple[str, ...]) -> frozenset[int]:
    if not users:
        return frozenset()
    import pwd  # POSIX only; allowed_users applies to the Unix-socket transport

    uids = set()
    for user in users:
        try:
            uids.add(int(user) if user.isdigit() else pwd.getpwnam(user).pw_uid)
        except KeyError:
            raise UsageError(f"api.allowed_users names an unknown user {user!r}.") from None
    return frozenset(uids)


# --- status, pause, resume, cancel ----------------------------------------------------


def cmd_status(args: argparse.Namespace, ctx: Context) -> int:
    layout = layout_of(args, ctx)
    try:
        with _client(layout) as client:
            status = client.status()
    except ServiceNotRunning:
        config = cfgmod.load(layout.config_file)
        state = StateStore(layout.state_dir / "state.json")
        status = statusmod.offline(layout, config, state, time.time())
    if args.json:
        print_json(s.to_json(status))
    else:
        print(_status_text(status))
    return 0


def _status_text(st: s.Status) -> str:
    lines = [f"Cairn: {st.state}" + (f" — {st.why}" if st.why else "")]
    for item in st.sets:
        last = item.last_completed[:16].replace("T", " ") if item.last_completed else "never"
        nxt = item.next_scheduled[:16].replace("T", " ") if item.next_scheduled else "-"
        lines.append(f"  {item.name}: {item.state}; last backup {last} UTC; next {nxt} UTC")
        p = item.progress
        if p is not None:
            eta = f", about {format_duration(p.eta_s)} left" if p.eta_s is not None else ""
            lines.append(f"    {p.files_done} files, {_mib(p.bytes_done)} read, "
                         f"{_mib(p.bytes_stored)} stored, {_mib(p.rate_bps)}/s{eta}")
            if p.current_file:
                lines.append(f"    {p.current_file}")
        elif item.why and item.state != s.IDLE:
            lines.append(f"    {item.why}")
    lines += [f"  warning: {w}" for w in st.warnings]
    return "\n".join(lines)


def _mib(n: float) -> str:
    return f"{n / 1048576:.1f} MiB"


def cmd_pause(args: argparse.Namespace, ctx: Context) -> int:
    seconds = parse_duration(args.duration, "DURATION") if args.duration else None
    with _running_client(layout_of(args, ctx)) as client:
        print(client.pause(seconds).message)
    return 0


def cmd_resume(args: argparse.Namespace, ctx: Context) -> int:
    with _running_client(layout_of(args, ctx)) as client:
        print(client.resume().message)
    return 0


def cmd_cancel(args: argparse.Namespace, ctx: Context) -> int:
    with _running_client(layout_of(args, ctx)) as client:
        print(_api(lambda: client.cancel(args.set)).message)
    return 0


def _api(call: Callable[[], T]) -> T:
    try:
        return call()
    except ApiError as exc:
        raise UsageError(str(exc)) from None


# --- sets and config --------------------------------------------------------------------


def cmd_sets_add(args: argparse.Namespace, ctx: Context) -> int:
    layout = layout_of(args, ctx)
    config = cfgmod.load(layout.config_file)
    paths = []
    for raw in args.paths:
        path = source_path(require_given(raw, "A path to back up"))
        if not path.exists():
            print(f"cairn: note: {path} does not exist yet; it is backed up once it does.",
                  file=sys.stderr)
        paths.append(str(path))
    dest = args.dest if args.dest in ("", "server") else str(Path(args.dest).expanduser()
                                                              .absolute())
    pass_file = str(Path(args.passphrase_file).expanduser().absolute()) \
        if args.passphrase_file else ""
    if pass_file:
        read_passphrase_file(Path(pass_file))
    new = SetConfig(name=args.name, paths=tuple(paths), dest=dest, every=args.every,
                    windows=tuple(args.window), verify_at=args.verify_at,
                    exclude=tuple(args.exclude), builtin_excludes=not args.no_builtin_excludes,
                    passphrase_file=pass_file)
    config = cfgmod.add_set(config, new)
    cfgmod.save(config, layout.config_file)
    print(f"Added backup set {args.name}: {', '.join(paths)} every {args.every}.")
    if not pass_file and not config.service.passphrase_file:
        print("The service needs the archive passphrase: use --passphrase-file, set "
              "service.passphrase_file, or start `cairn run` with CAIRN_PASSPHRASE.",
              file=sys.stderr)
    return 0


def cmd_sets_list(args: argparse.Namespace, ctx: Context) -> int:
    config = cfgmod.load(layout_of(args, ctx).config_file)
    if args.json:
        print_json(config.to_doc()["sets"])
        return 0
    if not config.sets:
        print("No backup sets yet; add one with `cairn sets add NAME PATH...`.")
    for item in config.sets:
        print(f"{item.name:<16} every {item.every:<6} {', '.join(item.paths)}"
              f"  → {item.dest or 'agent home archive'}")
    return 0


def cmd_sets_show(args: argparse.Namespace, ctx: Context) -> int:
    config = cfgmod.load(layout_of(args, ctx).config_file)
    config.find_set(args.name)
    doc = config.to_doc()["sets"][args.name]
    if args.json:
        print_json(doc)
    else:
        for key, value in doc.items():
            print(f"{key} = {json.dumps(value)}")
    return 0


def cmd_sets_remove(args: argparse.Namespace, ctx: Context) -> int:
    layout = layout_of(args, ctx)
    config = cfgmod.remove_set(cfgmod.load(layout.config_file), args.name)
    cfgmod.save(config, layout.config_file)
    print(f"Removed backup set {args.name}; its snapshots stay in the archive.")
    return 0


def cmd_config_show(args: argparse.Namespace, ctx: Context) -> int:
    config = cfgmod.load(layout_of(args, ctx).config_file)
    if args.json:
        print_json(config.to_doc())
    else:
        print(tomlwrite.dumps(config.to_doc()), end="")
    return 0


def cmd_config_get(args: argparse.Namespace, ctx: Context) -> int:
    value = cfgmod.get_value(cfgmod.load(layout_of(args, ctx).config_file), args.key)
    print(value if isinstance(value, str) else json.dumps(value))
    return 0


def cmd_config_set(args: argparse.Namespace, ctx: Context) -> int:
    layout = layout_of(args, ctx)
    config = cfgmod.set_value(cfgmod.load(layout.config_file), args.key, args.value)
    cfgmod.save(config, layout.config_file)
    print(f"{args.key} = {json.dumps(cfgmod.get_value(config, args.key))}")
    return 0


# --- support bundle -------------------------------------------------------------------


def cmd_support_bundle(args: argparse.Namespace, ctx: Context) -> int:
    layout = layout_of(args, ctx)
    try:
        with _client(layout) as client:
            status_doc = s.to_json(client.status())
    except (ServiceNotRunning, ApiError):
        status_doc = None
    out = Path(args.out).expanduser() if args.out else Path.cwd() / support.default_name()
    try:
        names = support.build(layout, out.absolute(), args.description, status_doc, ctx.env)
    except OSError as exc:
        with contextlib.suppress(OSError):
            out.unlink()  # a half-written zip (a full disk) helps nobody
        raise CairnError(f"Cannot write the support bundle {out}: "
                         f"{exc.strerror or exc}.") from exc
    print(f"Support bundle written to {out} ({len(names)} items). It holds no passphrase, "
          "token or file content.")
    return 0


# --- backup of every set (``cairn backup`` without paths) ---------------------------------


def backup_sets(args: argparse.Namespace, ctx: Context) -> int:
    """Back up every set now: through the running service, else directly here."""
    if args.dest or args.exclude:
        raise UsageError("--dest and --exclude apply to paths given on the command line; "
                         "backup sets have their own (see `cairn sets show`).")
    layout = ServiceLayout.for_user(ctx.paths)
    config = cfgmod.load(layout.config_file)
    if not config.sets:
        raise UsageError("Nothing to back up: name paths (`cairn backup PATH...`) or add a "
                         "backup set (`cairn sets add NAME PATH...`).")
    try:
        client = _client(layout)
        summaries = _backup_through_service(client)
    except ServiceNotRunning:
        summaries = _backup_directly(layout, config, ctx)
    return _report(summaries, args.json)


def _backup_through_service(client: AgentClient) -> dict[str, dict]:
    with client:
        _events, after = client.events(0, 0)
        accepted = _api(client.backup_now)
        waiting, done = set(accepted.sets), {}
        print(accepted.message, file=sys.stderr)
        while waiting:
            events, after = client.events(after, 25)
            for e in events:
                if e.type == "run-finished" and e.data.get("set") in waiting:
                    waiting.discard(e.data["set"])
                    done[e.data["set"]] = e.data
        status = client.status()
    for item in status.sets:
        if item.name in done and item.last_run is not None:
            done[item.name] = s.to_json(item.last_run)
    return done


def _backup_directly(layout: ServiceLayout, config: cfgmod.ServiceConfig,
                     ctx: Context) -> dict[str, dict]:
    layout.prepare()
    archives = Archives(layout, ctx.env, prompt=ctx.passphrase if ctx.interactive else None)
    state = StateStore(layout.state_dir / "state.json")
    runner = BackupRunner(RunEnv(
        layout, archives, state, Clock(), RateLimiter(), lambda: config,
        _full_speed, lambda _name: False, None, layout.device_id(),
        lambda _type, _data: None))
    return {cfg.name: s.to_json(runner.run(cfg)) for cfg in config.sets}


def _full_speed() -> Decision:
    return Decision("", False, 0, max(1, os.cpu_count() or 1))


def _report(summaries: dict[str, dict], as_json: bool) -> int:
    if as_json:
        print_json(summaries)
    else:
        for name, doc in summaries.items():
            line = f"{name}: {doc.get('result')}"
            if doc.get("snapshot_id"):
                line += (f", snapshot {doc['snapshot_id'][:8]}, {doc.get('files_total', 0)} files"
                         f" ({doc.get('files_new', 0)} new, {doc.get('files_changed', 0)} "
                         f"changed)")
            if doc.get("error"):
                line += f": {doc['error']}"
            print(line)
    results = {doc.get("result") for doc in summaries.values()}
    if results <= {"success"}:
        return 0
    if results <= {"success", "partial"}:
        return EXIT_PARTIAL
    return CairnError.exit_code


def has_backup_sets(ctx: Context) -> bool:
    """True when the per-user agent home has backup sets (``cairn backup`` with no paths)."""
    return bool(cfgmod.load(ServiceLayout.for_user(ctx.paths).config_file).sets)
