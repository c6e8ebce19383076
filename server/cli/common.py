"""Shared CLI plumbing: location flags anywhere, runtime, passwords, output."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from server.config import Locations
from server.domain.access import Principal
from server.errors import BadRequest
from server.runtime import Runtime

LOCATION_FLAGS = ("--data", "--db", "--storage")


def split_location_flags(argv: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Pull ``--data/--db/--storage [=]VALUE`` out of argv wherever they are."""
    found: dict[str, str] = {}
    rest: list[str] = []
    items = iter(argv)
    for arg in items:
        if arg == "--":
            rest.append(arg)
            rest.extend(items)
            break
        flag, eq, value = arg.partition("=")
        if flag in LOCATION_FLAGS:
            if not eq:
                value = next(items, "")
                if not value or value.startswith("--"):
                    raise BadRequest(f"{flag} needs a value.")
            found[flag[2:]] = value
        else:
            rest.append(arg)
    return found, rest


def location_parent() -> argparse.ArgumentParser:
    """Documents the location flags on every subcommand (they are parsed earlier)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("where the server keeps its state")
    group.add_argument("--data", metavar="DIR", help="data folder (env CAIRN_SERVER_DATA)")
    group.add_argument("--db", metavar="URL",
                       help="database URL, e.g. postgresql://… (env CAIRN_SERVER_DB)")
    group.add_argument("--storage", metavar="URL",
                       help="object storage: folder or s3://bucket/prefix "
                            "(env CAIRN_SERVER_STORAGE)")
    return parent


@contextmanager
def opened(locations: Locations) -> Iterator[Runtime]:
    rt = Runtime.open(locations)
    try:
        yield rt
    finally:
        rt.close()


def operator() -> Principal:
    try:
        name = getpass.getuser()
    except (OSError, KeyError):
        name = "unknown"
    return Principal.operator(name)


def read_new_password(from_stdin: bool) -> str:
    """A new password: first line of stdin, or typed twice at a terminal."""
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise BadRequest("No password on standard input.")
        return line
    if not sys.stdin.isatty():
        raise BadRequest("No terminal to type a password: pipe it in with --password-stdin.")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Password again: "):
        raise BadRequest("The two passwords differ.")
    return first


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def print_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    """A plain aligned table; '-' for empty values."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    return str(value)


def parse_limit(text: str, what: str) -> int | None:
    """A whole number, or 'none' to remove the limit."""
    if text.strip().lower() in ("none", "unlimited"):
        return None
    if not text.strip().isdigit():
        raise BadRequest(f"The {what} must be a whole number or 'none'.")
    return int(text)
