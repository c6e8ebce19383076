"""Small parts of the service: resource rules, throttling, exclusions, schemas, secrets,
events, tasks, the scan meter."""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
from pathlib import Path

import pytest

from agent.api import schemas as s
from agent.errors import Interrupted, UsageError
from agent.service import excludes, resources
from agent.service.config import ResourceSettings
from agent.service.events import EventBus
from agent.service.secrets import SecretFilter, read_passphrase_file
from agent.service.tasks import TaskRegistry
from agent.service.throttle import RateLimiter, ThrottledDestination

TAG = b"Signature: 8a477f597d28d172789f06886806bc55\n"


# --- resources ----------------------------------------------------------------------------


def _readings(**kw: object) -> resources.Readings:
    base: dict = {"idle_s": None, "present": None, "on_battery": None, "battery_percent": None,
                  "metered": None}
    return resources.Readings(**{**base, **kw})


def test_presence_picks_cpu_share_and_upload_limit() -> None:
    rules = ResourceSettings(cpu_present=25, cpu_away=100, upload_limit_present=100,
                             upload_limit_away=0, away_after="15m")
    present = resources.decide(rules, _readings(idle_s=60), cpu_count=8)
    away = resources.decide(rules, _readings(idle_s=3600), cpu_count=8)
    assert (present.user_present, present.workers, present.upload_limit_bps) == (True, 2, 102400)
    assert (away.user_present, away.workers, away.upload_limit_bps) == (False, 8, 0)
    no_session = resources.decide(rules, _readings(present=False), cpu_count=8)
    assert not no_session.user_present  # Linux without a session counts as away


def test_battery_and_metered_pause() -> None:
    rules = ResourceSettings(battery_min=20, pause_on_metered=True)
    low = resources.decide(rules, _readings(on_battery=True, battery_percent=15), 2)
    assert "battery at 15 %" in low.pause_reason
    charging = resources.decide(rules, _readings(on_battery=False, battery_percent=15), 2)
    assert charging.pause_reason == ""
    assert "metered" in resources.decide(rules, _readings(metered=True), 2).pause_reason
    off = ResourceSettings(battery_min=0)
    assert resources.decide(off, _readings(on_battery=True, battery_percent=1), 2).pause_reason \
        == ""


def test_linux_probes_read_sysfs_and_logind(tmp_path: Path) -> None:
    for name, kind, status, capacity in [("AC", "Mains", "", ""),
                                         ("BAT0", "Battery", "Discharging", "42"),
                                         ("BAT1", "Battery", "Full", "90")]:
        folder = tmp_path / "power" / name
        folder.mkdir(parents=True)
        (folder / "type").write_text(kind + "\n")
        if status:
            (folder / "status").write_text(status + "\n")
            (folder / "capacity").write_text(capacity + "\n")
    assert resources.linux_battery(tmp_path / "power") == (True, 42)
    assert resources.linux_battery(tmp_path / "none") == (None, None)
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    (sessions / "3").write_text("ACTIVE=1\nTYPE=x11\nREMOTE=1\n")
    assert not resources.linux_session_present(sessions)  # remote desktop: not at the computer
    (sessions / "4").write_text("ACTIVE=1\nTYPE=wayland\nREMOTE=0\n")
    assert resources.linux_session_present(sessions)


# --- throttling ---------------------------------------------------------------------------


def test_rate_limiter_paces_after_a_one_second_burst() -> None:
    now = [0.0]
    limiter = RateLimiter(1000, now=lambda: now[0])
    assert limiter.reserve(1000) == 0  # the burst
    assert limiter.reserve(500) == pytest.approx(0.5)
    limiter.set_rate(0)
    assert limiter.reserve(10**9) == 0  # unlimited


class _Sink:
    description = "sink"

    def __init__(self) -> None:
        self.stored: list[str] = []

    def put_bytes(self, kind: str, name: str, data: bytes) -> None:
        self.stored.append(name)


def test_throttled_destination_delegates_and_honours_cancel() -> None:
    inner, cancel = _Sink(), threading.Event()
    dest = ThrottledDestination(inner, RateLimiter(0), cancel)  # type: ignore[arg-type]
    dest.put_bytes("data", "a", b"x" * 10)
    assert inner.stored == ["a"] and dest.description == "sink"
    slow = ThrottledDestination(inner, RateLimiter(1024), cancel)  # type: ignore[arg-type]
    threading.Timer(0.2, cancel.set).start()
    with pytest.raises(Interrupted):
        slow.put_bytes("data", "b", b"x" * 1_000_000)  # ~15 min at 1 KiB/s
    assert inner.stored == ["a"]


# --- exclusions -----------------------------------------------------------------------------


def test_tagged_cache_folders(tmp_path: Path) -> None:
    (tmp_path / "a" / "cache" / "deep").mkdir(parents=True)
    (tmp_path / "a" / "cache" / "CACHEDIR.TAG").write_bytes(TAG)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "CACHEDIR.TAG").write_bytes(b"not the signature")
    assert excludes.find_tagged([str(tmp_path)]) == {str(tmp_path / "a" / "cache")}
    gained, lost = excludes.tagged_from_changes([str(tmp_path / "a" / "cache" / "CACHEDIR.TAG"),
                                                 str(tmp_path / "b" / "CACHEDIR.TAG"),
                                                 str(tmp_path / "b" / "other")])
    assert gained == {str(tmp_path / "a" / "cache")} and lost == {str(tmp_path / "b")}


def test_glob_escape_matches_only_the_path() -> None:
    odd = "/home/ann/[draft]*?.d"
    pattern = excludes.glob_escape(odd)
    assert fnmatch.fnmatch(odd, pattern) and not fnmatch.fnmatch("/home/ann/d.d", pattern)
    globs = excludes.exclude_globs(["*.iso"], True, [odd])
    assert globs[0] == "*.iso" and ".cache" in globs and pattern in globs
    assert excludes.exclude_globs(["*.iso"], False, [odd]) == ("*.iso",)


# --- schemas ----------------------------------------------------------------------------------


def test_schemas_round_trip_nested_and_ignore_unknown_keys() -> None:
    status = s.Status(state=s.BACKING_UP, sets=[s.SetStatus(
        name="docs", progress=s.ProgressInfo(files_done=3, eta_s=2.5),
        last_run=s.RunSummary(result="success", skipped=["/x: denied"]))])
    doc = s.to_json(status)
    doc["added_in_a_newer_agent"] = 1
    back = s.from_json(s.Status, doc)
    assert back == status
    with pytest.raises(ValueError, match="sets must be a list"):
        s.from_json(s.Status, {"state": "idle", "sets": 3})
    with pytest.raises(ValueError, match="state must be of type str"):
        s.from_json(s.Status, {"state": 5})


def test_schemas_import_nothing_from_the_engine() -> None:
    source = (Path(s.__file__)).read_text()
    imports = [line for line in source.splitlines() if line.startswith(("import", "from"))]
    assert all(not line.split()[1].startswith("agent") for line in imports), imports


# --- secrets ------------------------------------------------------------------------------------


def test_passphrase_file_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text("s3cret phrase\n")
    path.chmod(0o640)
    with pytest.raises(UsageError, match="chmod 600"):
        read_passphrase_file(path)
    path.chmod(0o600)
    assert read_passphrase_file(path) == "s3cret phrase"
    os.symlink(path, tmp_path / "link")
    with pytest.raises(UsageError, match="Cannot open"):
        read_passphrase_file(tmp_path / "link")


def test_secret_filter_scrubs_messages_and_tracebacks() -> None:
    scrub = SecretFilter()
    scrub.add("hunter2hunter2")
    record = logging.LogRecord("cairn", logging.ERROR, __file__, 1, "pass=%s", ("hunter2hunter2",),
                               None)
    scrub.filter(record)
    assert record.getMessage() == "pass=<redacted>"
    try:
        raise ValueError("bad hunter2hunter2")
    except ValueError:
        import sys

        rec = logging.LogRecord("cairn", logging.ERROR, __file__, 1, "x", (), sys.exc_info())
    scrub.filter(rec)
    assert "hunter2hunter2" not in (rec.exc_text or "") and "<redacted>" in (rec.exc_text or "")


# --- events, tasks, scan meter ------------------------------------------------------------


def test_event_bus_long_poll() -> None:
    bus = EventBus()
    bus.publish("status")
    assert [e.seq for e in bus.since(0, 0)] == [1]
    threading.Timer(0.1, bus.publish, args=("paused", {"seconds": 5})).start()
    later = bus.since(1, 5)
    assert [(e.type, e.data) for e in later] == [("paused", {"seconds": 5})]


def test_task_registry_runs_cancels_and_reports() -> None:
    changes: list[str] = []
    tasks = TaskRegistry(lambda t: changes.append(t.status))
    started = threading.Event()

    def body(progress, cancel, note):
        note("working")
        progress.files_done = 7
        started.set()
        cancel.wait(10)
        raise Interrupted("stop")

    task = tasks.start("restore", "docs", body)
    started.wait(5)
    assert tasks.get(task.id).progress.files_done == 7
    tasks.cancel(task.id)
    tasks.stop(5)
    final = tasks.get(task.id)
    assert final.status == s.TASK_CANCELLED and final.log == ["working"]
    assert changes[-1] == s.TASK_CANCELLED
    failed = tasks.start("prune", "docs", lambda *_: (_ for _ in ()).throw(UsageError("nope")))
    tasks.stop(5)
    assert tasks.get(failed.id).status == s.TASK_FAILED and tasks.get(failed.id).error == "nope"
