"""Server-wide settings stored in the database, so every server process agrees.

=====================  =======  ==============================================
key                    default  meaning
=====================  =======  ==============================================
``min-agent-version``  0.0.0    agents older than this are refused (upgrade)
``allow-deep-orgs``    false    allow child organizations under customer orgs
``trash-grace-days``   14       days trashed objects stay restorable
=====================  =======  ==============================================

Only the operator (the admin CLI) changes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.domain.versions import parse_version
from server.errors import BadRequest
from server.metadata.models import Setting


def _check_version(value: str) -> str:
    parse_version(value)
    return value.strip()


def _check_bool(value: str) -> str:
    lowered = value.strip().lower()
    if lowered in ("true", "yes", "1", "on"):
        return "true"
    if lowered in ("false", "no", "0", "off"):
        return "false"
    raise BadRequest(f"{value!r} is not true or false.")


def _check_days(value: str) -> str:
    try:
        days = float(value)
    except ValueError:
        days = -1.0
    if not 0 <= days <= 3650:
        raise BadRequest(f"{value!r} is not a number of days between 0 and 3650.")
    return str(days).removesuffix(".0")


DEFAULTS: dict[str, tuple[str, Callable[[str], str]]] = {
    "min-agent-version": ("0.0.0", _check_version),
    "allow-deep-orgs": ("false", _check_bool),
    "trash-grace-days": ("14", _check_days),
}


@dataclass(frozen=True)
class ServerSettings:
    min_agent_version: str
    allow_deep_orgs: bool
    trash_grace_days: float

    @property
    def trash_grace_s(self) -> float:
        return self.trash_grace_days * 86400.0


def all_settings(session: Session) -> dict[str, str]:
    """Every setting with its current value (defaults filled in)."""
    stored = {row.key: row.value for row in session.scalars(select(Setting))}
    return {key: stored.get(key, default) for key, (default, _check) in DEFAULTS.items()}


def load(session: Session) -> ServerSettings:
    values = all_settings(session)
    return ServerSettings(min_agent_version=values["min-agent-version"],
                          allow_deep_orgs=values["allow-deep-orgs"] == "true",
                          trash_grace_days=float(values["trash-grace-days"]))


def set_setting(session: Session, key: str, value: str) -> str:
    """Validate and store one setting; returns the stored value."""
    if key not in DEFAULTS:
        raise BadRequest(f"Unknown setting {key!r}; known settings: {', '.join(DEFAULTS)}.")
    clean = DEFAULTS[key][1](value)
    row = session.get(Setting, key)
    if row is None:
        session.add(Setting(key=key, value=clean))
    else:
        row.value = clean
    return clean
