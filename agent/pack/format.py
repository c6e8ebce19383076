"""Pack file format (docs/format.md, "Packs").

    sealed blob 0 || sealed blob 1 || ... || sealed header || u32 LE len(sealed header)

The header is an envelope of type PACK_HEADER (ID = 32 zero bytes) whose
plaintext is one 41-byte record per blob, in file order::

    u8 type | u32 LE sealed length | u32 LE plaintext length | 32-byte blob ID

Blob offsets are the running sum of sealed lengths from 0. A pack's name is the
SHA-256 of all its bytes, so any store can verify it without keys.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from agent.codec.envelope import NO_ID, ObjectType, open_sealed, seal
from agent.codec.keys import ArchiveKeys
from agent.errors import IntegrityError, NewerFormat

RECORD = struct.Struct("<BII32s")
TRAILER = struct.Struct("<I")
TARGET_SIZE = 16 * 1024 * 1024
MAX_BLOBS = 65536
MAX_BLOB_SIZE = 64 * 1024 * 1024
_BLOB_TYPES = (ObjectType.DATA, ObjectType.TREE)


@dataclass(frozen=True, slots=True)
class PackEntry:
    """Where one blob lives inside a pack."""

    type: ObjectType
    id: bytes
    offset: int
    length: int
    raw_length: int


def seal_header(keys: ArchiveKeys, records: bytes | bytearray) -> bytes:
    """The bytes that end a pack: the sealed header (its records, concatenated, as
    plaintext) followed by its length."""
    sealed = seal(keys, ObjectType.PACK_HEADER, NO_ID, bytes(records))
    return sealed + TRAILER.pack(len(sealed))


def entries_of(records: bytes | bytearray) -> list[PackEntry]:
    """The entries that concatenated header records describe (offsets summed from 0)."""
    entries, offset = [], 0
    for kind, length, raw_length, blob_id in RECORD.iter_unpack(records):
        entries.append(PackEntry(ObjectType(kind), blob_id, offset, length, raw_length))
        offset += length
    return entries


def header_length(tail: bytes, pack_size: int) -> int:
    """Length of the sealed header, read from a pack's last four bytes."""
    if len(tail) < TRAILER.size or pack_size < TRAILER.size:
        raise IntegrityError("Pack is too short to hold a header.")
    (length,) = TRAILER.unpack(tail[-TRAILER.size :])
    if length > pack_size - TRAILER.size:
        raise IntegrityError("Pack header length points outside the pack.")
    return length


def decode_header(keys: ArchiveKeys, sealed: bytes, pack_size: int) -> list[PackEntry]:
    """Entries of a pack from its sealed header; checks they tile the pack exactly."""
    limit = (pack_size // RECORD.size + 1) * RECORD.size
    try:
        plain = open_sealed(keys, ObjectType.PACK_HEADER, NO_ID, sealed, limit)
    except NewerFormat as exc:  # a damaged trailer lands on an arbitrary "version" byte
        raise IntegrityError(f"Pack header is damaged or from a newer Cairn: {exc}") from exc
    if len(plain) % RECORD.size:
        raise IntegrityError("Pack header has a partial record.")
    for kind, _length, raw_length, _blob_id in RECORD.iter_unpack(plain):
        if kind not in _BLOB_TYPES or raw_length > MAX_BLOB_SIZE:
            raise IntegrityError("Pack header has an invalid record.")
    entries = entries_of(plain)
    offset = entries[-1].offset + entries[-1].length if entries else 0
    if offset + len(sealed) + TRAILER.size != pack_size:
        raise IntegrityError("Pack header does not describe the pack's bytes.")
    return entries
