"""Index files: which blobs each pack holds (docs/format.md, "Index files").

Plaintext, all integers little-endian::

    "CIDX" | u8 version (1)
    u32 n_superseded | n_superseded × 32-byte index file name (raw SHA-256)
    u32 n_packs
    per pack: 32-byte pack name | u32 n_blobs | n_blobs × record
    record:   u8 type | u32 offset | u32 sealed length | u32 plaintext length | 32-byte ID

sealed as an envelope of type INDEX with ID = 32 zero bytes. The file's name is
the SHA-256 of the sealed bytes. An index file lists only complete, stored packs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from agent.codec.envelope import NO_ID, ObjectType, open_sealed, seal
from agent.codec.keys import ArchiveKeys
from agent.errors import IntegrityError, NewerFormat
from agent.pack.format import PackEntry

MAGIC = b"CIDX"
VERSION = 1
_U32 = struct.Struct("<I")
_RECORD = struct.Struct("<BIII32s")
MAX_INDEX_SIZE = 1 << 30


@dataclass
class IndexContent:
    packs: dict[str, list[PackEntry]] = field(default_factory=dict)
    superseded: list[str] = field(default_factory=list)


def encode_index(keys: ArchiveKeys, content: IndexContent) -> bytes:
    parts = [MAGIC, bytes((VERSION,)), _U32.pack(len(content.superseded))]
    parts += [bytes.fromhex(name) for name in content.superseded]
    parts.append(_U32.pack(len(content.packs)))
    for pack, entries in content.packs.items():
        parts.append(bytes.fromhex(pack) + _U32.pack(len(entries)))
        parts.append(encode_records(entries))
    return seal(keys, ObjectType.INDEX, NO_ID, b"".join(parts))


def encode_records(entries: list[PackEntry]) -> bytes:
    """A pack's entries as index records: 45 bytes each, against ~240 as objects."""
    return b"".join(_RECORD.pack(e.type, e.offset, e.length, e.raw_length, e.id)
                    for e in entries)


def decode_records(records: bytes | memoryview) -> list[PackEntry]:
    """Inverse of ``encode_records``; a partial record raises ``struct.error``."""
    return [PackEntry(ObjectType(kind), blob_id, offset, length, raw)
            for kind, offset, length, raw, blob_id in _RECORD.iter_unpack(records)]


def decode_index(keys: ArchiveKeys, sealed: bytes) -> IndexContent:
    plain = open_sealed(keys, ObjectType.INDEX, NO_ID, sealed, MAX_INDEX_SIZE)
    try:
        return _parse(memoryview(plain))
    except (struct.error, ValueError) as exc:
        raise IntegrityError("An index file is truncated or malformed.") from exc


def _parse(buf: memoryview) -> IndexContent:
    if bytes(buf[:4]) != MAGIC:
        raise IntegrityError("An index file has a bad magic number.")
    if buf[4] != VERSION:
        raise NewerFormat(f"Index format {buf[4]} is newer than this Cairn; upgrade.")
    pos = 5
    (count,) = _U32.unpack_from(buf, pos)
    pos += 4
    content = IndexContent()
    for _ in range(count):
        content.superseded.append(bytes(buf[pos : pos + 32]).hex())
        pos += 32
    (n_packs,) = _U32.unpack_from(buf, pos)
    pos += 4
    for _ in range(n_packs):
        pack = bytes(buf[pos : pos + 32]).hex()
        (n_blobs,) = _U32.unpack_from(buf, pos + 32)
        pos += 36
        entries = decode_records(buf[pos : pos + n_blobs * _RECORD.size])
        if len(entries) != n_blobs:
            raise IntegrityError("An index file is truncated.")
        pos += n_blobs * _RECORD.size
        content.packs[pack] = entries
    if pos != len(buf):
        raise IntegrityError("An index file has trailing bytes.")
    return content
