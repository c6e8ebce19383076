"""Server commands: register, replace-device, unregister."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from agent.cli import Context, print_json
from agent.errors import UsageError
from agent.remote.levels import LEVELS

if TYPE_CHECKING:  # the HTTP stack loads only when a server command runs
    from agent.registration import Registered, RegistrationRequest


def _registration_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", required=True, metavar="URL",
                   help="the Cairn server, e.g. https://backup.example.com:8443")
    p.add_argument("--registration-key", metavar="KEY",
                   help="the organization's registration key (or env CAIRN_REGISTRATION_KEY)")
    p.add_argument("--username", required=True, metavar="USER")
    p.add_argument("--device-name", metavar="NAME", help="default: this computer's name")
    p.add_argument("--key-level", choices=LEVELS,
                   help="archive key level for a new archive (default: standard, or what the "
                        "organization requires)")
    p.add_argument("--pin-sha256", metavar="FP",
                   help="trust exactly the server certificate with this SHA-256 fingerprint")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def register_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("register", help="register this computer with a Cairn server")
    _registration_args(p)
    p.set_defaults(func=cmd_register, replace=None)

    p = sub.add_parser("replace-device",
                       help="register this computer as the replacement of one of your devices")
    p.add_argument("replace", metavar="OLD_GUID", help="the GUID of the device to replace")
    _registration_args(p)
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("unregister", help="unregister this computer (frees its device slot)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_unregister, dest=None, limit_rate=None)


def _request(args: argparse.Namespace, ctx: Context) -> RegistrationRequest:
    from agent.registration import RegistrationRequest
    from agent.remote.http import normalize_pin, normalize_url

    key = args.registration_key or ctx.env.get("CAIRN_REGISTRATION_KEY")
    if not key:
        raise UsageError("Give the organization's registration key with --registration-key "
                         "or CAIRN_REGISTRATION_KEY.")
    password = ctx.passphrase(var="CAIRN_PASSWORD", prompt=f"Password for {args.username}: ")
    return RegistrationRequest(
        url=normalize_url(args.server), registration_key=key, username=args.username,
        password=password, device_name=args.device_name or "", key_level=args.key_level,
        pin_sha256=normalize_pin(args.pin_sha256) if args.pin_sha256 else None,
        replace_guid=args.replace)


def cmd_register(args: argparse.Namespace, ctx: Context) -> int:
    from agent.credentials import SecretStore
    from agent.registration import register

    req = _request(args, ctx)
    store = SecretStore(ctx.paths.home, ctx.secret_store_mode)
    done = register(ctx.paths, req, store, ctx.archive_password)
    if args.json:
        print_json(_summary(done))
        return 0
    p = done.profile
    action = "replaces device " + req.replace_guid if req.replace_guid else "is registered"
    print(f"This computer {action} with {p.url} as {p.username} "
          f"({'new user' if done.user_created else 'existing user'}) in {p.org_name}.")
    print(f"Device GUID: {p.device_guid}")
    print(f"Archive key level: {done.key_status.level}; token kept in {store.where}.")
    if not done.has_key:
        print(_key_hint(done.key_status.level), file=sys.stderr)
    return 0


def _summary(done: Registered) -> dict:
    p = done.profile
    return {"device_guid": p.device_guid, "device_id": p.device_id, "server": p.url,
            "username": p.username, "user_id": p.user_id, "org_id": p.org_id,
            "org_name": p.org_name, "user_created": done.user_created,
            "replaced_device_id": done.replaced_device_id, "key_level": done.key_status.level,
            "required_key_level": done.key_status.required_level, "has_key": done.has_key}


def _key_hint(level: str | None) -> str:
    if level == "custom":
        return ("This archive uses a custom key: import it with `cairn key import FILE` "
                "(made with `cairn key export FILE` on a device that has it) before backing "
                "up or restoring.")
    return "The archive key is not on this computer yet; the next command asks for it."


def cmd_unregister(args: argparse.Namespace, ctx: Context) -> int:
    from agent.registration import unregister

    session = ctx.remote(args)
    if session is None:
        raise UsageError("This computer is not registered with a Cairn server.")
    guid = session.profile.device_guid
    kept = unregister(session)
    if args.json:
        print_json({"device_guid": guid, "unregistered": True, "archive_key_kept": kept})
        return 0
    print(f"Device {guid} is unregistered; its slot is free and its backups stay in the "
          "user's archive.")
    if kept:
        print(f"The archive's custom key stays in {session.store.where}: it may be the only "
              "copy, so keep it (or a `cairn key export` file made before) safe.")
    return 0
