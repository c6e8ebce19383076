"""Built-in exclusions: caches, temp files, trash, and folders tagged with CACHEDIR.TAG.

Patterns are globs the walker matches against an entry's name or its full
path. ``CACHEDIR.TAG`` folders (https://bford.info/cachedir/) are found by a
light listing of the tree on full scans (no stat of files) and by the change
journal in between; they are excluded by their exact path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

BUILTIN_EXCLUDES: tuple[str, ...] = (
    # caches
    ".cache", "__pycache__", "*/Library/Caches",
    "*/AppData/Local/Temp", "*\\AppData\\Local\\Temp",
    "*/AppData/Local/Microsoft/Windows/INetCache",
    "*\\AppData\\Local\\Microsoft\\Windows\\INetCache",
    # temp and partial files, editor swap and office lock files
    "*.tmp", "*.temp", "*.swp", "*.part", "*.crdownload", "~$*", ".~lock.*#",
    # trash and system temp folders
    ".Trash", ".Trash-*", "$RECYCLE.BIN", "/tmp", "/var/tmp",
)
TAG_NAME = "CACHEDIR.TAG"
TAG_SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"


def glob_escape(path: str) -> str:
    """A glob that matches exactly ``path`` (fnmatch has no escape character)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in path)


def is_tagged(folder: str) -> bool:
    """True if ``folder`` holds a valid CACHEDIR.TAG."""
    try:
        with open(os.path.join(folder, TAG_NAME), "rb") as f:
            return f.read(len(TAG_SIGNATURE)) == TAG_SIGNATURE
    except OSError:
        return False


def find_tagged(roots: Iterable[str]) -> set[str]:
    """Folders below ``roots`` holding a CACHEDIR.TAG (their insides are not searched)."""
    found = set()
    for root in roots:
        if not os.path.isdir(root):
            continue
        for folder, dirs, files in os.walk(root):
            if TAG_NAME in files and is_tagged(folder):
                found.add(folder)
                dirs.clear()
    return found


def tagged_from_changes(dirty: Iterable[str]) -> tuple[set[str], set[str]]:
    """From changed paths: folders that gained a valid tag, and folders that lost one."""
    gained, lost = set(), set()
    for path in dirty:
        if os.path.basename(path) == TAG_NAME:
            folder = os.path.dirname(path)
            (gained if is_tagged(folder) else lost).add(folder)
    return gained, lost


def exclude_globs(user: Iterable[str], builtin: bool, tagged: Iterable[str]) -> tuple[str, ...]:
    """All patterns for a run: the set's own, the built-in ones, tagged cache folders."""
    patterns = list(user)
    if builtin:
        patterns.extend(BUILTIN_EXCLUDES)
        patterns.extend(glob_escape(p) for p in sorted(tagged))
    return tuple(patterns)
