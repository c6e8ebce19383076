"""The blob envelope: the only place that compresses and encrypts.

Sealed layout (docs/format.md, "Envelope")::

    offset  size  field
    0       1     envelope version (1)
    1       1     compression id (agent.codec.compression)
    2       24    salt, random per object
    26      n     AES-256-GCM ciphertext of the (compressed) payload
    26+n    16    GCM tag

The AES key and nonce of each object are derived from the archive's envelope
key and the object's own 192-bit random salt (BLAKE3 keyed with ``enc_key``,
44 bytes of output: 32 key, 12 nonce). A (key, nonce) pair repeats only if a
salt repeats: at 2^40 objects the chance is about 2^-113. The associated data
is ``header (26 bytes) || type (1 byte) || id (32 bytes)``, so a blob can never
be opened as another type or under another ID. After decryption the payload is
decompressed with a hard output bound and its keyed BLAKE3 must equal the ID.
"""

from __future__ import annotations

import os
from enum import IntEnum

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent.codec import compression
from agent.codec.keys import ArchiveKeys
from agent.errors import IntegrityError

ENVELOPE_VERSION = 1
HEADER_SIZE = 26
TAG_SIZE = 16
OVERHEAD = HEADER_SIZE + TAG_SIZE
NO_ID = bytes(32)


class ObjectType(IntEnum):
    """What a sealed object is; bound into the associated data. Never reuse a value."""

    DATA = 1
    TREE = 2
    PACK_HEADER = 3
    INDEX = 4
    SNAPSHOT = 5
    LOCK = 6


def _aead(enc_key: bytes, salt: bytes) -> tuple[AESGCM, bytes]:
    material = blake3.blake3(salt, key=enc_key).digest(44)
    return AESGCM(material[:32]), material[32:]


def seal(keys: ArchiveKeys, kind: ObjectType, object_id: bytes, payload: bytes | memoryview,
         *, compress: bool = True, into: memoryview | None = None) -> bytearray | memoryview:
    """Compress (when it pays) and encrypt ``payload`` into a sealed object.

    The ciphertext is written straight after the header in one buffer: no copy
    of a (up to 8 MiB) chunk beyond the compressed body. With ``into`` (a buffer
    the caller reuses; writable) the object is written there when it fits and a view of it
    is returned, valid until the caller reuses the buffer: a fresh MiB-sized
    buffer per blob costs a page fault per 4 KiB, which on a VM is as dear as
    encrypting it.
    """
    codec_id, body = compression.pack(payload) if compress else (compression.NONE, payload)
    salt = os.urandom(24)
    header = bytes((ENVELOPE_VERSION, codec_id)) + salt
    aead, nonce = _aead(keys.enc_key, salt)
    size = HEADER_SIZE + len(body) + TAG_SIZE
    if into is not None and len(into) >= size:
        sealed: bytearray | memoryview = into[:size]
    else:
        sealed = bytearray(size)
    sealed[:HEADER_SIZE] = header
    aead.encrypt_into(nonce, body, header + bytes((kind,)) + object_id,
                      memoryview(sealed)[HEADER_SIZE:])
    return sealed


def open_sealed(keys: ArchiveKeys, kind: ObjectType, object_id: bytes,
                sealed: bytes | memoryview, max_size: int) -> bytes:
    """Decrypt and decompress a sealed object; raise IntegrityError if anything is off.

    ``max_size`` bounds the decompressed size. The caller verifies the blob ID
    (see ``open_blob``); objects without an ID use ``NO_ID``.
    """
    if len(sealed) < OVERHEAD:
        raise IntegrityError("A sealed object is shorter than its envelope.")
    header = bytes(sealed[:HEADER_SIZE])
    if header[0] != ENVELOPE_VERSION:
        raise IntegrityError(
            f"Unknown envelope version {header[0]}: the object is damaged, or was written by a "
            "newer Cairn (then upgrade).")
    aead, nonce = _aead(keys.enc_key, header[2:])
    try:
        body = aead.decrypt(nonce, sealed[HEADER_SIZE:], header + bytes((kind,)) + object_id)
    except InvalidTag as exc:
        raise IntegrityError("A sealed object failed authentication (damaged or tampered).") \
            from exc
    return compression.unpack(header[1], body, max_size)


def open_blob(keys: ArchiveKeys, kind: ObjectType, blob_id: bytes,
              sealed: bytes | memoryview, raw_size: int) -> bytes:
    """Open a data or tree blob and verify that its plaintext hashes to ``blob_id``."""
    plain = open_sealed(keys, kind, blob_id, sealed, raw_size)
    if len(plain) != raw_size or keys.blob_id(plain) != blob_id:
        raise IntegrityError(f"Blob {blob_id.hex()[:16]} does not match its ID.")
    return plain
