"""Worker processes for small files (agent.engine.sealworkers): the real child
process, its answers, and what happens when one dies mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agent.archive.known_ids import KnownIds
from agent.archive.repository import Repository
from agent.chunk.chunker import MIN_SIZE
from agent.codec.envelope import ObjectType, open_blob
from agent.codec.keys import ArchiveKeys
from agent.dest.local import LocalDestination
from agent.engine import backup, sealworkers
from agent.engine.backup import PROCESS_THRESHOLD, BackupOptions, run_backup
from agent.engine.check import run_check
from agent.engine.restore import RestoreOptions, run_restore
from agent.engine.sealworkers import SealPool, SealWorker, WorkerLost
from tests.agent.strategies import random_bytes
from tests.agent.treespec import File, build, manifest, restored


class Answers:
    """Collects a worker's callbacks; ``wait`` blocks until ``n`` arrived."""

    def __init__(self) -> None:
        self.got: list = []
        self._cond = threading.Condition()

    def __call__(self, outcome: object) -> None:
        with self._cond:
            self.got.append(outcome)
            self._cond.notify_all()

    def wait(self, n: int) -> list:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.got) >= n, timeout=30)
        return self.got


@pytest.fixture
def keys() -> ArchiveKeys:
    return ArchiveKeys.from_master(os.urandom(32))


def test_a_worker_seals_files_and_skips_known_and_repeated_blobs(keys: ArchiveKeys,
                                                                  tmp_path: Path) -> None:
    contents = {"a": b"alpha" * 100, "b": b"known blob", "c": b"alpha" * 100, "e": b""}
    for name, data in contents.items():
        (tmp_path / name).write_bytes(data)
    os.setxattr(tmp_path / "a", "user.origin", b"\x00camera")
    known = KnownIds(keys.blob_id(b"known blob"))
    worker = SealWorker(keys, known.raw)
    answers = Answers()
    try:
        worker.submit([str(tmp_path / n) for n in ("a", "b")], answers)
        worker.submit([str(tmp_path / n) for n in ("c", "missing", "e")], answers)
        (first, first_blobs), (second, second_blobs) = answers.wait(2)
    finally:
        worker.close()
    assert [ids for ids, _, _, _ in first] == [[keys.blob_id(contents["a"])],
                                                [keys.blob_id(b"known blob")]]
    assert [size for _, size, _, _ in first] == [500, 10]
    assert [xattrs for _, _, _, xattrs in first] == [{"user.origin": "AGNhbWVyYQ=="}, None]
    # Only "a" was sealed: "b" is known, "c" repeats "a", "e" is empty.
    assert [(blob_id, raw) for blob_id, _, raw in first_blobs] == \
        [(keys.blob_id(contents["a"]), 500)]
    blob_id, sealed, _ = first_blobs[0]
    assert open_blob(keys, ObjectType.DATA, blob_id, sealed, 500) == contents["a"]
    assert second_blobs == []
    assert second[0][0] == [keys.blob_id(contents["a"])]
    assert second[1][0] == [] and "missing" in second[1][2]
    assert second[2] == ([], 0, None, None)


def test_a_failing_batch_is_reported_and_the_worker_keeps_serving(keys: ArchiveKeys,
                                                                  tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"data")
    worker = SealWorker(keys, b"")
    answers = Answers()
    try:
        worker.submit(None, answers)  # type: ignore[arg-type]  # not a list of paths
        worker.submit([str(tmp_path / "a")], answers)
        failed, served = answers.wait(2)
    finally:
        worker.close()
    assert isinstance(failed, RuntimeError) and "worker process failed" in str(failed)
    assert served[0][0][0] == [keys.blob_id(b"data")]


def test_batches_of_a_killed_worker_are_reported_lost(keys: ArchiveKeys, tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"data")
    pool = SealPool(keys, b"", 1)
    worker = pool.workers[0]
    os.kill(worker.pid, signal.SIGKILL)
    answers = Answers()
    pool.submit([str(tmp_path / "a")], answers)
    pool.submit([str(tmp_path / "a")], answers)
    assert all(isinstance(a, WorkerLost) for a in answers.wait(2))
    assert not worker.alive
    pool.close()


def test_shrink_ends_idle_workers_only_and_grow_starts_them_again(keys: ArchiveKeys,
                                                                  tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"data")
    path = str(tmp_path / "a")
    pool = SealPool(keys, b"", 3)
    busy, idle = pool.workers[0], pool.workers[1:]
    answers = Answers()
    try:
        os.kill(busy.pid, signal.SIGSTOP)  # holds its batch until it is let go
        pool.submit([path], answers)
        assert busy.pending == 1
        assert pool.shrink() == 2  # both idle ones: the busy one stays, and is enough
        assert [w.alive for w in pool.workers] == [True, False, False]
        assert all(w._proc.wait(10) == 0 for w in idle)  # they exited
        assert pool.shrink() == 0  # never the last one
        os.kill(busy.pid, signal.SIGCONT)
        pool.submit([path], answers)  # goes to the one left
        assert [outcome[0][0][0] for outcome in answers.wait(2)] == [[keys.blob_id(b"data")]] * 2
        assert busy.pending == 0
        assert pool.grow()
        assert sum(w.alive for w in pool.workers) == 3
        assert not pool.grow()  # nothing was ended since
        for worker in pool.workers[3:]:  # the new workers serve
            assert worker.submit([path], answers)
        assert all(not isinstance(a, BaseException) for a in answers.wait(4))
    finally:
        os.kill(busy.pid, signal.SIGCONT)
        pool.close()


def test_shrink_stops_after_its_limit(keys: ArchiveKeys) -> None:
    pool = SealPool(keys, b"", 2)
    try:
        for _ in range(SealPool.MAX_SHRINKS):
            assert pool.shrink() == 1
            assert pool.grow()
        assert pool.shrink() == 0 and not pool.grow()
        assert sum(w.alive for w in pool.workers) == 2
    finally:
        pool.close()


def test_a_backup_ends_idle_workers_for_large_files_and_starts_them_for_small_ones(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Small files, then large ones (idle workers end), then small files again (they
    start again): every file is in the snapshot."""
    small = {f"f{i:03d}": File(random_bytes(100 + i, i)) for i in range(100)}
    tree = {f"a{d:02d}": dict(small) for d in range(PROCESS_THRESHOLD // 100 + 2)}
    tree["b-large"] = {f"big{i}": File(random_bytes(MIN_SIZE * 3, 50 + i)) for i in range(2)}
    tree.update({f"c{d:02d}": {f"g{i:03d}": File(random_bytes(200 + i, d * 1000 + i))
                               for i in range(100)} for d in range(15)})
    src = build(tmp_path / "src", tree)
    monkeypatch.setattr(backup, "GROW_AFTER_S", 0.05)
    ended, started = [], []
    shrunk = threading.Event()
    real_shrink, real_grow = SealPool.shrink, SealPool.grow
    real_read_file = backup._FileReader.read_file

    def shrink_once_idle(self: SealPool) -> int:
        """Wait for the first small files' batches, so there are idle workers to end;
        then hold the one left for a second, so the small files after the large ones
        queue up."""
        deadline = time.monotonic() + 30
        while any(w.pending for w in self.workers) and time.monotonic() < deadline:
            time.sleep(0.01)
        ended.append(real_shrink(self))
        if ended[-1]:
            (left,) = [w for w in self.workers if w.alive]
            os.kill(left.pid, signal.SIGSTOP)
            threading.Timer(1.0, os.kill, (left.pid, signal.SIGCONT)).start()
        shrunk.set()
        return ended[-1]

    def grow(self: SealPool) -> bool:
        started.append(real_grow(self))
        return started[-1]

    def read_file(self: object, path: str, node: dict, task: object) -> None:
        if "/c00/" in path and not shrunk.is_set():  # the walk waits for the large files
            assert shrunk.wait(30)
            time.sleep(0.3)
        real_read_file(self, path, node, task)  # type: ignore[arg-type]

    monkeypatch.setattr(SealPool, "shrink", shrink_once_idle)
    monkeypatch.setattr(SealPool, "grow", grow)
    monkeypatch.setattr(backup._FileReader, "read_file", read_file)
    repo = Repository.create(LocalDestination(tmp_path / "archive"), "pw", tmp_path / "cache")
    try:
        result = run_backup(repo, BackupOptions(paths=(src,), workers=2, processes=2))
        assert result.errors == []
        assert sum(ended) >= 1 and any(started)
        assert result.counts.files_new == sum(len(files) for files in tree.values())
        run_restore(repo, result.snapshot, RestoreOptions(target=tmp_path / "out", workers=2))
        assert manifest(restored(tmp_path / "out", src)) == manifest(src)
        assert run_check(repo, read_data=True).ok
    finally:
        repo.close()


def test_an_answer_that_does_not_decode_ends_the_worker_and_its_batches_are_lost(
        keys: ArchiveKeys, tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"data")
    worker = SealWorker(keys, b"")
    os.kill(worker.pid, signal.SIGSTOP)  # it answers nothing itself
    answers = Answers()
    worker.submit([str(tmp_path / "a")], answers)
    with open(f"/proc/{worker.pid}/fd/1", "wb") as answer_stream:  # the same pipe
        answer_stream.write(b"\0\0\0\x05junk!")
    try:
        (lost,) = answers.wait(1)
        assert isinstance(lost, WorkerLost)
        assert not worker.alive
        assert worker._proc.wait(10) == -signal.SIGKILL
    finally:
        worker.kill()


def test_a_worker_whose_parent_ends_before_the_keys_exits_quietly() -> None:
    proc = subprocess.run([sys.executable, "-P", "-m", "agent.engine.sealworkers"],
                          input=b"", capture_output=True, timeout=60,
                          cwd=Path(__file__).parents[2])
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")


def test_a_backup_completes_when_its_worker_processes_are_killed(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Batches a dead worker held are read in the backup's own process: nothing is lost."""
    tree = {f"d{d:02d}": {f"f{i:03d}": File(random_bytes(100 + i * 7, d * 1000 + i))
                          for i in range(100)}
            for d in range(PROCESS_THRESHOLD // 100 + 8)}
    src = build(tmp_path / "src", tree)
    submitted = 0
    real_submit = SealWorker.submit

    def submit_then_kill(self: SealWorker, paths: list[str], done: object) -> bool:
        nonlocal submitted
        taken = real_submit(self, paths, done)  # type: ignore[arg-type]
        submitted += 1
        if submitted in (3, 6):  # one worker, then the other (or the same one again)
            os.kill(self.pid, signal.SIGKILL)
        return taken

    monkeypatch.setattr(sealworkers.SealWorker, "submit", submit_then_kill)
    repo = Repository.create(LocalDestination(tmp_path / "archive"), "pw", tmp_path / "cache")
    try:
        result = run_backup(repo, BackupOptions(paths=(src,), workers=2, processes=2))
        assert submitted >= 6
        assert result.errors == []
        assert result.counts.files_new == len(tree) * 100
        run_restore(repo, result.snapshot, RestoreOptions(target=tmp_path / "out", workers=2))
        assert manifest(restored(tmp_path / "out", src)) == manifest(src)
        report = run_check(repo, read_data=True)
        assert report.ok, report.errors
    finally:
        repo.close()


@pytest.mark.parametrize("reader_threads", [0, sealworkers.READER_THREADS])
def test_read_ahead_keeps_each_outcome_with_its_file(keys: ArchiveKeys, tmp_path: Path,
                                                     reader_threads: int) -> None:
    """Files are read ahead of the sealing, by opening them ahead (Linux) or on reader
    threads (no read-ahead advice); outcomes stay in order, unreadable ones (a folder,
    a missing file) in their own place."""
    paths, expected = [], []
    for i in range(300):
        path = tmp_path / f"f{i}"
        if i % 37 == 5:
            path.mkdir()
            expected.append(None)
        elif i % 41 == 7:
            expected.append(None)  # never created
        else:
            data = f"file {i} ".encode() * (i % 50 + 1)
            path.write_bytes(data)
            expected.append(keys.blob_id(data))
        paths.append(str(path))
    with ThreadPoolExecutor(reader_threads or 1) as readers:
        outcomes, blobs = sealworkers.seal_files(keys, KnownIds(b""), set(), paths,
                                                 readers if reader_threads else None)
    assert [ids[0] if ids else None for ids, _, _, _ in outcomes] == expected
    assert [error is not None for _, _, error, _ in outcomes] == [e is None for e in expected]
    assert len(blobs) == sum(e is not None for e in expected)


def test_a_worker_runs_with_the_malloc_arena_cap(keys: ArchiveKeys,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    worker = SealWorker(keys, b"")
    try:
        environ = Path(f"/proc/{worker.pid}/environ").read_bytes().split(b"\0")
    finally:
        worker.close()
    assert b"MALLOC_ARENA_MAX=1" in environ


@pytest.mark.parametrize("reader_threads", [0, 1])
def test_a_worker_hands_back_a_file_that_grew_past_small(keys: ArchiveKeys, tmp_path: Path,
                                                         reader_threads: int) -> None:
    (tmp_path / "grew").write_bytes(b"x" * (MIN_SIZE + 1))
    (tmp_path / "small").write_bytes(b"y" * MIN_SIZE)
    with ThreadPoolExecutor(1) as readers:
        outcomes, blobs = sealworkers.seal_files(
            keys, KnownIds(b""), set(), [str(tmp_path / "grew"), str(tmp_path / "small")],
            readers if reader_threads else None)
    assert outcomes[0] == (None, 0, None, None)
    assert outcomes[1][0] == [keys.blob_id(b"y" * MIN_SIZE)] and len(blobs) == 1


def test_files_that_grow_after_the_walk_are_read_whole_by_streaming(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A file listed as small but grown (a log, a download) before it is read: the first
    goes to a thread batch, the last to a worker process; both end up whole."""
    tree = {f"d{d:02d}": {f"f{i:03d}": File(random_bytes(100 + i, d * 1000 + i))
                          for i in range(100)}
            for d in range(PROCESS_THRESHOLD // 100 + 2)}
    tree["d00"]["a-grows"] = File(b"small at first")
    tree[f"d{PROCESS_THRESHOLD // 100 + 1:02d}"]["z-grows"] = File(b"small at first")
    src = build(tmp_path / "src", tree)
    grown = random_bytes(3 * 1024 * 1024, 7)
    real_read_file = backup._FileReader.read_file

    def read_file_then_grow(self: object, path: str, node: dict, task: object) -> None:
        real_read_file(self, path, node, task)  # type: ignore[arg-type]
        if path.endswith("-grows"):  # queued in a batch, not yet read
            with open(path, "ab") as f:
                f.write(grown)

    monkeypatch.setattr(backup._FileReader, "read_file", read_file_then_grow)
    repo = Repository.create(LocalDestination(tmp_path / "archive"), "pw", tmp_path / "cache")
    try:
        result = run_backup(repo, BackupOptions(paths=(src,), workers=2, processes=2))
        assert result.errors == []
        run_restore(repo, result.snapshot, RestoreOptions(target=tmp_path / "out", workers=2))
        out = restored(tmp_path / "out", src)
        growers = ("d00/a-grows", f"d{PROCESS_THRESHOLD // 100 + 1:02d}/z-grows")
        for name in growers:  # the snapshot has the walk's mtime for them: compare the bytes
            assert (out / name).read_bytes() == b"small at first" + grown
        others = {k: v for k, v in manifest(src).items() if k.decode() not in growers}
        assert {k: v for k, v in manifest(out).items() if k.decode() not in growers} == others
        assert run_check(repo, read_data=True).ok
    finally:
        repo.close()


@pytest.fixture
def no_early_workers() -> Iterator[None]:
    assert not sealworkers.started_early()
    yield
    sealworkers._end_unadopted()


def test_a_backup_hands_small_files_to_workers_started_early_from_its_first_batch(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_early_workers: None) -> None:
    """Far fewer small files than ``PROCESS_THRESHOLD``: without early workers the run
    would stay on threads; with them, the pool adopts those very processes."""
    tree = {"d": {f"f{i:02d}": File(random_bytes(200 + i, i)) for i in range(40)}}
    src = build(tmp_path / "src", tree)
    sealworkers.start_early(2)
    early = {proc.pid for proc in sealworkers._started_early}
    used: set[int] = set()
    real_submit = SealWorker.submit

    def submit(self: SealWorker, paths: list[str], done: object) -> bool:
        used.add(self.pid)
        return real_submit(self, paths, done)  # type: ignore[arg-type]

    monkeypatch.setattr(sealworkers.SealWorker, "submit", submit)
    repo = Repository.create(LocalDestination(tmp_path / "archive"), "pw", tmp_path / "cache")
    try:
        result = run_backup(repo, BackupOptions(paths=(src,), workers=2, processes=2))
        assert used and used <= early
        assert not sealworkers.started_early()  # adopted, not left waiting
        assert result.errors == [] and result.counts.files_new == 40
        run_restore(repo, result.snapshot, RestoreOptions(target=tmp_path / "out", workers=2))
        assert manifest(restored(tmp_path / "out", src)) == manifest(src)
    finally:
        repo.close()


def test_an_early_worker_that_died_before_adoption_costs_nothing_but_its_help(
        keys: ArchiveKeys, tmp_path: Path, no_early_workers: None) -> None:
    (tmp_path / "a").write_bytes(b"data")
    sealworkers.start_early(1)
    (proc,) = sealworkers._started_early
    proc.kill()
    proc.wait()  # its pipe is closed: handing it the keys fails
    pool = SealPool(keys, b"", 1)
    answers = Answers()
    pool.submit([str(tmp_path / "a")], answers)
    assert isinstance(answers.wait(1)[0], WorkerLost)  # the caller reads the batch itself
    pool.close()


def test_early_workers_no_pool_adopted_end_with_the_process(tmp_path: Path) -> None:
    script = ("from agent.engine import sealworkers\n"
              "sealworkers.start_early(2)\n"
              "print(*[p.pid for p in sealworkers._started_early], flush=True)\n")
    done = subprocess.run([sys.executable, "-P", "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).parents[2], check=True)
    pids = [int(pid) for pid in done.stdout.split()]
    assert len(pids) == 2
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]  # killed and reaped
