"""Content-defined chunking with FastCDC (pyfastcdc), keyed by the archive.

Sizes: minimum 512 KiB, average about 1.1 MiB, maximum 8 MiB. pyfastcdc's
``avg_size`` sets the cut masks, not the mean: measured on 400 MiB of random
data with a 512 KiB minimum, ``avg_size`` 512 KiB gave a 0.75 MiB mean and
768 KiB a 1.16 MiB mean (1.3 MiB at 1 MiB), so ``avg_size`` is 768 KiB. The minimum keeps
per-blob overhead (index entry, envelope, one AEAD call) below 0.01% of the data;
the maximum bounds the memory a chunk holds and still lets long runs of zeros or
identical records dedup in 8 MiB pieces. These are restic's choices too, which
makes stored sizes comparable.

The gear table is XOR-ed with a 63-bit seed derived from the archive key, so
chunk boundaries (and thus blob sizes an observer sees) do not fingerprint
known files across archives. Files smaller than the minimum are one blob and
never reach the chunker.

Streams are cut from one reusable buffer per chunker (pyfastcdc's own
``cut_stream`` allocates twice ``MAX_SIZE`` per file). A cut depends only on the
bytes before it, so every chunk is final except one that ends where the
buffer's data ends (short of ``MAX_SIZE``, before end of file): that tail is
kept and cut again after the next read, and the boundaries equal those of the
whole file in memory. The buffer starts at ``START_BUFFER`` (several average
chunks) and grows to ``MAX_SIZE`` + 1 MiB only while a stream has an undecided
chunk that fills it: most data never needs that, and two large-file threads
each holding 9 MiB were a tenth of a first backup's memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from pyfastcdc import FastCDC

MIN_SIZE = 512 * 1024
AVG_PARAM = 768 * 1024
MAX_SIZE = 8 * 1024 * 1024
START_BUFFER = 4 * 1024 * 1024
STREAM_BUFFER = MAX_SIZE + 1024 * 1024


class Chunker:
    """Splits streams into content-defined chunks. One instance per thread."""

    def __init__(self, seed: int) -> None:
        # Imported here: seal worker processes import this module for its sizes and
        # rarely chunk, and pyfastcdc's own imports cost each of them 2.5 MiB.
        from pyfastcdc import FastCDC

        self._cdc: FastCDC = FastCDC(AVG_PARAM, min_size=MIN_SIZE, max_size=MAX_SIZE, seed=seed)
        self._buffer: bytearray | None = None

    def chunks(self, stream: BinaryIO) -> Iterator[memoryview]:
        """Chunks of ``stream``; each view is valid only until the next one is produced."""
        if self._buffer is None:
            self._buffer = bytearray(START_BUFFER)
        view = memoryview(self._buffer)
        start = end = 0
        eof = False
        while True:
            if not eof and end - start < MAX_SIZE:
                if end - start == len(view):  # one undecided chunk fills the buffer
                    view = self._grown(view)
                view[: end - start] = view[start:end]  # keep the undecided tail
                start, end = 0, end - start
                while end < len(view):
                    read = stream.readinto(view[end:])
                    if not read:
                        eof = True
                        break
                    end += read
            if start == end:
                if len(view) > START_BUFFER:
                    self._buffer = None  # the next stream starts small again
                return
            consumed = 0
            for chunk in self._cdc.cut_buf(view[start:end]):
                if (not eof and chunk.offset + chunk.length == end - start
                        and chunk.length < MAX_SIZE):
                    break  # cut only because the buffer ended: read more first
                yield chunk.data
                consumed = chunk.offset + chunk.length
            start += consumed

    def _grown(self, view: memoryview) -> memoryview:
        """A full-size buffer holding ``view``'s bytes (until this stream ends)."""
        self._buffer = bytearray(STREAM_BUFFER)
        grown = memoryview(self._buffer)
        grown[: len(view)] = view
        return grown

    def chunks_of(self, data: bytes) -> Iterator[memoryview]:
        """Chunks of an in-memory buffer (tests and small inputs)."""
        for chunk in self._cdc.cut_buf(data):
            yield chunk.data
