"""Pack format: header round trip, tamper detection, records that must tile the pack."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.codec.envelope import NO_ID, ObjectType, open_blob, seal
from agent.codec.keys import ArchiveKeys
from agent.errors import IntegrityError
from agent.pack.format import (
    MAX_BLOB_SIZE,
    RECORD,
    TRAILER,
    PackEntry,
    decode_header,
    header_length,
    seal_header,
)
from agent.pack.writer import FLUSH_AT, PackWriter
from tests.agent.strategies import blob_ids, props

records = st.lists(
    st.tuples(st.sampled_from([ObjectType.DATA, ObjectType.TREE]), blob_ids,
              st.integers(1, 1 << 24), st.integers(0, MAX_BLOB_SIZE)),
    max_size=200)


def layout(rows: list[tuple]) -> list[PackEntry]:
    entries, offset = [], 0
    for kind, blob_id, length, raw in rows:
        entries.append(PackEntry(kind, blob_id, offset, length, raw))
        offset += length
    return entries


def encode_header(keys: ArchiveKeys, entries: list[PackEntry]) -> bytes:
    return seal_header(keys, b"".join(RECORD.pack(e.type, e.length, e.raw_length, e.id)
                                      for e in entries))


def split(keys: ArchiveKeys, entries: list[PackEntry]) -> tuple[bytes, int]:
    """The sealed header alone and the size of a pack holding ``entries``."""
    tail = encode_header(keys, entries)
    body = sum(e.length for e in entries)
    assert header_length(tail, body + len(tail)) == len(tail) - TRAILER.size
    return tail[: -TRAILER.size], body + len(tail)


@props
@given(rows=records)
def test_header_round_trip(keys: ArchiveKeys, rows: list[tuple]) -> None:
    entries = layout(rows)
    sealed, size = split(keys, entries)
    assert decode_header(keys, sealed, size) == entries


@props
@given(rows=records, data=st.data())
def test_tampered_header_is_detected(keys: ArchiveKeys, rows: list[tuple],
                                     data: st.DataObject) -> None:
    sealed, size = split(keys, layout(rows))
    damaged = bytearray(sealed)
    bit = data.draw(st.integers(8, len(damaged) * 8 - 1))  # past the version byte
    damaged[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(IntegrityError):
        decode_header(keys, bytes(damaged), size)


@props
@given(rows=records.filter(bool), delta=st.integers(-(1 << 20), 1 << 20).filter(bool))
def test_records_must_tile_the_pack(keys: ArchiveKeys, rows: list[tuple], delta: int) -> None:
    sealed, size = split(keys, layout(rows))
    with pytest.raises(IntegrityError):
        decode_header(keys, sealed, size + delta)


@props
@given(rows=records, size=st.integers(0, 1 << 16), claimed=st.integers(0, 2**32 - 1))
def test_trailer_length_must_fit_the_pack(keys: ArchiveKeys, rows: list[tuple], size: int,
                                          claimed: int) -> None:
    tail = TRAILER.pack(claimed)
    if claimed <= size - TRAILER.size:
        assert header_length(tail, size) == claimed
    else:
        with pytest.raises(IntegrityError):
            header_length(tail, size)
    with pytest.raises(IntegrityError):
        header_length(b"\0\0", 2)


def test_a_wrong_trailer_length_cannot_yield_a_header(keys: ArchiveKeys) -> None:
    entries = layout([(ObjectType.DATA, bytes(32), 100, 100)])
    pack = bytes(100) + encode_header(keys, entries)
    for wrong in (1, 50, len(pack) - 104 - 1, len(pack) - 104 + 1):
        bad = pack[:-4] + TRAILER.pack(wrong)
        length = header_length(bad, len(bad))
        with pytest.raises(IntegrityError):
            decode_header(keys, bad[len(bad) - 4 - length : -4], len(bad))


@pytest.mark.parametrize("kind,raw", [(ObjectType.INDEX, 1), (ObjectType.SNAPSHOT, 1),
                                      (ObjectType.DATA, MAX_BLOB_SIZE + 1)])
def test_invalid_records_are_refused(keys: ArchiveKeys, kind: ObjectType, raw: int) -> None:
    sealed, size = split(keys, [PackEntry(kind, bytes(32), 0, 10, raw)])
    with pytest.raises(IntegrityError):
        decode_header(keys, sealed, size)


def test_partial_record_is_refused(keys: ArchiveKeys) -> None:
    plain = RECORD.pack(ObjectType.DATA, 10, 10, bytes(32))[:-1]
    sealed = seal(keys, ObjectType.PACK_HEADER, NO_ID, plain)
    with pytest.raises(IntegrityError):
        decode_header(keys, sealed, 10 + len(sealed) + 4)


def test_header_of_another_type_is_refused(keys: ArchiveKeys) -> None:
    plain = RECORD.pack(ObjectType.DATA, 10, 10, bytes(32))
    sealed = seal(keys, ObjectType.INDEX, NO_ID, plain)
    with pytest.raises(IntegrityError):
        decode_header(keys, sealed, 10 + len(sealed) + 4)


def test_pack_writer_output_reads_back_and_is_named_by_its_hash(
        keys: ArchiveKeys, tmp_path: Path) -> None:
    writer = PackWriter(keys, tmp_path)
    sizes = [1000 * i + 1 for i in range(20)] + [300_000] * 5 + [3 * FLUSH_AT, 10]
    blobs = [(ObjectType.DATA, os.urandom(size)) for size in sizes]  # some flushes, a big blob
    for kind, plain in blobs:
        blob_id = keys.blob_id(plain)
        writer.add(kind, blob_id, seal(keys, kind, blob_id, plain), len(plain))
    pack = writer.finish()
    raw = pack.path.read_bytes()
    assert pack.name == hashlib.sha256(raw).hexdigest() and pack.size == len(raw)
    length = header_length(raw, len(raw))
    entries = decode_header(keys, raw[len(raw) - 4 - length : -4], len(raw))
    assert entries == pack.entries
    for (kind, plain), entry in zip(blobs, entries, strict=True):
        sealed = raw[entry.offset : entry.offset + entry.length]
        assert open_blob(keys, kind, entry.id, sealed, entry.raw_length) == plain


def _read_back(keys: ArchiveKeys, pack, blobs: list[tuple[ObjectType, bytes]]) -> None:
    raw = pack.path.read_bytes()
    assert pack.name == hashlib.sha256(raw).hexdigest() and pack.size == len(raw)
    length = header_length(raw, len(raw))
    entries = decode_header(keys, raw[len(raw) - 4 - length : -4], len(raw))
    for (kind, plain), entry in zip(blobs, entries, strict=True):
        sealed = raw[entry.offset : entry.offset + entry.length]
        assert open_blob(keys, kind, entry.id, sealed, entry.raw_length) == plain


def test_pack_writers_reusing_a_gathering_buffer_write_only_their_own_blobs(
        keys: ArchiveKeys, tmp_path: Path) -> None:
    """A finished pack's gathering buffer goes to the next pack still holding old bytes."""
    first = [(ObjectType.DATA, os.urandom(FLUSH_AT // 2 + 1000)) for _ in range(3)]
    second = [(ObjectType.DATA, os.urandom(100)), (ObjectType.TREE, os.urandom(5000))]
    packs = []
    for blobs in (first, second):
        writer = PackWriter(keys, tmp_path)
        for kind, plain in blobs:
            blob_id = keys.blob_id(plain)
            into = memoryview(bytearray(FLUSH_AT))  # sealed into a reused buffer, as backups do
            writer.add(kind, blob_id, seal(keys, kind, blob_id, plain, into=into), len(plain))
        packs.append(writer.finish())
    _read_back(keys, packs[0], first)
    _read_back(keys, packs[1], second)
    assert packs[1].size < 6000  # nothing of the first pack's blobs came along


def test_pack_writer_discard_leaves_nothing(keys: ArchiveKeys, tmp_path: Path) -> None:
    writer = PackWriter(keys, tmp_path)
    writer.add(ObjectType.DATA, bytes(32), b"x" * 100, 100)
    writer.discard()
    assert list(tmp_path.iterdir()) == []
