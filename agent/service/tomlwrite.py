"""A minimal TOML writer for the service configuration (tomllib only reads).

Handles what the config holds: tables (nested dicts), strings, integers,
floats, booleans and arrays of those. Comments in a hand-edited file are not
preserved when the service or ``cairn config set`` rewrites it.
"""

from __future__ import annotations

import json
import re

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def dumps(doc: dict) -> str:
    """``doc`` as TOML text: plain keys first, then one ``[table]`` per nested dict."""
    lines: list[str] = []
    _table(doc, (), lines)
    return "\n".join(lines).lstrip("\n") + "\n"


def _table(doc: dict, path: tuple[str, ...], lines: list[str]) -> None:
    plain = {k: v for k, v in doc.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in doc.items() if isinstance(v, dict) and v}  # empty: left out
    if path and (plain or not tables):
        lines.append("")
        lines.append("[" + ".".join(_key(p) for p in path) + "]")
    for key, value in plain.items():
        lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in tables.items():
        _table(value, (*path, key), lines)


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _string(text: str) -> str:
    # JSON string escapes are a subset of TOML basic-string escapes; TOML also forbids DEL.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"Cannot write {type(value).__name__} values to TOML.")
