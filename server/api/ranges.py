"""HTTP Range requests (RFC 9110 §14): one byte range per request."""

from __future__ import annotations

import re

from server.errors import BadRequest, RangeNotSatisfiable

_RANGE_RE = re.compile(r"\Abytes=(\d{0,19})-(\d{0,19})\Z")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end_exclusive)`` for a Range header, None to send the whole object.

    Supports ``bytes=A-B``, ``bytes=A-`` and ``bytes=-N`` (the last N bytes).
    Several ranges in one request are refused with BadRequest; a range that
    starts past the end raises RangeNotSatisfiable.
    """
    if header is None:
        return None
    match = _RANGE_RE.match(header.strip().replace(" ", ""))
    if not match or match.group(1) == match.group(2) == "":
        raise BadRequest("Unsupported Range header: send one range such as "
                         "'bytes=0-1023', 'bytes=1024-' or 'bytes=-512'.")
    first, last = match.groups()
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable("The requested range is empty.", size=size)
        return max(size - suffix, 0), size
    start = int(first)
    end = size if last == "" else int(last) + 1
    if last != "" and end <= start:
        raise BadRequest("The Range header's end is before its start.")
    if start >= size:
        raise RangeNotSatisfiable(f"The range starts at byte {start}, past the object's end "
                                  f"({size} bytes).", size=size)
    return start, min(end, size)
