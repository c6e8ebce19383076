"""The archive key levels, weakest first (``agent.remote.keylevels`` explains them).

A module of its own so the command line can offer them without loading the key
machinery (and its cryptography imports) for every command.
"""

from __future__ import annotations

LEVELS = ("standard", "password", "custom")


def rank(level: str) -> int:
    return LEVELS.index(level)
