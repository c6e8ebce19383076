"""The blob envelope: round trips, tamper detection, type/ID binding, bounded decompression."""

from __future__ import annotations

import os

import blake3
import pytest
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given
from hypothesis import strategies as st

from agent.codec import compression
from agent.codec.envelope import (
    HEADER_SIZE,
    NO_ID,
    OVERHEAD,
    ObjectType,
    open_blob,
    open_sealed,
    seal,
)
from agent.codec.keys import ArchiveKeys
from agent.errors import IntegrityError, NewerFormat
from tests.agent.strategies import few, object_types, payloads, props, random_bytes

BLOB_TYPES = (ObjectType.DATA, ObjectType.TREE)


def object_id(keys: ArchiveKeys, kind: ObjectType, payload: bytes) -> bytes:
    return keys.blob_id(payload) if kind in BLOB_TYPES else NO_ID


def seal_by_hand(keys: ArchiveKeys, kind: ObjectType, oid: bytes, codec_id: int, body: bytes,
                 version: int = 1) -> bytes:
    """An envelope built from docs/format.md §4 alone (to craft hostile bodies)."""
    salt = os.urandom(24)
    header = bytes((version, codec_id)) + salt
    material = blake3.blake3(salt, key=keys.enc_key).digest(44)
    return header + AESGCM(material[:32]).encrypt(material[32:], body,
                                                   header + bytes((kind,)) + oid)


@props
@given(kind=object_types, payload=payloads())
def test_round_trip_for_every_type(keys: ArchiveKeys, kind: ObjectType, payload: bytes) -> None:
    oid = object_id(keys, kind, payload)
    sealed = seal(keys, kind, oid, payload)
    assert open_sealed(keys, kind, oid, sealed, len(payload)) == payload
    if kind in BLOB_TYPES:
        assert open_blob(keys, kind, oid, sealed, len(payload)) == payload


def test_compressible_data_shrinks_and_noise_is_stored_raw(keys: ArchiveKeys) -> None:
    text = b"all work and no play makes jack a dull boy\n" * 20000
    noise = random_bytes(len(text), 1)
    sealed_text = seal(keys, ObjectType.DATA, keys.blob_id(text), text)
    sealed_noise = seal(keys, ObjectType.DATA, keys.blob_id(noise), noise)
    assert sealed_text[1] == compression.ZSTD and len(sealed_text) < len(text) // 10
    assert sealed_noise[1] == compression.NONE and len(sealed_noise) == len(noise) + OVERHEAD


def test_equal_payloads_seal_differently(keys: ArchiveKeys) -> None:
    payload = b"same plaintext"
    oid = keys.blob_id(payload)
    assert seal(keys, ObjectType.DATA, oid, payload) != seal(keys, ObjectType.DATA, oid, payload)


@props
@given(kind=object_types, payload=payloads(max_size=4096), data=st.data())
def test_any_flipped_bit_is_detected(keys: ArchiveKeys, kind: ObjectType, payload: bytes,
                                     data: st.DataObject) -> None:
    oid = object_id(keys, kind, payload)
    sealed = bytearray(seal(keys, kind, oid, payload))
    bit = data.draw(st.integers(0, len(sealed) * 8 - 1))
    sealed[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(IntegrityError):
        open_sealed(keys, kind, oid, bytes(sealed), max(len(payload), 1))


@props
@given(kind=object_types, payload=payloads(max_size=4096), data=st.data())
def test_truncation_is_detected(keys: ArchiveKeys, kind: ObjectType, payload: bytes,
                                data: st.DataObject) -> None:
    oid = object_id(keys, kind, payload)
    sealed = seal(keys, kind, oid, payload)
    keep = data.draw(st.integers(0, len(sealed) - 1))
    with pytest.raises(IntegrityError):
        open_sealed(keys, kind, oid, sealed[:keep], len(payload))


@props
@given(kind=object_types, other=object_types, payload=payloads(max_size=4096))
def test_an_object_cannot_be_opened_as_another_type(
        keys: ArchiveKeys, kind: ObjectType, other: ObjectType, payload: bytes) -> None:
    if kind == other:
        return
    oid = keys.blob_id(payload)
    sealed = seal(keys, kind, oid, payload)
    with pytest.raises(IntegrityError):
        open_sealed(keys, other, oid, sealed, len(payload))


def test_data_sealed_as_data_never_opens_as_tree(keys: ArchiveKeys) -> None:
    payload = b'{"nodes":[]}'
    oid = keys.blob_id(payload)
    sealed = seal(keys, ObjectType.DATA, oid, payload)
    with pytest.raises(IntegrityError):
        open_blob(keys, ObjectType.TREE, oid, sealed, len(payload))


@props
@given(payload=payloads(max_size=4096), other_payload=st.binary(max_size=64))
def test_a_blob_cannot_be_opened_under_another_id(
        keys: ArchiveKeys, payload: bytes, other_payload: bytes) -> None:
    oid, wrong = keys.blob_id(payload), keys.blob_id(other_payload)
    if oid == wrong:
        return
    sealed = seal(keys, ObjectType.DATA, oid, payload)
    with pytest.raises(IntegrityError):
        open_blob(keys, ObjectType.DATA, wrong, sealed, len(payload))


def test_id_is_reverified_after_decryption(keys: ArchiveKeys) -> None:
    """Even a correctly sealed object is refused if its plaintext does not hash to the ID."""
    claimed = keys.blob_id(b"what the index says")
    sealed = seal(keys, ObjectType.DATA, claimed, b"something else")
    with pytest.raises(IntegrityError):
        open_blob(keys, ObjectType.DATA, claimed, sealed, len(b"something else"))


@few
@given(kind=object_types, payload=payloads(max_size=4096))
def test_another_archives_key_cannot_open(keys: ArchiveKeys, other_keys: ArchiveKeys,
                                          kind: ObjectType, payload: bytes) -> None:
    oid = object_id(keys, kind, payload)
    sealed = seal(keys, kind, oid, payload)
    with pytest.raises(IntegrityError):
        open_sealed(other_keys, kind, oid, sealed, len(payload))


def test_decompression_bound_is_enforced(keys: ArchiveKeys) -> None:
    payload = bytes(1 << 20)
    sealed = seal(keys, ObjectType.DATA, keys.blob_id(payload), payload)
    assert sealed[1] == compression.ZSTD
    with pytest.raises(IntegrityError):
        open_sealed(keys, ObjectType.DATA, keys.blob_id(payload), sealed, len(payload) - 1)
    with pytest.raises(IntegrityError):
        open_blob(keys, ObjectType.DATA, keys.blob_id(payload), sealed, 1000)


@pytest.mark.parametrize("content_size", [True, False])
def test_a_zstd_bomb_is_refused(keys: ArchiveKeys, content_size: bool) -> None:
    """Authenticated but hostile: 64 MiB of zeros in a tiny frame, with or without a size."""
    frame = zstandard.ZstdCompressor(write_content_size=content_size).compress(bytes(64 << 20))
    sealed = seal_by_hand(keys, ObjectType.INDEX, NO_ID, compression.ZSTD, frame)
    with pytest.raises(IntegrityError):
        open_sealed(keys, ObjectType.INDEX, NO_ID, sealed, 1 << 20)


def test_hand_built_envelope_matches_the_documented_format(keys: ArchiveKeys) -> None:
    payload = b"documented"
    oid = keys.blob_id(payload)
    sealed = seal_by_hand(keys, ObjectType.DATA, oid, compression.NONE, payload)
    assert open_blob(keys, ObjectType.DATA, oid, sealed, len(payload)) == payload
    assert len(sealed) == HEADER_SIZE + len(payload) + 16


def test_unknown_versions_and_codecs_are_refused(keys: ArchiveKeys) -> None:
    # The version byte is checked before authentication, so an unknown one may be damage:
    # the error says both (the codec id below is authenticated, so it is surely newer).
    newer = seal_by_hand(keys, ObjectType.INDEX, NO_ID, compression.NONE, b"x", version=2)
    with pytest.raises(IntegrityError, match="newer Cairn"):
        open_sealed(keys, ObjectType.INDEX, NO_ID, newer, 10)
    older = seal_by_hand(keys, ObjectType.INDEX, NO_ID, compression.NONE, b"x", version=0)
    with pytest.raises(IntegrityError):
        open_sealed(keys, ObjectType.INDEX, NO_ID, older, 10)
    unknown_codec = seal_by_hand(keys, ObjectType.INDEX, NO_ID, 9, b"x")
    with pytest.raises(NewerFormat):
        open_sealed(keys, ObjectType.INDEX, NO_ID, unknown_codec, 10)
    damaged_frame = seal_by_hand(keys, ObjectType.INDEX, NO_ID, compression.ZSTD, b"not zstd")
    with pytest.raises(IntegrityError):
        open_sealed(keys, ObjectType.INDEX, NO_ID, damaged_frame, 10)


def test_subkeys_are_distinct_and_deterministic() -> None:
    master = os.urandom(32)
    a, b = ArchiveKeys.from_master(master), ArchiveKeys.from_master(master)
    assert a == b
    assert len({a.master, a.id_key, a.enc_key}) == 3
    assert 0 <= a.chunker_seed < 2**63
    with pytest.raises(IntegrityError):
        ArchiveKeys.from_master(b"short")


def test_sealing_into_a_buffer_writes_there_when_it_fits(keys: ArchiveKeys) -> None:
    payload = os.urandom(3000)  # noise: stored raw, so the sealed size is known
    blob_id = keys.blob_id(payload)
    buffer = memoryview(bytearray(len(payload) + OVERHEAD))
    sealed = seal(keys, ObjectType.DATA, blob_id, payload, into=buffer)
    assert isinstance(sealed, memoryview) and sealed.obj is buffer.obj
    assert open_blob(keys, ObjectType.DATA, blob_id, sealed, len(payload)) == payload


def test_sealing_into_a_buffer_too_small_allocates(keys: ArchiveKeys) -> None:
    payload = os.urandom(3000)
    blob_id = keys.blob_id(payload)
    buffer = memoryview(bytearray(len(payload) + OVERHEAD - 1))
    sealed = seal(keys, ObjectType.DATA, blob_id, payload, into=buffer)
    assert isinstance(sealed, bytearray) and not any(buffer)
    assert open_blob(keys, ObjectType.DATA, blob_id, sealed, len(payload)) == payload
