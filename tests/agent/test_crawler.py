"""The crawl that lists folders ahead of the walker: same listings, bounded, robust."""

from __future__ import annotations

import os
import signal
import stat
import threading
import time
from pathlib import Path

import pytest

from agent import launch
from agent.scan import crawler as crawler_module
from agent.scan.crawler import Crawler, adopt_early, every_subfolder, start_early
from agent.scan.listing import list_dir
from agent.scan.listproc import ListerProcess, can_fork
from tests.agent.deadline import call_with_deadline

needs_fork = pytest.mark.skipif(not can_fork(), reason="lister processes need os.fork")


def make_tree(root: Path, width: int = 3, depth: int = 3) -> int:
    """Folders ``width`` wide and ``depth`` deep, two files in each; returns the folder count."""
    folders = 1
    (root / "a.txt").write_text("a")
    (root / "b.bin").write_bytes(b"b" * 10)
    if depth:
        for i in range(width):
            sub = root / f"d{i}"
            sub.mkdir()
            folders += make_tree(sub, width, depth - 1)
    return folders


def walk(crawler: Crawler, root: str) -> dict[str, list]:
    """Take every folder in the walker's order (depth first, names sorted)."""
    seen: dict[str, list] = {}

    def visit(path: str) -> None:
        listing = crawler.take(path)
        assert not isinstance(listing, OSError)
        seen[path] = listing
        for name, st in listing:
            if stat.S_ISDIR(st.st_mode):
                visit(os.path.join(path, name))

    visit(root)
    return seen


def crawl_all(crawler: Crawler, root: Path) -> dict[str, list]:
    """Seed the crawl with ``root``, walk it all, close the crawler."""
    crawler.seed([str(root)])
    try:
        return walk(crawler, str(root))
    finally:
        crawler.close()


def assert_complete(seen: dict[str, list], folders: int) -> None:
    assert len(seen) == folders
    assert all(same_listing(listing, list_dir(path)) for path, listing in seen.items())


def same_listing(got: list, want: list) -> bool:
    return [(n, s.st_ino, s.st_mode, s.st_size, s.st_mtime_ns) for n, s in got] == \
           [(n, s.st_ino, s.st_mode, s.st_size, s.st_mtime_ns) for n, s in want]


@pytest.mark.parametrize("max_entries", [2, 20_000])
def test_thread_crawl_gives_every_folder_its_listing(tmp_path: Path, max_entries: int) -> None:
    folders = make_tree(tmp_path)
    crawler = Crawler(every_subfolder, threads=3, max_entries=max_entries)
    assert_complete(crawl_all(crawler, tmp_path), folders)


def test_a_folder_the_crawl_never_queued_is_listed_on_demand(tmp_path: Path) -> None:
    folders = make_tree(tmp_path, width=2, depth=2)
    crawler = Crawler(every_subfolder, threads=2)  # nothing seeded: the walker leads
    try:
        assert len(walk(crawler, str(tmp_path))) == folders
    finally:
        crawler.close()


def test_forgotten_folders_free_what_the_crawl_held(tmp_path: Path) -> None:
    make_tree(tmp_path, width=2, depth=3)
    crawler = Crawler(every_subfolder, threads=2)
    crawler.seed([str(tmp_path)])
    try:
        top = crawler.take(str(tmp_path))
        assert not isinstance(top, OSError)
        excluded = str(tmp_path / "d0")
        crawler.forget(excluded)
        rest = walk(crawler, str(tmp_path / "d1"))
        assert excluded not in rest and len(rest) == 7
        assert crawler._buffered == 0  # nothing below d0 is kept for a walker that never comes
    finally:
        crawler.close()


@needs_fork
def test_lister_process_answers_in_order_and_ends_on_close(tmp_path: Path) -> None:
    make_tree(tmp_path, width=2, depth=1)
    process = ListerProcess()
    paths = [str(tmp_path), str(tmp_path / "d0"), str(tmp_path / "missing"), str(tmp_path / "d1")]
    process.send(paths[:1], 0)
    process.send(paths[1:], 0)  # several outstanding requests, answered in order
    answers = [process.receive() for _ in paths]
    assert [[folder for folder, _ in answer] for answer in answers] == [[p] for p in paths]
    assert isinstance(answers[2][0][1], FileNotFoundError)
    for path, ((_, listing),) in zip(paths, answers, strict=True):
        if not isinstance(listing, OSError):
            assert same_listing(listing, list_dir(path))
    pid = process._pid
    process.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped: no zombie left behind
    with pytest.raises(OSError, match="ended"):
        process.send([str(tmp_path)], 0)


@needs_fork
def test_lister_process_lists_a_subtree_in_walk_order_up_to_its_budget(tmp_path: Path) -> None:
    make_tree(tmp_path, width=2, depth=2)  # d0, d0/d0, d0/d1, d1, ...; files in each
    (tmp_path / "d0" / "link").symlink_to(tmp_path / "d1")  # not a folder of its own
    process = ListerProcess()
    try:
        process.send([str(tmp_path)], 10_000)
        process.send([str(tmp_path / "d0"), str(tmp_path)], 1)  # the folder asked for only
        process.send([str(tmp_path)], 9)  # the root's 4 entries, then d0's 5: budget spent
        whole, first, first_too, some = (process.receive() for _ in range(4))
    finally:
        process.close()
    below = sorted((str(p) for p in tmp_path.rglob("*") if p.is_dir() and not p.is_symlink()),
                   key=lambda p: p.split(os.sep))
    expected = [str(tmp_path), *below]
    assert [folder for folder, _ in whole] == expected  # depth first, names sorted
    assert all(same_listing(listing, list_dir(folder)) for folder, listing in whole)
    assert [folder for folder, _ in first] == [str(tmp_path / "d0")]
    assert [folder for folder, _ in first_too] == [str(tmp_path)]
    assert [folder for folder, _ in some] == expected[:2]  # the root and d0


@needs_fork
@pytest.mark.parametrize("subtree_entries", [0, 3, 10_000])
def test_lister_processes_keep_only_the_subfolders_the_walker_picks(
        tmp_path: Path, subtree_entries: int) -> None:
    """A lister process lists below the folder asked for without knowing what the walk
    leaves out: the crawl must keep none of that (it would never be taken), and must
    still queue what an answer stopped short of."""
    make_tree(tmp_path, width=3, depth=3)
    skipped = str(tmp_path / "d1")

    def pick(path: str, listing: list) -> list[tuple[str, str]]:
        return [(n, c) for n, c in every_subfolder(path, listing) if c != skipped]

    crawler = Crawler(pick, processes=[ListerProcess() for _ in range(2)])
    crawler.set_picker(pick, subtree_entries=subtree_entries)
    crawler.seed([str(tmp_path)])
    try:
        deadline = time.monotonic() + 30  # the crawl lists ahead, from the top folder down
        while (crawler._heap or crawler._listing_now) and time.monotonic() < deadline:
            time.sleep(0.01)
        seen: dict[str, list] = {}

        def visit(path: str) -> None:
            seen[path] = crawler.take(path)  # type: ignore[assignment]
            for name, st in seen[path]:
                child = os.path.join(path, name)
                if stat.S_ISDIR(st.st_mode) and child != skipped:
                    visit(child)

        visit(str(tmp_path))
        assert not any(path.startswith(skipped) for path in seen)
        assert all(same_listing(listing, list_dir(path)) for path, listing in seen.items())
        assert len(seen) == 1 + 2 * (1 + 3 + 9)
        assert crawler._buffered == 0 and not crawler._done  # nothing of d1 is held
    finally:
        crawler.close()


@needs_fork
def test_closing_a_lister_from_another_thread_waits_for_a_request_being_sent(
        tmp_path: Path) -> None:
    """Its pipes must stay open under a send (or receive) in progress: closed, their
    descriptor numbers could be reused by the next pipe anyone opens (a backup starts
    its worker processes right then) and that pipe written or read by mistake."""
    process = ListerProcess()
    request_pipe = os.fstat(process._request_w).st_ino
    os.kill(process._pid, signal.SIGSTOP)  # it reads no request for now
    long_missing = [str(tmp_path / ("a/" * 1900) / str(i)) for i in range(24)]  # > a pipe's 64 KiB
    sender = threading.Thread(target=process.send, args=(long_missing, 0))
    sender.start()
    time.sleep(0.2)  # the sender is blocked on the full request pipe
    closer = threading.Thread(target=process.close)
    closer.start()
    time.sleep(0.2)
    try:
        assert os.fstat(process._request_w).st_ino == request_pipe, "closed under the sender"
        assert closer.is_alive()
    finally:
        os.kill(process._pid, signal.SIGCONT)
        sender.join(10)
        closer.join(10)
    assert not sender.is_alive() and not closer.is_alive()
    with pytest.raises(ChildProcessError):
        os.waitpid(process._pid, os.WNOHANG)  # reaped
    with pytest.raises(OSError, match="ended"):
        process.receive()


@needs_fork
def test_early_crawl_is_adopted_for_the_same_roots_and_retires_its_processes(
        tmp_path: Path) -> None:
    folders = make_tree(tmp_path)
    start_early([str(tmp_path)])
    crawler = adopt_early([str(tmp_path)], every_subfolder)
    assert crawler is not None
    pids = [p._pid for p in crawler._processes]
    assert len(pids) == crawler_module.CRAWL_THREADS
    try:
        seen = walk(crawler, str(tmp_path))
    finally:
        crawler.close()
    assert_complete(seen, folders)
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def test_early_crawl_for_other_roots_is_stopped_not_adopted(tmp_path: Path) -> None:
    make_tree(tmp_path, width=1, depth=1)
    start_early([str(tmp_path)])
    assert adopt_early([str(tmp_path / "d0")], every_subfolder) is None
    assert adopt_early([str(tmp_path)], every_subfolder) is None  # it was used up


@needs_fork
def test_a_lister_process_that_dies_is_replaced_by_listing_here(tmp_path: Path) -> None:
    folders = make_tree(tmp_path, width=3, depth=3)
    processes = [ListerProcess()]
    os.kill(processes[0]._pid, signal.SIGKILL)
    crawler = Crawler(every_subfolder, threads=1, processes=processes)
    assert_complete(crawl_all(crawler, tmp_path), folders)


def test_launch_finds_the_folders_of_a_backup_command_line(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "dest").mkdir()
    (tmp_path / "file.txt").write_text("x")
    docs, dest, file = (str(tmp_path / n) for n in ("docs", "dest", "file.txt"))
    assert launch.backup_folders(["backup", docs, "--dest", dest, "--json"]) == [docs]
    assert launch.backup_folders(["backup", "--exclude", docs, file, "--limit-rate=1M"]) == []
    assert launch.backup_folders(["restore", "latest", "--target", docs]) == []
    assert launch.backup_folders(["backup", "--", docs]) == []
    assert launch.backup_folders([]) == []


@needs_fork
def test_lister_processes_end_when_a_slow_walker_holds_the_crawl_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crawler_module, "RETIRE_AFTER_S", 0.2)
    folders = make_tree(tmp_path)
    processes = [ListerProcess(), ListerProcess()]
    pids = [p._pid for p in processes]
    crawler = Crawler(every_subfolder, threads=2, max_entries=5, processes=processes)
    crawler.seed([str(tmp_path)])
    try:
        first = crawler.take(str(tmp_path))  # then the walker dawdles, as behind file reads
        assert not isinstance(first, OSError)
        deadline = time.monotonic() + 10
        while crawler._processes and time.monotonic() < deadline:
            time.sleep(0.05)
        assert crawler._processes == []  # ended mid-walk, not at close
        for pid in pids:
            with pytest.raises(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        rest = {}
        for name, st in first:
            if stat.S_ISDIR(st.st_mode):
                rest.update(walk(crawler, str(tmp_path / name)))
    finally:
        crawler.close()
    assert_complete(rest, folders - 1)


@needs_fork
def test_retiring_the_lister_processes_mid_walk_keeps_every_listing(tmp_path: Path) -> None:
    """Retired all at once (the walk is the slow part), they leave one thread to list
    the rest, since each crawl thread's system calls hand the GIL away; every folder
    still gets its listing."""
    folders = make_tree(tmp_path, width=4, depth=4)
    processes = [ListerProcess() for _ in range(3)]
    pids = [p._pid for p in processes]
    crawler = Crawler(every_subfolder, threads=3, processes=processes)
    crawler.seed([str(tmp_path)])
    try:
        seen = {str(tmp_path): crawler.take(str(tmp_path))}
        crawler.retire_processes()
        for pid in pids:  # reaped at once, not at the end of the walk
            with pytest.raises(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        assert _alive_after(crawler, crawler_module.THREADS_AFTER_RETIRING) == \
            crawler_module.THREADS_AFTER_RETIRING
        for name, _ in seen[str(tmp_path)]:
            if (tmp_path / name).is_dir():
                seen.update(walk(crawler, str(tmp_path / name)))
    finally:
        crawler.close()
    assert_complete(seen, folders)


@needs_fork
def test_retiring_all_but_one_lister_process_keeps_it_listing(tmp_path: Path) -> None:
    """When a backup starts its seal workers, one lister process goes on (outside the
    GIL) and the others end with their threads; every folder still gets its listing."""
    folders = make_tree(tmp_path, width=4, depth=4)
    processes = [ListerProcess() for _ in range(3)]
    pids = [p._pid for p in processes]
    crawler = Crawler(every_subfolder, threads=3, max_entries=10, processes=processes)
    crawler.seed([str(tmp_path)])
    try:
        seen = {str(tmp_path): crawler.take(str(tmp_path))}
        crawler.retire_processes(keep=1)
        for pid in pids[1:]:  # reaped at once
            with pytest.raises(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        assert os.waitpid(pids[0], os.WNOHANG) == (0, 0)  # still running
        assert _alive_after(crawler, 1) == 1
        for name, _ in seen[str(tmp_path)]:
            if (tmp_path / name).is_dir():
                seen.update(walk(crawler, str(tmp_path / name)))
    finally:
        crawler.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(pids[0], os.WNOHANG)
    assert_complete(seen, folders)


def _alive_after(crawler: Crawler, want: int) -> int:
    """Crawl threads alive once they settle (up to 10 s) at ``want``."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = sum(t.is_alive() for t in crawler._threads)
        if alive == want:
            time.sleep(0.2)  # and stays so
            return sum(t.is_alive() for t in crawler._threads)
        time.sleep(0.02)
    return sum(t.is_alive() for t in crawler._threads)


@needs_fork
def test_crawl_threads_whose_lister_processes_died_go_on_listing(tmp_path: Path) -> None:
    """Not retired, died: the walk has not outrun the crawl, so every thread lists on."""
    folders = make_tree(tmp_path, width=4, depth=4)
    processes = [ListerProcess() for _ in range(3)]
    for process in processes:
        os.kill(process._pid, signal.SIGKILL)
    crawler = Crawler(every_subfolder, threads=3, processes=processes)
    crawler.seed([str(tmp_path)])
    try:
        assert _alive_after(crawler, 3) == 3
        seen = walk(crawler, str(tmp_path))
    finally:
        crawler.close()
    assert_complete(seen, folders)


@pytest.mark.parametrize("processes", [0, pytest.param(4, marks=needs_fork)])
def test_a_crawl_under_a_tight_bound_never_stalls(tmp_path: Path, processes: int) -> None:
    """Crawl threads wait for work and the walker for a listing on separate conditions;
    each change wakes only who can act on it. A wakeup lost on the way would leave the
    walk waiting for ever: many rounds under a bound of a few entries must all end."""
    folders = make_tree(tmp_path, width=3, depth=4)
    for _ in range(5):
        crawler = Crawler(every_subfolder, threads=4, max_entries=3,
                          processes=[ListerProcess() for _ in range(processes)])
        finished, seen = call_with_deadline(lambda c=crawler: crawl_all(c, tmp_path), 30)
        assert finished, "the crawl stalled"
        assert_complete(seen, folders)  # type: ignore[arg-type]
