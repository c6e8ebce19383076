"""Index files: round trip, tamper detection and malformed plaintexts."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.archive.index_file import (
    IndexContent,
    decode_index,
    decode_records,
    encode_index,
    encode_records,
)
from agent.codec.envelope import NO_ID, ObjectType, seal
from agent.codec.keys import ArchiveKeys
from agent.errors import IntegrityError, NewerFormat
from agent.pack.format import PackEntry
from tests.agent.strategies import blob_ids, props

pack_names = st.binary(min_size=32, max_size=32).map(bytes.hex)
entries = st.builds(PackEntry, st.sampled_from([ObjectType.DATA, ObjectType.TREE]), blob_ids,
                    st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
                    st.integers(0, 2**32 - 1))
contents = st.builds(IndexContent,
                     packs=st.dictionaries(pack_names, st.lists(entries, max_size=20), max_size=8),
                     superseded=st.lists(pack_names, max_size=4))


@props
@given(content=contents)
def test_round_trip(keys: ArchiveKeys, content: IndexContent) -> None:
    assert decode_index(keys, encode_index(keys, content)) == content


@props
@given(content=contents, data=st.data())
def test_tampering_is_detected(keys: ArchiveKeys, content: IndexContent,
                               data: st.DataObject) -> None:
    sealed = bytearray(encode_index(keys, content))
    bit = data.draw(st.integers(8, len(sealed) * 8 - 1))
    sealed[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(IntegrityError):
        decode_index(keys, bytes(sealed))
    keep = data.draw(st.integers(0, len(sealed) - 1))
    with pytest.raises(IntegrityError):
        decode_index(keys, bytes(sealed[:keep]))


def test_another_archive_cannot_read_it(keys: ArchiveKeys, other_keys: ArchiveKeys) -> None:
    with pytest.raises(IntegrityError):
        decode_index(other_keys, encode_index(keys, IndexContent()))


def _plain(*, magic: bytes = b"CIDX", version: int = 1, tail: bytes = b"") -> bytes:
    record = struct.pack("<BIII32s", 1, 0, 10, 10, bytes(32))
    body = struct.pack("<I", 0) + struct.pack("<I", 1) + bytes(32) + struct.pack("<I", 1) + record
    return magic + bytes((version,)) + body + tail


@pytest.mark.parametrize("plain", [
    _plain(magic=b"XIDX"),
    _plain(tail=b"\0"),
    _plain()[:-1],  # a partial record
    _plain()[:-41],  # a missing record
    _plain()[:7],
    b"",
    _plain().replace(struct.pack("<BIII", 1, 0, 10, 10), struct.pack("<BIII", 77, 0, 10, 10)),
], ids=["magic", "trailing", "partial-record", "missing-record", "short", "empty", "bad-type"])
def test_malformed_plaintext_is_an_integrity_error(keys: ArchiveKeys, plain: bytes) -> None:
    with pytest.raises(IntegrityError):
        decode_index(keys, seal(keys, ObjectType.INDEX, NO_ID, plain))


def test_valid_hand_built_plaintext_decodes(keys: ArchiveKeys) -> None:
    content = decode_index(keys, seal(keys, ObjectType.INDEX, NO_ID, _plain()))
    assert content.packs == {"00" * 32: [PackEntry(ObjectType.DATA, bytes(32), 0, 10, 10)]}


def test_newer_version_is_refused(keys: ArchiveKeys) -> None:
    with pytest.raises(NewerFormat):
        decode_index(keys, seal(keys, ObjectType.INDEX, NO_ID, _plain(version=2)))


def test_index_sealed_as_another_type_is_refused(keys: ArchiveKeys) -> None:
    with pytest.raises(IntegrityError):
        decode_index(keys, seal(keys, ObjectType.SNAPSHOT, NO_ID, _plain()))


@props
@given(pack_entries=st.lists(entries, max_size=50))
def test_records_round_trip(pack_entries: list[PackEntry]) -> None:
    records = encode_records(pack_entries)
    assert len(records) == 45 * len(pack_entries)
    assert decode_records(records) == pack_entries
