"""Agent version strings: ``MAJOR.MINOR.PATCH`` with an optional suffix (``1.4.0rc1``)."""

from __future__ import annotations

import re

from server.errors import BadRequest

_VERSION_RE = re.compile(
    r"\A(\d{1,6})(?:\.(\d{1,6}))?(?:\.(\d{1,6}))?((?:[-+]?[A-Za-z][A-Za-z0-9.+-]{0,29})?)\Z")


def parse_version(text: str) -> tuple[int, int, int]:
    """The numeric part of a version, for ordering; BadRequest when unparsable."""
    match = _VERSION_RE.match(text.strip())
    if not match:
        raise BadRequest(f"Agent version {text[:40]!r} is not a version like 1.2.3.")
    major, minor, patch, _suffix = match.groups()
    return int(major), int(minor or 0), int(patch or 0)


def is_older(version: str, minimum: str) -> bool:
    return parse_version(version) < parse_version(minimum)
