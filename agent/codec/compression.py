"""Compression registry. Ids are stable on disk and never reused; unknown ids are errors.

    0  none   payload stored as is
    1  zstd   a zstd frame with the content size in its header

``pack`` stores data raw when zstd does not save at least 1/32 of it; on large
inputs it first compresses a 64 KiB sample at the fastest level and gives up
early when even that does not shrink (already-compressed media, archives).
"""

from __future__ import annotations

import threading

import zstandard

from agent.errors import IntegrityError, NewerFormat

NONE = 0
ZSTD = 1
LEVEL = 3
_SAMPLE = 64 * 1024
_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    comp = getattr(_local, "comp", None)
    if comp is None:
        comp = _local.comp = zstandard.ZstdCompressor(level=LEVEL, write_content_size=True)
        _local.probe = zstandard.ZstdCompressor(level=1)
    return comp


def _decompressor() -> zstandard.ZstdDecompressor:
    dec = getattr(_local, "dec", None)
    if dec is None:
        dec = _local.dec = zstandard.ZstdDecompressor()
    return dec


def _worth_trying(data: bytes | memoryview) -> bool:
    if len(data) < 4 * _SAMPLE:
        return True
    _compressor()
    sample = data[len(data) // 2 : len(data) // 2 + _SAMPLE]
    return len(_local.probe.compress(sample)) < _SAMPLE - _SAMPLE // 16


def pack(data: bytes | memoryview) -> tuple[int, bytes | memoryview]:
    """(codec id, body): zstd when it saves at least 1/32, else the data unchanged."""
    if len(data) < 64 or not _worth_trying(data):
        return NONE, data
    packed = _compressor().compress(data)
    if len(packed) > len(data) - len(data) // 32:
        return NONE, data
    return ZSTD, packed


def unpack(codec_id: int, body: bytes, max_size: int) -> bytes:
    """Inverse of ``pack``; never produces more than ``max_size`` bytes."""
    if codec_id == NONE:
        return body
    if codec_id != ZSTD:
        raise NewerFormat(f"Unknown compression id {codec_id}; upgrade Cairn.")
    try:
        params = zstandard.get_frame_parameters(body)
        if params.content_size > max_size:
            raise IntegrityError("A compressed object claims more bytes than allowed.")
        return _decompressor().decompress(body, max_output_size=max_size)
    except zstandard.ZstdError as exc:
        raise IntegrityError("A compressed object is damaged.") from exc
