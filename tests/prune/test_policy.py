"""The retention policy: tables with a fixed clock, and properties that hold for any history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import UsageError
from agent.retention.policy import (
    DAY,
    HOUR,
    WEEK,
    YEAR,
    RetentionPolicy,
    SnapshotRef,
    decide,
    format_duration,
    parse_duration,
    period,
)

NOW = datetime(2027, 6, 15, 12, 0, tzinfo=UTC)  # a Tuesday, ISO week 2027-W24


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def snap(label: str, when: datetime, device: str = "laptop",
         paths: tuple[str, ...] = ("/home/ann",)) -> SnapshotRef:
    return SnapshotRef(id=label, time=when, device=device, paths=paths)


DEFAULT = RetentionPolicy()


def kept_ids(snaps: list[SnapshotRef], policy: RetentionPolicy = DEFAULT,
             now: datetime = NOW) -> set[str]:
    return {d.snapshot.id for d in decide(snaps, policy, now) if d.keep}


LATEST = ("latest", NOW - timedelta(minutes=5))

# name, policy, [(label, time)], labels kept (the rest must be forgotten)
TABLE = [
    ("every version within the last day", RetentionPolicy(),
     [("a", NOW - timedelta(hours=1)), ("b", NOW - timedelta(hours=6)),
      ("c", NOW - timedelta(hours=23, minutes=30)), LATEST],
     {"a", "b", "c", "latest"}),
    ("one per hour for a week: the newest of each hour", RetentionPolicy(),
     [("10:10", at("2027-06-13 10:10")), ("10:40", at("2027-06-13 10:40")),
      ("10:55", at("2027-06-13 10:55")), ("11:05", at("2027-06-13 11:05")), LATEST],
     {"10:55", "11:05", "latest"}),
    ("one per day up to 90 days", RetentionPolicy(),
     [("03:00", at("2027-05-01 03:00")), ("09:00", at("2027-05-01 09:00")),
      ("23:59", at("2027-05-01 23:59")), ("next-day", at("2027-05-02 00:01")), LATEST],
     {"23:59", "next-day", "latest"}),
    ("one per ISO week (Monday to Sunday) up to a year", RetentionPolicy(),
     [("mon", at("2026-11-02 08:00")), ("thu", at("2026-11-05 08:00")),
      ("sun", at("2026-11-08 23:00")), ("next-mon", at("2026-11-09 01:00")), LATEST],
     {"sun", "next-mon", "latest"}),
    ("one per month beyond a year, forever", RetentionPolicy(),
     [("mar-1", at("2025-03-01 10:00")), ("mar-31", at("2025-03-31 23:00")),
      ("apr-1", at("2025-04-01 00:30")), ("2019", at("2019-07-04 12:00")), LATEST],
     {"mar-31", "apr-1", "2019", "latest"}),
    ("older than a limited monthly tier: forgotten", RetentionPolicy(monthly=2 * YEAR),
     [("old", at("2024-01-10 10:00")), ("recent", at("2026-01-10 10:00")), LATEST],
     {"recent", "latest"}),
    ("the newest snapshot of a set is kept even when expired",
     RetentionPolicy(weekly=0, monthly=400 * DAY),
     [("jan", at("2020-01-01 10:00")), ("feb", at("2020-02-01 10:00"))],
     {"feb"}),
    ("snapshots dated after now (clock skew) are kept", RetentionPolicy(keep_within=0),
     [("future-1", NOW + timedelta(hours=1)), ("future-2", NOW + timedelta(hours=2)),
      ("same-hour-a", at("2027-06-15 11:10")), ("same-hour-b", at("2027-06-15 11:20"))],
     {"future-1", "future-2", "same-hour-b"}),
    ("a tier set to 0 is off: two-day-old snapshots fall to daily", RetentionPolicy(hourly=0),
     [("morning", at("2027-06-13 10:10")), ("afternoon", at("2027-06-13 15:00")), LATEST],
     {"afternoon", "latest"}),
    ("an hour already holding a keep-within snapshot keeps no second one",
     RetentionPolicy(keep_within=DAY + 30 * 60),
     [("within", at("2027-06-14 11:45")), ("hourly", at("2027-06-14 11:20")),
      ("earlier-hour", at("2027-06-14 10:20")), LATEST],
     {"within", "earlier-hour", "latest"}),
    ("keep_within forever keeps everything", RetentionPolicy(keep_within=None),
     [("a", at("2001-01-01 00:00")), ("b", at("2001-01-01 00:01")), LATEST],
     {"a", "b", "latest"}),
    ("nothing but the latest when every tier is off",
     RetentionPolicy(keep_within=0, hourly=0, daily=0, weekly=0, monthly=0),
     [("a", NOW - timedelta(minutes=30)), ("b", NOW - timedelta(days=3)), LATEST],
     {"latest"}),
]


@pytest.mark.parametrize(("policy", "history", "expected"),
                         [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_retention_table(policy: RetentionPolicy, history: list, expected: set[str]) -> None:
    snaps = [snap(label, when) for label, when in history]
    decisions = decide(snaps, policy, NOW)
    assert {d.snapshot.id for d in decisions} == {label for label, _ in history}
    assert {d.snapshot.id for d in decisions if d.keep} == expected
    assert all(d.reason for d in decisions)


def test_reasons_name_the_tier_and_the_holder() -> None:
    snaps = [snap("aaaaaaaa-old", at("2027-05-01 03:00")),
             snap("bbbbbbbb-new", at("2027-05-01 09:00")), snap(*LATEST)]
    by_id = {d.snapshot.id: d for d in decide(snaps, RetentionPolicy(), NOW)}
    assert by_id["aaaaaaaa-old"].tier == "daily" and not by_id["aaaaaaaa-old"].keep
    assert "2027-05-01" in by_id["aaaaaaaa-old"].reason
    assert "bbbbbbbb" in by_id["aaaaaaaa-old"].reason
    assert by_id["bbbbbbbb-new"].reason == "daily (90d): newest of 2027-05-01"
    assert by_id["latest"].tier == "latest"


def test_sets_are_decided_separately_by_device_and_paths() -> None:
    same_hour = [at("2027-06-13 10:10"), at("2027-06-13 10:40")]
    snaps = [snap(f"{dev}-{i}", t, device=dev) for dev in ("laptop", "desktop")
             for i, t in enumerate(same_hour)]
    snaps += [snap("other-paths-0", same_hour[0], paths=("/srv",)),
              snap("other-paths-1", same_hour[1], paths=("/srv",))]
    # Each set's newest is its latest; the older one in the same hour is forgotten.
    assert kept_ids(snaps) == {"laptop-1", "desktop-1", "other-paths-1"}


def test_the_order_of_paths_does_not_make_another_set() -> None:
    snaps = [snap("ab", at("2027-06-13 10:10"), paths=("/a", "/b")),
             snap("ba", at("2027-06-13 10:40"), paths=("/b", "/a"))]
    assert kept_ids(snaps) == {"ba"}


def test_naive_and_offset_times_are_the_same_instant() -> None:
    offset = datetime.fromisoformat("2027-06-13T12:40:00+02:00")  # 10:40 UTC
    snaps = [snap("utc", at("2027-06-13 10:10")), snap("cest", offset), snap(*LATEST)]
    assert kept_ids(snaps, now=NOW.replace(tzinfo=None)) == {"cest", "latest"}


@pytest.mark.parametrize(("text", "seconds"), [
    ("forever", None), ("FOREVER", None), ("0", 0), ("45s", 45), ("15m", 900), ("1h", HOUR),
    ("1d", DAY), ("7d", WEEK), ("2w", 2 * WEEK), ("90d", 90 * DAY), ("1y", YEAR),
    ("1h30m", 90 * 60), (" 1d12h ", DAY + 12 * HOUR), (3600, 3600),
])
def test_parse_duration(text: object, seconds: int | None) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "1", "1x", "-1d", "1.5d", "d", "never", True, -5])
def test_bad_durations_are_refused_with_a_sentence(bad: object) -> None:
    with pytest.raises(UsageError, match=r"duration|negative"):
        parse_duration(bad, "--daily")


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "forever"), (0, "0"), (DAY, "1d"), (WEEK, "7d"), (90 * DAY, "90d"), (YEAR, "1y"),
    (DAY + 12 * HOUR, "1d12h"), (YEAR + DAY, "1y1d"), (59, "59s"),
])
def test_format_duration(seconds: int | None, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


def test_policy_defaults_and_dict_round_trip() -> None:
    policy = RetentionPolicy()
    assert policy.to_dict() == {"keep_within": "1d", "hourly": "7d", "daily": "90d",
                                "weekly": "1y", "monthly": "forever",
                                "deleted_files": "forever"}
    assert RetentionPolicy.from_dict(policy.to_dict()) == policy
    custom = RetentionPolicy.from_dict({"daily": "30d", "deleted_files": "1y", "monthly": 0})
    assert (custom.daily, custom.deleted_files, custom.monthly) == (30 * DAY, YEAR, 0)
    assert custom.hourly == WEEK  # untouched settings keep their defaults
    assert RetentionPolicy.from_dict(custom.to_dict()) == custom


def test_unknown_or_invalid_settings_are_refused() -> None:
    with pytest.raises(UsageError, match=r"Unknown retention setting.*yearly"):
        RetentionPolicy.from_dict({"yearly": "1y"})
    with pytest.raises(UsageError, match="hourly"):
        RetentionPolicy.from_dict({"hourly": "often"})
    with pytest.raises(UsageError, match="seconds"):
        RetentionPolicy(daily=-1)


def test_periods_are_utc_calendar_periods() -> None:
    t = datetime.fromisoformat("2027-01-01T00:30:00+01:00")  # still 2026 in UTC
    assert period(t, "hourly") == "2026-12-31 23:00"
    assert period(t, "daily") == "2026-12-31"
    assert period(t, "weekly") == "2026-W53"
    assert period(t, "monthly") == "2026-12"


# --- properties over arbitrary histories ------------------------------------------------

durations = st.sampled_from([0, HOUR, DAY, WEEK, 30 * DAY, 90 * DAY, YEAR, None])
policies = st.builds(RetentionPolicy, keep_within=durations, hourly=durations, daily=durations,
                     weekly=durations, monthly=durations)
ages = st.integers(-2 * DAY, 3 * YEAR)
histories = st.lists(st.tuples(st.sampled_from(["laptop", "desktop"]), ages), max_size=60)
props = settings(max_examples=150, deadline=None)


def build(history: list[tuple[str, int]]) -> list[SnapshotRef]:
    return [snap(f"{i:04d}", NOW - timedelta(seconds=age), device=dev)
            for i, (dev, age) in enumerate(history)]


@props
@given(policy=policies, history=histories)
def test_pruning_what_was_kept_forgets_nothing_more(policy: RetentionPolicy,
                                                    history: list) -> None:
    snaps = build(history)
    kept = [s for s in snaps if s.id in kept_ids(snaps, policy)]
    assert kept_ids(kept, policy) == {s.id for s in kept}


@props
@given(policy=policies, history=histories)
def test_the_newest_of_each_set_and_every_covered_period_survive(policy: RetentionPolicy,
                                                                 history: list) -> None:
    snaps = build(history)
    decisions = decide(snaps, policy, NOW)
    kept = {d.snapshot.id for d in decisions if d.keep}
    for device in {s.device for s in snaps}:
        newest = max((s for s in snaps if s.device == device), key=lambda s: (s.time, s.id))
        assert newest.id in kept
    for d in decisions:
        if d.tier in ("hourly", "daily", "weekly", "monthly"):
            label = period(d.snapshot.time, d.tier)
            assert any(k.snapshot.device == d.snapshot.device and k.keep
                       and period(k.snapshot.time, d.tier) == label for k in decisions)
        if d.tier == "keep_within":
            assert d.keep


@props
@given(policy=policies, history=histories, seed=st.randoms())
def test_the_input_order_does_not_matter(policy: RetentionPolicy, history: list, seed) -> None:
    snaps = build(history)
    shuffled = list(snaps)
    seed.shuffle(shuffled)
    assert kept_ids(shuffled, policy) == kept_ids(snaps, policy)
