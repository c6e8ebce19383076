"""Snapshots read from a server are kept locally (still sealed): a run fetches only new ones."""

from __future__ import annotations

from pathlib import Path

from tests.agent.cairn_cli import Cairn
from tests.agent.treespec import File, build


class ServerLike:
    """A destination without a local ``root`` (as a server is), counting snapshot reads."""

    def __init__(self, inner: object) -> None:
        self._inner = inner
        self.snapshot_reads = 0

    def read(self, kind: str, name: str, *args: object) -> bytes:
        if kind == "snapshots":
            self.snapshot_reads += 1
        return self._inner.read(kind, name, *args)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        if name == "root":
            raise AttributeError(name)
        return getattr(self._inner, name)


def listing(cairn: Cairn, cache: Path) -> tuple[list[str], int]:
    from agent.archive.repository import Repository
    from agent.dest.local import LocalDestination

    dest = ServerLike(LocalDestination(cairn.dest))
    repo = Repository.open(dest, cairn.passphrase, cache)  # type: ignore[arg-type]
    try:
        return [s.id for s in repo.readable_snapshots()], dest.snapshot_reads
    finally:
        repo.close()


def test_only_new_snapshots_are_fetched_and_gone_ones_are_dropped(
        cairn: Cairn, tmp_path: Path) -> None:
    src = build(tmp_path / "src", {"a.txt": File(b"a")})
    ids = []
    for i in range(3):
        (src / "a.txt").write_bytes(b"version %d" % i)
        ids.append(cairn.backup(src)["snapshot_id"])
    cache = tmp_path / "cache"
    assert listing(cairn, cache) == (ids[::-1], 3)
    assert listing(cairn, cache) == (ids[::-1], 0)  # all kept locally

    kept = next(cache.glob("*/snapshots"))
    (kept / ids[0]).write_bytes(b"bit rot")  # a damaged local copy is fetched again
    assert listing(cairn, cache) == (ids[::-1], 1)

    cairn.run("forget", ids[1])
    assert listing(cairn, cache) == ([ids[2], ids[0]], 0)
    assert sorted(p.name for p in kept.iterdir()) == sorted([ids[0], ids[2]])
