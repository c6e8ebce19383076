"""Destination wrappers for the prune tests: a process that dies mid-way, a hook on a call."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


class Killed(Exception):
    """The simulated process died: nothing after this reaches the destination."""


class DyingDestination:
    """Passes calls through until the ``die_at``-th write or remove, then refuses every call,
    like a process killed at that point (the ``finally`` blocks that still run cannot write)."""

    def __init__(self, inner, die_at: int | None = None) -> None:
        self._inner, self._left = inner, die_at
        self.description = inner.description
        self.dead = False
        self.mutations = 0

    def _alive(self) -> None:
        if self.dead:
            raise Killed("the process is dead")

    def _mutating(self) -> None:
        self._alive()
        if self._left is not None and self.mutations >= self._left:
            self.dead = True
            raise Killed(f"killed before write #{self.mutations}")
        self.mutations += 1

    def is_empty(self) -> bool:
        self._alive()
        return self._inner.is_empty()

    def list(self, kind: str) -> dict[str, int]:
        self._alive()
        return self._inner.list(kind)

    def read(self, kind: str, name: str, offset: int = 0, length: int | None = None) -> bytes:
        self._alive()
        return self._inner.read(kind, name, offset, length)

    def staging_dir(self) -> Path:
        return self._inner.staging_dir()

    def put_bytes(self, kind: str, name: str, data: bytes) -> None:
        self._mutating()
        self._inner.put_bytes(kind, name, data)

    def put_file(self, kind: str, name: str, path: Path) -> None:
        self._mutating()
        self._inner.put_file(kind, name, path)

    def remove(self, kind: str, name: str) -> None:
        self._mutating()
        self._inner.remove(kind, name)


class HookedDestination:
    """Calls ``hook(method, kind, name)`` before every write or remove, then passes it on."""

    def __init__(self, inner, hook: Callable[[str, str, str], None]) -> None:
        self._inner, self._hook = inner, hook
        self.description = inner.description

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    def put_bytes(self, kind: str, name: str, data: bytes) -> None:
        self._hook("put", kind, name)
        self._inner.put_bytes(kind, name, data)

    def put_file(self, kind: str, name: str, path: Path) -> None:
        self._hook("put", kind, name)
        self._inner.put_file(kind, name, path)

    def remove(self, kind: str, name: str) -> None:
        self._hook("remove", kind, name)
        self._inner.remove(kind, name)
