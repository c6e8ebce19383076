"""The service configuration: one TOML file in the agent home, validated on load.

Sections and their defaults are the dataclasses below (docs/service.md lists
every key). Values are frozen once loaded; a change (``cairn config set``, the
API, an edited file) produces a new ``ServiceConfig`` that is validated as a
whole before it is written, so the file on disk is always a valid config.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import UsageError
from agent.retention.policy import RetentionPolicy
from agent.service import tomlwrite
from agent.service.durations import Window, parse_clock, parse_duration

SET_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
LOG_LEVELS = ("debug", "info", "warning", "error")
TRANSPORTS = ("unix", "tcp")
SECRET_KEY_RE = re.compile(r"pass|secret|token|key", re.IGNORECASE)


class ConfigError(UsageError):
    """The configuration file or a requested change is invalid."""


def _check(fn: Callable[[Any], None]) -> dict:
    return {"check": fn}


def _choice(options: tuple[str, ...]) -> Callable[[Any], None]:
    def check(value: str) -> None:
        if value not in options:
            raise UsageError(f"must be one of {', '.join(options)}, not {value!r}.")
    return check


def _between(low: int, high: int) -> Callable[[Any], None]:
    def check(value: int) -> None:
        if not low <= value <= high:
            raise UsageError(f"must be between {low} and {high}, not {value}.")
    return check


def _duration(value: str) -> None:
    parse_duration(value, "the value")


def _absolute_or_empty(value: str) -> None:
    if value and not os.path.isabs(os.path.expanduser(value)):
        raise UsageError(f"must be an absolute path, not {value!r}.")


def _dest(value: str) -> None:
    if value not in ("", "server"):
        _absolute_or_empty(value)


def _paths(values: tuple[str, ...]) -> None:
    if not values:
        raise UsageError("must name at least one folder or file to back up.")
    for value in values:
        _absolute_or_empty(value)


def _windows(values: tuple[str, ...]) -> None:
    for value in values:
        Window.parse(value)


def _retention(value: dict) -> None:
    """Keys and durations of ``agent.retention.policy.RetentionPolicy`` (docs/retention.md)."""
    RetentionPolicy.from_dict(value)


def _clock_or_empty(value: str) -> None:
    if value:
        parse_clock(value, "the value")


@dataclass(frozen=True)
class ServiceSettings:
    """``[service]``: logging, the archive passphrase, warnings."""

    log_level: str = field(default="info", metadata=_check(_choice(LOG_LEVELS)))
    log_max_bytes: int = field(default=5_000_000, metadata=_check(_between(10_000, 1 << 30)))
    log_backups: int = field(default=3, metadata=_check(_between(0, 100)))
    passphrase_file: str = field(default="", metadata=_check(_absolute_or_empty))
    warn_after: str = field(default="3d", metadata=_check(_duration))
    nice: int = field(default=10, metadata=_check(_between(0, 19)))


@dataclass(frozen=True)
class ApiSettings:
    """``[api]``: how the control API listens and who may use it."""

    transport: str = field(default="tcp" if os.name == "nt" else "unix",
                           metadata=_check(_choice(TRANSPORTS)))
    allowed_users: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResourceSettings:
    """``[resources]``: what the service may use while someone is at the computer or away."""

    upload_limit_present: int = field(default=0, metadata=_check(_between(0, 1 << 30)))  # KiB/s
    upload_limit_away: int = field(default=0, metadata=_check(_between(0, 1 << 30)))
    cpu_present: int = field(default=25, metadata=_check(_between(1, 100)))  # % of cores
    cpu_away: int = field(default=100, metadata=_check(_between(1, 100)))
    away_after: str = field(default="15m", metadata=_check(_duration))
    battery_min: int = field(default=20, metadata=_check(_between(0, 100)))  # 0 = never pause
    pause_on_metered: bool = False


@dataclass(frozen=True)
class SetConfig:
    """``[sets.NAME]``: what to back up, where to, and when."""

    name: str
    paths: tuple[str, ...] = field(default=(), metadata=_check(_paths))
    dest: str = field(default="", metadata=_check(_dest))
    every: str = field(default="15m", metadata=_check(_duration))
    windows: tuple[str, ...] = field(default=(), metadata=_check(_windows))
    verify_at: str = field(default="03:00", metadata=_check(_clock_or_empty))
    exclude: tuple[str, ...] = ()
    builtin_excludes: bool = True
    passphrase_file: str = field(default="", metadata=_check(_absolute_or_empty))
    retention: dict = field(default_factory=dict, metadata=_check(_retention))

    @property
    def every_s(self) -> int:
        return parse_duration(self.every)

    @property
    def window_list(self) -> tuple[Window, ...]:
        return tuple(Window.parse(w) for w in self.windows)


_SECTIONS: dict[str, type] = {"service": ServiceSettings, "api": ApiSettings,
                              "resources": ResourceSettings}


@dataclass(frozen=True)
class ServiceConfig:
    service: ServiceSettings = field(default_factory=ServiceSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    resources: ResourceSettings = field(default_factory=ResourceSettings)
    sets: tuple[SetConfig, ...] = ()

    def find_set(self, name: str) -> SetConfig:
        for s in self.sets:
            if s.name == name:
                return s
        known = ", ".join(s.name for s in self.sets) or "none yet"
        raise UsageError(f"There is no backup set named {name!r} (sets: {known}).")

    def to_doc(self) -> dict:
        doc: dict[str, Any] = {name: _section_doc(getattr(self, name)) for name in _SECTIONS}
        doc["sets"] = {s.name: {k: v for k, v in _section_doc(s).items() if k != "name"}
                       for s in self.sets}
        return doc


def _section_doc(section: object) -> dict:
    doc = {}
    for f in dataclasses.fields(section):  # type: ignore[arg-type]
        value = getattr(section, f.name)
        doc[f.name] = list(value) if isinstance(value, tuple) else value
    return doc


# --- reading ------------------------------------------------------------------------


def from_doc(doc: dict) -> ServiceConfig:
    """Validate a parsed TOML document; errors name the offending key."""
    unknown = set(doc) - {*_SECTIONS, "sets"}
    if unknown:
        raise ConfigError(f"unknown section {sorted(unknown)[0]!r} "
                          f"(known: {', '.join([*_SECTIONS, 'sets'])}).")
    sections = {name: _build(cls, doc.get(name, {}), name) for name, cls in _SECTIONS.items()}
    raw_sets = doc.get("sets", {})
    if not isinstance(raw_sets, dict):
        raise ConfigError("sets must be a table of backup sets ([sets.NAME]).")
    sets = []
    for name, body in raw_sets.items():
        if not SET_NAME_RE.match(name):
            raise ConfigError(f"sets.{name}: a set name may use letters, digits, '-' and '_' "
                              "(at most 64).")
        sets.append(_build(SetConfig, {**_table(body, f"sets.{name}"), "name": name},
                           f"sets.{name}"))
    return ServiceConfig(**sections, sets=tuple(sets))


def load(path: Path) -> ServiceConfig:
    """The config in ``path`` (defaults when it does not exist yet)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ServiceConfig()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read the configuration {path}: {exc}.") from exc
    try:
        return from_doc(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}.") from exc
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _table(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table.")
    return value


def _build(cls: type, body: Any, where: str) -> Any:
    body = _table(body, where)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(body) - set(fields)
    if unknown:
        key = sorted(unknown)[0]
        known = ", ".join(k for k in fields if k != "name")
        raise ConfigError(f"{where}.{key} is not a setting (known: {known}).")
    values = {}
    for name, value in body.items():
        f = fields[name]
        value = _typed(f, value, f"{where}.{name}")
        check = f.metadata.get("check")
        if check:
            try:
                check(value)
            except UsageError as exc:
                raise ConfigError(f"{where}.{name} {exc}") from exc
        values[name] = value
    if cls is SetConfig and "paths" not in values:
        raise ConfigError(f"{where}.paths is required: the folders to back up.")
    return cls(**values)


def _typed(f: dataclasses.Field, value: Any, where: str) -> Any:
    kind = str(f.type)
    if kind == "bool" and not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false, not {value!r}.")
    if kind == "int" and (not isinstance(value, int) or isinstance(value, bool)):
        raise ConfigError(f"{where} must be a whole number, not {value!r}.")
    if kind == "str" and not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, not {value!r}.")
    if kind.startswith("tuple"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a list of strings, like [\"a\", \"b\"].")
        return tuple(value)
    if kind == "dict" and not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table.")
    return value


# --- writing and editing ------------------------------------------------------------


def save(config: ServiceConfig, path: Path) -> None:
    """Write ``config`` atomically, readable only by its owner."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("# Cairn service configuration (docs/service.md). "
                  "Rewritten by `cairn config set`.\n")
        out.write(tomlwrite.dumps(config.to_doc()))
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def get_value(config: ServiceConfig, key: str) -> Any:
    """The value at a dotted key (``resources.cpu_away``, ``sets.docs.every``)."""
    node: Any = config.to_doc()
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"{key} is not a setting; see `cairn config show`.")
        node = node[part]
    return node


def set_value(config: ServiceConfig, key: str, text: str) -> ServiceConfig:
    """A new config with ``key`` set from its command-line text form, validated."""
    doc = config.to_doc()
    parts = key.split(".")
    holder, where = _holder(doc, parts)
    name = parts[-1]
    current = holder.get(name)
    if name not in holder and not where.endswith(".retention"):
        raise ConfigError(f"{key} is not a setting; see `cairn config show`.")
    holder[name] = _parse_text(current, text, key)
    return from_doc(doc)


def _holder(doc: dict, parts: list[str]) -> tuple[dict, str]:
    if len(parts) < 2:
        raise ConfigError(f"{parts[0]} is a section; name a key in it, like service.log_level.")
    node = doc
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(parts)} is not a setting; see `cairn config show`.")
        node = child
    return node, ".".join(parts[:-1])


def _parse_text(current: Any, text: str, key: str) -> Any:
    if isinstance(current, bool):
        lowered = text.strip().lower()
        if lowered in ("true", "yes", "on", "1"):
            return True
        if lowered in ("false", "no", "off", "0"):
            return False
        raise ConfigError(f"{key} must be true or false, not {text!r}.")
    if isinstance(current, int):
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{key} must be a whole number, not {text!r}.") from None
    if isinstance(current, list):
        if text.strip().startswith("["):
            return _toml_value(text, key)
        return [part.strip() for part in text.split(",") if part.strip()]
    if isinstance(current, dict):
        raise ConfigError(f"{key} is a table; set one of its keys.")
    if current is None:  # a new key in a free-form table (retention)
        return _toml_value(text, key) if text.strip() else text
    return text


def _toml_value(text: str, key: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        if text.strip().startswith("["):
            raise ConfigError(f"{key}: {text!r} is not a valid list.") from None
        return text


def add_set(config: ServiceConfig, new: SetConfig) -> ServiceConfig:
    if any(s.name == new.name for s in config.sets):
        raise ConfigError(f"A backup set named {new.name!r} already exists; "
                          f"remove it first or change it with `cairn config set`.")
    doc = config.to_doc()
    doc["sets"][new.name] = {k: v for k, v in _section_doc(new).items() if k != "name"}
    return from_doc(doc)


def remove_set(config: ServiceConfig, name: str) -> ServiceConfig:
    config.find_set(name)
    return dataclasses.replace(config, sets=tuple(s for s in config.sets if s.name != name))


def redacted_doc(config: ServiceConfig) -> dict:
    """The config as a dict with every secret-looking value replaced."""
    return _redact(config.to_doc())


def _redact(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    return {k: ("<redacted>" if SECRET_KEY_RE.search(k) and v not in ("", None)
                and not isinstance(v, dict) else _redact(v))
            for k, v in node.items()}
