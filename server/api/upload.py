"""Receiving an upload: Content-Length checks and a spool file."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import IO

from fastapi import Request
from starlette.requests import ClientDisconnect

from server.errors import BadRequest, LengthRequired, PayloadTooLarge

SPOOL_IN_MEMORY = 8 << 20


def content_length(request: Request, limit: int) -> int:
    """The declared body size; refuses chunked uploads and oversized objects."""
    raw = request.headers.get("content-length")
    if raw is None:
        raise LengthRequired("Uploads must declare their size in a Content-Length header.")
    if not raw.isdigit() or len(raw) > 19:
        raise BadRequest("The Content-Length header is not a whole number of bytes.")
    length = int(raw)
    if length > limit:
        raise PayloadTooLarge(f"Objects may be at most {limit} bytes; this one has {length}.",
                              max_bytes=limit)
    return length


async def receive(request: Request, length: int, tmp_dir: Path) -> IO[bytes]:
    """Spool the body, checking that its length is ``length``.

    Returns the spool rewound to its start; the caller closes it. The SHA-256
    is verified by ``BlobStore.put`` while it stores the spool (one pass, off
    the event loop). A failed check raises BadRequest; nothing is stored.
    """
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY, dir=tmp_dir)  # noqa: SIM115 (returned)
    try:
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > length:
                raise BadRequest("The body is longer than its Content-Length.")
            spool.write(chunk)
        if received != length:
            raise BadRequest(f"The body ended after {received} of {length} bytes; nothing "
                             "was stored.")
        spool.seek(0)
        return spool
    except ClientDisconnect:
        spool.close()
        raise BadRequest("The client went away during the upload; nothing was stored.") \
            from None
    except BaseException:
        spool.close()
        raise
