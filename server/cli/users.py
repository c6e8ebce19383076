"""``cairn-server user …`` and ``cairn-server admin create``."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.cli.common import opened, operator, print_json, print_table, read_new_password
from server.config import Locations
from server.domain import archive, audit, orgs, throttle, users
from server.errors import BadRequest, NotFound
from server.metadata.models import Org, User
from server.security import hash_password

LIST_COLUMNS = ("username", "role", "org", "active", "devices_active", "bytes_stored", "id")


def find_user(session: Session, ref: str, *, lock: bool = False) -> User:
    """An active user by username, or any user by id."""

    def one(query: Any) -> User | None:
        return session.scalar(query.with_for_update() if lock else query)

    user = one(select(User).where(User.id == ref)) if len(ref) == 32 else None
    if user is None:
        user = one(select(User).where(User.username == users.check_username(ref), User.active))
    if user is None:
        raise NotFound(f"No active user {ref!r}.")
    return user


def _create(loc: Locations, args: argparse.Namespace, role: str) -> int:
    username = users.check_username(args.username)
    password = users.check_new_password(read_new_password(args.password_stdin))
    password_hash = hash_password(password)
    with opened(loc) as rt, rt.db.write() as session:
        org = orgs.find_org(session, args.org)
        session.refresh(org, with_for_update=True)
        user = users.create_user(session, operator(), org, username, password_hash, role)
        session.flush()
        view = users.user_dicts(session, [user])[0]
    if args.json:
        print_json(view)
    else:
        print(f"Created {role.replace('_', ' ')} {username!r} in {org.name!r} (id {view['id']}).")
    return 0


def cmd_user_create(args: argparse.Namespace, loc: Locations) -> int:
    return _create(loc, args, args.role)


def cmd_admin_create(args: argparse.Namespace, loc: Locations) -> int:
    role = args.role
    if role is None:
        with opened(loc) as rt, rt.db.read() as session:
            top = orgs.find_org(session, args.org).parent_id is None
        role = "msp_admin" if top else "org_admin"
    return _create(loc, args, role)


def cmd_list(args: argparse.Namespace, loc: Locations) -> int:
    with opened(loc) as rt, rt.db.read() as session:
        scope = {orgs.find_org(session, args.org).id} if args.org else None
        found = users.list_users(session, scope, include_inactive=args.all)
        names = dict(session.execute(select(Org.id, Org.name)).all())
        rows = [{**row, "org": names[row["org_id"]]} for row in users.user_dicts(session, found)]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, LIST_COLUMNS)
    return 0


def cmd_deactivate(args: argparse.Namespace, loc: Locations) -> int:
    if not args.yes:
        if not sys.stdin.isatty():
            raise BadRequest("Deactivating a user deletes all of their backup data at once and "
                             "cannot be undone; add --yes to confirm.")
        typed = input(f"This permanently deletes every backup of {args.user!r} and frees "
                      "the license. Type the username to confirm: ")
        if typed.strip().lower() != args.user.strip().lower():
            print("Not confirmed; nothing was changed.")
            return 1
    with opened(loc) as rt:
        user_id, deleted = archive.deactivate_user(
            rt.db, rt.store, operator(), lambda s: find_user(s, args.user, lock=True), None)
    print(f"Deactivated user {args.user!r} (id {user_id}); "
          + ("all their stored data is deleted." if deleted else
             "deleting their stored data failed and will be retried by maintenance."))
    return 0


def cmd_unlock(args: argparse.Namespace, loc: Locations) -> int:
    name = users.check_username(args.user)
    who = operator()
    with opened(loc) as rt, rt.db.write() as session:
        cleared = throttle.clear(session, name)
        audit.record(session, who.actor, "user.unlock", target=f"user:{name}", cleared=cleared)
    print(f"Cleared {cleared} wrong password(s) of {name!r}: they can log in and "
          "register again." if cleared else f"{name!r} was not locked out.")
    return 0


def cmd_restore_trash(args: argparse.Namespace, loc: Locations) -> int:
    since = _parse_time(args.since) if args.since else None
    with opened(loc) as rt:
        with rt.db.read() as session:
            user = find_user(session, args.user)
        count = archive.restore_trash(rt.db, rt.store, operator(), user, since)
    print(f"Restored {count} object(s) from the trash of {user.username!r}.")
    return 0


def _parse_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{text!r} is not a time like 2025-02-20T10:00:00+00:00.") from None
    if value.tzinfo is None:
        raise BadRequest("Give the time with its UTC offset, e.g. 2025-02-20T10:00:00+00:00.")
    return value


def add_parsers(sub: Any, parent: argparse.ArgumentParser) -> None:
    user = sub.add_parser("user", help="users").add_subparsers(dest="command", required=True)
    p = user.add_parser("create", parents=[parent], help="create a user")
    _creation_args(p)
    p.add_argument("--role", default="user", choices=("user", "org_admin", "msp_admin"))
    p.set_defaults(handler=cmd_user_create)
    p = user.add_parser("list", parents=[parent], help="list users")
    p.add_argument("--org", metavar="ORG")
    p.add_argument("--all", action="store_true", help="include deactivated users")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_list)
    p = user.add_parser("deactivate", parents=[parent],
                        help="deactivate a user for good and delete all their data")
    p.add_argument("user", metavar="USER", help="username or id")
    p.add_argument("--yes", action="store_true", help="confirm without a prompt")
    p.set_defaults(handler=cmd_deactivate)
    p = user.add_parser("unlock", parents=[parent],
                        help="end a lockout after wrong passwords at once")
    p.add_argument("user", metavar="USER", help="username")
    p.set_defaults(handler=cmd_unlock)
    p = user.add_parser("restore-trash", parents=[parent],
                        help="restore objects a user's devices moved to the trash")
    p.add_argument("user", metavar="USER")
    p.add_argument("--since", metavar="TIME", help="ISO time with offset")
    p.set_defaults(handler=cmd_restore_trash)
    admin = sub.add_parser("admin", help="admin logins").add_subparsers(dest="command",
                                                                        required=True)
    p = admin.add_parser("create", parents=[parent], help="create an admin login for the API")
    _creation_args(p)
    p.add_argument("--role", choices=("org_admin", "msp_admin"),
                   help="default: msp_admin in a top-level org, else org_admin")
    p.set_defaults(handler=cmd_admin_create)


def _creation_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("username")
    p.add_argument("--org", required=True, metavar="ORG", help="id, name or MSP/Customer")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input")
    p.add_argument("--json", action="store_true")
