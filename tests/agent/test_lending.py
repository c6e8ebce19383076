"""Chunks lent to an idle chunk thread: all sealed once, on both threads, errors carried back."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from agent.engine.lending import LentChunks


class _Pool:
    """A real two-thread pool with the reader's own job counted, as in the backup."""

    def __init__(self, *, crowded: bool = False) -> None:
        self.executor = ThreadPoolExecutor(2)
        self.jobs = 1  # the reading thread's own job
        self.crowded = crowded
        self.lock = threading.Lock()

    def reserve(self) -> bool:
        with self.lock:
            if self.jobs >= 2:
                return False
            self.jobs += 1
            return True

    def start(self, job) -> None:
        def run() -> None:
            try:
                job()
            finally:
                with self.lock:
                    self.jobs -= 1
        self.executor.submit(run)

    def lent(self, seal) -> LentChunks:
        return LentChunks(seal, self.reserve, self.start, lambda: self.crowded)


def _chunks(count: int) -> list[tuple[bytes, memoryview]]:
    return [(bytes([i]) * 32, memoryview(bytes([i]) * 1000)) for i in range(count)]


def test_every_chunk_is_sealed_once_and_the_helper_takes_some() -> None:
    pool = _Pool()
    sealed: dict[bytes, tuple[bytes, str]] = {}
    lock = threading.Lock()

    def seal(blob_id: bytes, chunk: bytes) -> None:
        time.sleep(0.002)  # long enough for the reader to find the helper busy
        with lock:
            assert blob_id not in sealed
            sealed[blob_id] = (bytes(chunk), threading.current_thread().name)

    lent = pool.lent(seal)
    reader = threading.current_thread().name
    for blob_id, chunk in _chunks(40):
        if not lent.lend(blob_id, chunk):
            seal(blob_id, chunk)
    lent.finish()
    assert {k: v[0] for k, v in sealed.items()} == {i: bytes(c) for i, c in _chunks(40)}
    threads = {name for _, name in sealed.values()}
    assert reader in threads and len(threads) == 2
    assert pool.jobs == 1  # the helper ended


def test_a_lent_chunk_is_a_copy_the_reader_may_overwrite() -> None:
    pool = _Pool()
    got: list[bytes] = []
    release = threading.Event()

    def seal(blob_id: bytes, chunk: bytes) -> None:
        release.wait(5)
        got.append(bytes(chunk))

    lent = pool.lent(seal)
    buffer = bytearray(b"a" * 100)
    assert lent.lend(bytes(32), memoryview(buffer))
    buffer[:] = b"b" * 100  # the chunker reuses its buffer for the next chunk
    release.set()
    lent.finish()
    assert got == [b"a" * 100]


def test_nothing_is_lent_without_an_idle_thread_or_when_others_wait() -> None:
    busy = _Pool()
    busy.jobs = 2
    assert not busy.lent(lambda i, c: None).lend(bytes(32), memoryview(b"x"))

    crowded = _Pool(crowded=True)
    gate, holding = threading.Event(), threading.Event()
    lent = crowded.lent(lambda i, c: (holding.set(), gate.wait(5)))
    assert lent.lend(bytes(32), memoryview(b"x"))  # starts the helper (idle thread)
    assert holding.wait(5)  # the helper holds the first chunk
    assert not lent.lend(bytes([1]) * 32, memoryview(b"y"))  # a job waits: seal it yourself
    gate.set()
    lent.finish()


def test_a_helper_error_reaches_the_reader() -> None:
    pool = _Pool()

    def seal(blob_id: bytes, chunk: bytes) -> None:
        if threading.current_thread() is not main:
            raise OSError(28, "No space left on device")

    main = threading.current_thread()
    lent = pool.lent(seal)
    assert lent.lend(bytes(32), memoryview(b"x"))
    with pytest.raises(OSError, match="No space"):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the next lend or the finish raises it
            if not lent.lend(bytes([1]) * 32, memoryview(b"y")):
                seal(bytes([1]) * 32, b"y")
            time.sleep(0.01)
        lent.finish()


def test_abandon_drops_waiting_chunks() -> None:
    pool = _Pool()
    gate, holding = threading.Event(), threading.Event()
    sealed: list[bytes] = []

    def seal(blob_id: bytes, chunk: bytes) -> None:
        holding.set()
        gate.wait(5)
        sealed.append(blob_id)

    lent = pool.lent(seal)
    assert lent.lend(bytes(32), memoryview(b"x"))
    assert holding.wait(5)  # the helper holds the first chunk
    assert lent.lend(bytes([1]) * 32, memoryview(b"y"))  # waits behind it
    lent.abandon()
    gate.set()
    lent.finish()
    assert sealed == [bytes(32)]


def test_a_helper_that_never_starts_holds_nothing_up() -> None:
    """A helper job cancelled before it ran (the pool shut down): the reader seals it all."""
    sealed: list[bytes] = []
    lent = LentChunks(lambda i, c: sealed.append(i), lambda: True, lambda job: None,
                      lambda: False)
    assert lent.lend(bytes(32), memoryview(b"x"))
    assert not lent.lend(bytes([1]) * 32, memoryview(b"y"))  # one waits already
    done = threading.Event()
    threading.Thread(target=lambda: (lent.finish(), done.set()), daemon=True).start()
    assert done.wait(5)
    assert sealed == [bytes(32)]


def test_a_helper_that_cannot_be_started_leaves_its_chunk_to_the_reader() -> None:
    sealed: list[bytes] = []

    def refuse(job) -> None:
        raise RuntimeError("cannot schedule new futures after shutdown")

    lent = LentChunks(lambda i, c: sealed.append(i), lambda: True, refuse, lambda: False)
    with pytest.raises(RuntimeError):
        lent.lend(bytes(32), memoryview(b"x"))
    lent.finish()
    assert sealed == [bytes(32)]
