"""How a backup opens the files it reads: access times stay as they were."""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path

import pytest

from agent.archive.repository import Repository
from agent.dest.local import LocalDestination
from agent.engine import backup
from agent.engine.backup import PROCESS_THRESHOLD, BackupOptions, run_backup
from agent.scan import source
from agent.scan.source import open_ahead, open_source, read_small
from tests.agent.deadline import call_with_deadline
from tests.agent.strategies import random_bytes
from tests.agent.treespec import File, build

MiB = 1024 * 1024


def test_a_backup_leaves_access_times_alone(tmp_path: Path) -> None:
    dirs = PROCESS_THRESHOLD // 100 + 2  # enough small files for the worker processes too
    tree: dict = {f"d{d:02d}": {f"f{i:03d}": File(random_bytes(50 + i, d * 1000 + i))
                                for i in range(100)} for d in range(dirs)}
    tree["big.bin"] = File(random_bytes(3 * MiB, 7))
    src = build(tmp_path / "src", tree)
    watched = [src / "d00" / "f001", src / f"d{dirs - 1:02d}" / "f099", src / "big.bin"]
    before = {}
    for path in watched:  # an access time before the mtime: relatime would update it on read
        st = path.stat()
        os.utime(path, ns=(st.st_mtime_ns - 10**12, st.st_mtime_ns))
        before[path] = path.stat().st_atime_ns
    repo = Repository.create(LocalDestination(tmp_path / "archive"), "pw", tmp_path / "cache")
    try:
        result = run_backup(repo, BackupOptions(paths=(src,), workers=2, processes=2))
    finally:
        repo.close()
    assert result.errors == [] and result.counts.files_new == dirs * 100 + 1
    assert {path: path.stat().st_atime_ns for path in watched} == before


@pytest.mark.skipif(not hasattr(os, "fork") or os.geteuid() != 0,
                    reason="needs root to read as another user")
def test_a_file_of_another_owner_is_still_read() -> None:
    """O_NOATIME is refused (EPERM) on files the reader does not own: it reads without."""
    folder = Path(tempfile.mkdtemp(prefix="cairn-owner-"))  # pytest's folders are root's only
    folder.chmod(0o755)
    path = folder / "roots.txt"
    path.write_bytes(b"owned by root, readable by all")
    path.chmod(0o644)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: become nobody, then read the file
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            with open_source(str(path)) as f:
                os.write(write_end, f.read())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert os.read(read_end, 100) == b"owned by root, readable by all"
    finally:
        os.close(read_end)
        shutil.rmtree(folder)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    finished, outcome = call_with_deadline(lambda: open_source(str(fifo)).close(), 30)
    if not finished:  # unblock it before failing: a writer comes along
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert finished and isinstance(outcome, OSError), "the open waited for a writer"
    assert "no longer a regular file" in str(outcome)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_is_refused() -> None:
    with pytest.raises(OSError, match="no longer a regular file"):
        open_source("/dev/zero")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_files_swapped_for_fifos_after_the_walk_are_errors_not_hangs(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The first swapped file is in a thread batch, the last in a worker process's."""
    dirs = PROCESS_THRESHOLD // 100 + 2
    tree: dict = {f"d{d:02d}": {f"f{i:03d}": File(random_bytes(50 + i, d * 1000 + i))
                                for i in range(100)} for d in range(dirs)}
    tree["d00"]["a-swapped"] = File(b"a file at first")
    tree[f"d{dirs - 1:02d}"]["z-swapped"] = File(b"a file at first")
    src = build(tmp_path / "src", tree)
    real_read_file = backup._FileReader.read_file

    def read_file_then_swap(self: object, path: str, node: dict, task: object) -> None:
        real_read_file(self, path, node, task)  # type: ignore[arg-type]
        if path.endswith("-swapped"):  # queued in a batch, not yet read
            os.unlink(path)
            os.mkfifo(path)

    monkeypatch.setattr(backup._FileReader, "read_file", read_file_then_swap)
    repo = Repository.create(LocalDestination(tmp_path / "archive"), "pw", tmp_path / "cache")
    try:
        result = run_backup(repo, BackupOptions(paths=(src,), workers=2, processes=2))
    finally:
        repo.close()
    assert sorted(e.split(":")[0] for e in result.errors) == \
        [str(src / "d00" / "a-swapped"), str(src / f"d{dirs - 1:02d}" / "z-swapped")]
    assert result.counts.files_new == dirs * 100 + 2


def test_read_small_takes_files_up_to_the_limit_and_refuses_grown_ones(tmp_path: Path) -> None:
    for size, expected in ((0, b""), (100, b"x" * 100), (101, None)):
        path = tmp_path / f"f{size}"
        path.write_bytes(b"x" * size)
        with open_source(str(path)) as f:
            assert read_small(f, 100) == expected


def test_read_small_follows_a_file_growing_while_it_is_read(tmp_path: Path) -> None:
    class GrowsOnFirstRead:
        """A file that gets ``extra`` appended between its fstat and its first read."""

        def __init__(self, path: Path, extra: bytes) -> None:
            self._f, self._path, self._extra = open_source(str(path)), path, extra

        def fileno(self) -> int:
            return self._f.fileno()

        def read(self, n: int) -> bytes:
            if self._extra:
                with open(self._path, "ab") as out:
                    out.write(self._extra)
                self._extra = b""
            return self._f.read(n)

    path = tmp_path / "log"
    path.write_bytes(b"a" * 50)
    assert read_small(GrowsOnFirstRead(path, b"b" * 30), 100) == b"a" * 50 + b"b" * 30  # type: ignore[arg-type]
    path.write_bytes(b"a" * 50)
    assert read_small(GrowsOnFirstRead(path, b"b" * 60), 100) is None  # type: ignore[arg-type]


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_open_ahead_gives_files_in_order_with_errors_in_place(tmp_path: Path) -> None:
    paths = []
    for i in range(20):
        path = tmp_path / f"f{i:02d}"
        if i % 7 == 3:
            path.mkdir()  # not a regular file: refused
        elif i % 7 != 5:  # i % 7 == 5: never created
            path.write_bytes(f"content {i}".encode())
        paths.append(str(path))
    got = []
    for path, opened in open_ahead(paths, window=4):
        if isinstance(opened, OSError):
            got.append((path, None))
        else:
            with opened as f:
                got.append((path, f.read()))
    assert got == [(str(tmp_path / f"f{i:02d}"),
                    None if i % 7 in (3, 5) else f"content {i}".encode()) for i in range(20)]


def test_open_ahead_holds_at_most_its_window_and_closes_what_it_did_not_give(
        tmp_path: Path) -> None:
    paths = []
    for i in range(30):
        (tmp_path / f"f{i}").write_bytes(b"x")
        paths.append(str(tmp_path / f"f{i}"))
    before = _open_fds()
    ahead = open_ahead(paths, window=8)
    _, first = next(ahead)
    assert _open_fds() - before == 8  # the one given out and seven more, reads started
    first.close()
    next(ahead)[1].close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ahead.close()  # the caller stops early (a cancelled batch): the rest are closed
    assert _open_fds() == before
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]  # closed, not GCed


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"),
                    reason="no posix_fadvise here; the next test covers that case")
def test_open_ahead_asks_the_kernel_to_read_each_file(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    advised = []
    real = os.posix_fadvise

    def record(fd: int, offset: int, length: int, advice: int) -> None:
        advised.append((os.readlink(f"/proc/self/fd/{fd}"), offset, length, advice))
        real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", record)
    for name in "abc":
        (tmp_path / name).write_bytes(name.encode() * 100)
    for _, opened in open_ahead([str(tmp_path / n) for n in "abc"], window=2):
        opened.close()  # type: ignore[union-attr]
    assert advised == [(str(tmp_path / n), 0, 0, os.POSIX_FADV_WILLNEED) for n in "abc"]


def test_open_ahead_works_where_there_is_no_read_ahead_advice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows and macOS have no posix_fadvise: the files are simply read."""
    monkeypatch.delattr(os, "posix_fadvise", raising=False)
    (tmp_path / "a").write_bytes(b"alpha")
    [(_, opened)] = list(open_ahead([str(tmp_path / "a")], window=4))
    with opened as f:  # type: ignore[union-attr]
        assert f.read() == b"alpha"


def test_declined_read_ahead_advice_is_not_an_error(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def decline(*_: object) -> None:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(os, "posix_fadvise", decline, raising=False)
    (tmp_path / "a").write_bytes(b"alpha")
    fd = os.open(tmp_path / "a", os.O_RDONLY)
    try:
        source.advise_read_ahead(fd)
    finally:
        os.close(fd)
    [(_, opened)] = list(open_ahead([str(tmp_path / "a")], window=4))
    with opened as f:  # type: ignore[union-attr]
        assert f.read() == b"alpha"
