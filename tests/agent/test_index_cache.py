"""KnownIds (the compact dedup set) and the SQLite index cache it is built from."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from agent.archive.index_cache import IndexCache
from agent.archive.known_ids import KnownIds
from agent.codec.envelope import ObjectType
from agent.pack.format import PackEntry
from tests.agent.strategies import blob_ids, few, nul_tailed_ids, props

any_ids = nul_tailed_ids | blob_ids


def known(ids: set[bytes]) -> KnownIds:
    return KnownIds(b"".join(sorted(ids)))


@props
@given(members=st.sets(any_ids, max_size=64), probes=st.lists(any_ids, max_size=64))
def test_membership_matches_a_python_set(members: set[bytes], probes: list[bytes]) -> None:
    ids = known(members)
    assert len(ids) == len(members)
    for blob_id in members:
        assert blob_id in ids
    for blob_id in probes:
        assert (blob_id in ids) == (blob_id in members)


@props
@given(prefix=st.binary(min_size=0, max_size=31))
def test_ids_differing_only_in_trailing_nul_bytes(prefix: bytes) -> None:
    """Trailing NUL bytes are easy to lose (C strings, numpy's "S" dtype); they must count."""
    with_nuls = prefix.ljust(32, b"\0")
    neighbours = {prefix.ljust(31, b"\0") + bytes([b]) for b in (1, 0x80, 0xFF)}
    ids = known({with_nuls})
    assert with_nuls in ids
    assert not any(n in ids for n in neighbours)
    ids = known(neighbours)
    assert with_nuls not in ids
    assert all(n in ids for n in neighbours)


def test_empty_set() -> None:
    assert bytes(32) not in KnownIds(b"")
    assert len(KnownIds(b"")) == 0


def _entries(ids: list[bytes]) -> list[PackEntry]:
    return [PackEntry(ObjectType.DATA, blob_id, i * 100, 100, 90) for i, blob_id in enumerate(ids)]


@few
@given(packs=st.dictionaries(st.binary(min_size=32, max_size=32).map(bytes.hex),
                             st.lists(any_ids, max_size=10, unique=True), max_size=4))
def test_cache_lookup_and_known_ids(tmp_path_factory, packs: dict[str, list[bytes]]) -> None:
    cache = IndexCache(tmp_path_factory.mktemp("cache") / "index.sqlite")
    try:
        cache.add("ab" * 32, {name: _entries(ids) for name, ids in packs.items()})
        everything = {blob_id for ids in packs.values() for blob_id in ids}
        snapshot = cache.known_ids()
        assert len(snapshot) == len(everything)
        assert all(blob_id in snapshot for blob_id in everything)
        for name, ids in packs.items():
            for i, blob_id in enumerate(ids):
                loc = cache.lookup(blob_id)
                assert loc is not None and loc.pack in packs and blob_id in packs[loc.pack]
                if loc.pack == name:
                    assert (loc.offset, loc.length, loc.raw_length) == (i * 100, 100, 90)
        assert cache.index_files() == {"ab" * 32}
    finally:
        cache.close()


def test_cache_clear_and_persistence(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    cache = IndexCache(path)
    cache.add("cd" * 32, {"ef" * 32: _entries([b"\1" * 32])})
    cache.close()
    cache = IndexCache(path)
    assert cache.lookup(b"\1" * 32) is not None and cache.pack_names() == {"ef" * 32}
    cache.clear()
    assert cache.lookup(b"\1" * 32) is None and not cache.index_files()
    cache.close()


def test_lookup_many_answers_like_lookup_across_batches(tmp_path: Path) -> None:
    cache = IndexCache(tmp_path / "index.sqlite")
    try:
        stored = [i.to_bytes(32, "big") for i in range(1, 1201)]  # more than two batches
        cache.add("ab" * 32, {"01" * 32: _entries(stored[:700]), "02" * 32: _entries(stored[700:])})
        absent = [i.to_bytes(32, "little") for i in range(2, 40)]
        found = cache.lookup_many(stored[::-1] + absent)
        assert found.keys() == set(stored)
        assert all(found[blob_id] == cache.lookup(blob_id) for blob_id in stored)
        assert cache.lookup_many([]) == {}
    finally:
        cache.close()
