"""Lets an idle chunk thread seal another thread's chunks of one large file.

Large files go to chunk threads whole, so when fewer large files than threads
are left (a backup of one big file, or the last big file of any backup), one
thread compresses alone while the other waits. The thread reading a file may
then lend a chunk to the idle thread: it copies the chunk (the chunker reuses
its buffer), hands it over and goes on to read, hash and seal the next one
itself. At most one lent chunk waits at a time, so a file holds at most two
copies (the waiting one and the one in the helper's hands). Before the file
counts as done, its reader seals whatever still waits and waits for the
helper's chunk, so all of a file's blobs are in the sink when its node is
built, exactly as without lending. Once other work waits for a thread (the
next large file), the reader stops lending and the helper ends.

The reader waits only for a chunk the helper is sealing, never for a helper
to start: a chunk no helper took is sealed by the reader itself, so a helper
job that never runs (its pool shut down on cancel) cannot hold a file up.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

Seal = Callable[[bytes, bytes], None]  # (blob ID, chunk) → sealed and given to the sink


class LentChunks:
    """The chunks of one file that its reader lends to a helper thread."""

    __slots__ = ("_busy", "_cond", "_crowded", "_error", "_helping", "_reserve", "_seal",
                 "_start", "_waiting")

    def __init__(self, seal: Seal, reserve: Callable[[], bool],
                 start: Callable[[Callable[[], None]], None],
                 crowded: Callable[[], bool]) -> None:
        """``reserve`` claims an idle thread (False if none), ``start`` runs a job on the
        claimed thread, ``crowded`` tells whether other jobs wait for a thread."""
        self._seal, self._reserve, self._start = seal, reserve, start
        self._crowded = crowded
        self._cond = threading.Condition()
        self._waiting: deque[tuple[bytes, bytes]] = deque()
        self._helping = False  # a helper job was started and has not ended
        self._busy = False  # the helper is sealing a chunk
        self._error: BaseException | None = None

    def lend(self, blob_id: bytes, chunk: memoryview) -> bool:
        """Hand a chunk to a helper; False when the caller should seal it itself."""
        with self._cond:
            self._raise_error()
            if self._waiting:
                return False  # the helper has one waiting already
            start = not self._helping
            if start:
                if not self._reserve():
                    return False
                self._helping = True
            elif self._crowded():
                return False  # let the helper end and its thread take the waiting job
            self._waiting.append((blob_id, bytes(chunk)))
        if start:
            try:
                self._start(self._help)
            except BaseException:
                with self._cond:
                    self._helping = False  # the waiting chunk is sealed by ``finish``
                raise
        return True

    def finish(self) -> None:
        """Seal the chunks still waiting, wait for the helper's, raise its error if any."""
        while True:
            with self._cond:
                if self._waiting:
                    blob_id, chunk = self._waiting.popleft()
                elif self._busy:
                    self._cond.wait()
                    continue
                else:
                    self._raise_error()
                    return
            self._seal(blob_id, chunk)

    def abandon(self) -> None:
        """Drop the waiting chunks (the file failed); the helper ends after its current one."""
        with self._cond:
            self._waiting.clear()

    def _help(self) -> None:
        while True:
            with self._cond:
                self._busy = False
                self._cond.notify_all()
                if not self._waiting or self._error is not None:
                    self._helping = False
                    return
                blob_id, chunk = self._waiting.popleft()
                self._busy = True
            try:
                self._seal(blob_id, chunk)
            except BaseException as exc:  # handed to the reader, which raises it
                with self._cond:
                    self._error = exc
                    self._waiting.clear()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error
