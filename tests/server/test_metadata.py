"""The metadata rules, in-process, on SQLite and on a real PostgreSQL (``metadata_db``)."""

from __future__ import annotations

import io
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from server.domain import archive, devices, orgs, registration, reports, sessions, settings, users
from server.domain.access import Principal
from server.errors import (
    Conflict,
    DeviceLimitReached,
    LicenseCapReached,
    QuotaExceeded,
    ServerError,
    Unauthenticated,
    WrongCredentials,
)
from server.metadata.db import Database
from server.metadata.models import AdminSession, Archive, AuditEvent, Device, Org, User
from server.security import hash_password
from server.storage.filesystem import FilesystemBlobStore
from tests.server.helpers import sha

OPERATOR = Principal.operator("test")
PASSWORD = "a long enough password"
HASH = hash_password(PASSWORD)  # one slow hash, reused by the bulk-created users


def make_org(db: Database, name: str, parent: str | None = None, **limits: int) -> tuple[str, str]:
    with db.write() as session:
        org, key = orgs.create_org(session, OPERATOR, name, parent, limits.get("cap"),
                                   limits.get("quota"))
        return org.id, key


def make_user(db: Database, org_id: str, name: str | None = None,
              created: datetime | None = None) -> str:
    with db.write() as session:
        org = session.get(Org, org_id)
        return users.create_user(session, OPERATOR, org, name or new_name(), HASH,
                                 now=created).id


def new_name() -> str:
    return f"u{secrets.token_hex(5)}@example.test"


def reg(db: Database, key: str, username: str, password: str = PASSWORD,
        guid: str | None = None, replace: str | None = None) -> registration.Registered:
    return registration.register(db, registration.Registration(
        key, username, password, guid or secrets.token_hex(6), "pc", "Linux", "1.0.0",
        replace))


def give_data(db: Database, user_id: str, at: datetime) -> None:
    with db.write() as session:
        session.execute(update(Archive).where(Archive.user_id == user_id)
                        .values(first_data_at=at, bytes_stored=100))


def test_org_tree_names_and_paths(metadata_db: Database) -> None:
    msp, _ = make_org(metadata_db, "MSP")
    customer, _ = make_org(metadata_db, "Customer", msp)
    with pytest.raises(Conflict, match="cannot have child"):
        make_org(metadata_db, "Dept", customer)
    with pytest.raises(Conflict, match="already exists"):
        make_org(metadata_db, "customer", msp)
    other_msp, _ = make_org(metadata_db, "Other MSP")
    make_org(metadata_db, "Customer", other_msp)  # same name under another parent is fine
    with metadata_db.write() as session:
        settings.set_setting(session, "allow-deep-orgs", "yes")
    dept, _ = make_org(metadata_db, "Dept", customer)
    with metadata_db.read() as session:
        assert orgs.find_org(session, "MSP/Customer/Dept").id == dept
        assert orgs.find_org(session, "Other MSP/Customer").parent_id == other_msp
        with pytest.raises(ServerError, match="Several organizations"):
            orgs.find_org(session, "Customer")


def test_registration_rules(metadata_db: Database) -> None:
    msp, _ = make_org(metadata_db, "MSP")
    org, key = make_org(metadata_db, "Customer", msp, cap=1)
    name = new_name()
    first = reg(metadata_db, key, name)
    assert first.user_created and first.org_id == org
    for _ in range(3):
        assert not reg(metadata_db, key, name).user_created
    with pytest.raises(DeviceLimitReached):
        reg(metadata_db, key, name)
    with pytest.raises(LicenseCapReached):
        reg(metadata_db, key, new_name())
    with pytest.raises(WrongCredentials):
        reg(metadata_db, key, name, "wrong password!")
    replaced = reg(metadata_db, key, name, replace=first.device_id)
    assert replaced.replaced_device_id == first.device_id
    with metadata_db.read() as session:
        assert len(devices.active_devices(session, first.user_id)) == 4
        with pytest.raises(Unauthenticated):
            devices.authenticate(session, first.device_token)
        refused = session.scalars(select(AuditEvent).where(AuditEvent.outcome == "refused"))
        assert {e.action for e in refused} == {"device.register"}


def widen_race_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pause inside the checks that count licenses and devices, so that racing
    registrations overlap for sure; only the locks can keep them in line."""
    def slow(module: object, name: str) -> None:
        original = getattr(module, name)

        def wrapper(*args: object, **kwargs: object) -> object:
            result = original(*args, **kwargs)
            time.sleep(0.3)
            return result

        monkeypatch.setattr(module, name, wrapper)

    slow(users, "licenses_held")
    slow(devices, "active_devices")


@pytest.mark.parametrize("contest", ["license", "device slot"])
def test_concurrent_registrations_never_exceed_limits(metadata_db: Database, contest: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    msp, _ = make_org(metadata_db, "MSP")
    org, key = make_org(metadata_db, "Customer", msp, cap=3)
    name = new_name()
    if contest == "license":
        make_user(metadata_db, org)
        make_user(metadata_db, org)
        names = [new_name() for _ in range(5)]
    else:
        for _ in range(3):
            reg(metadata_db, key, name)
        names = [name] * 5
    widen_race_window(monkeypatch)

    def attempt(username: str) -> str:
        try:
            reg(metadata_db, key, username)
            return "won"
        except ServerError as exc:
            return exc.slug

    with ThreadPoolExecutor(len(names)) as pool:
        outcomes = sorted(pool.map(attempt, names))
    lost = "license-cap-reached" if contest == "license" else "device-limit-reached"
    assert outcomes == sorted(["won"] + [lost] * (len(names) - 1))
    with metadata_db.read() as session:
        assert users.licenses_held(session, org) == (3 if contest == "license" else 1)
        active = session.scalars(select(Device).join(User).where(User.org_id == org,
                                                                 Device.active)).all()
        assert len(active) == (1 if contest == "license" else 4)


def test_deactivation_deletes_data_and_frees_the_license(metadata_db: Database,
                                                         tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "store")
    msp, _ = make_org(metadata_db, "MSP")
    org, key = make_org(metadata_db, "Customer", msp, cap=1)
    name = new_name()
    done = reg(metadata_db, key, name)
    with metadata_db.read() as session:
        auth = devices.authenticate(session, done.device_token)
    for kind, body in (("keys", b"wrapped key"), ("data", b"pack")):
        store.put(auth.archive.id, kind, sha(body), io.BytesIO(body))
        archive.record_stored(metadata_db, store, auth, kind, len(body), True)
    store.trash(auth.archive.id, "data", sha(b"pack"))
    user_id, deleted = archive.deactivate_user(
        metadata_db, store, OPERATOR,
        lambda s: s.get(User, done.user_id), name)
    assert deleted and user_id == done.user_id
    assert store.namespace_bytes(auth.archive.id) == 0
    assert store.purge_trash(auth.archive.id, 0) == 0  # the trash went too
    with metadata_db.read() as session:
        with pytest.raises(Unauthenticated):
            devices.authenticate(session, done.device_token)
        assert users.licenses_held(session, org) == 0
        assert session.get(Archive, auth.archive.id).bytes_stored == 0
    # an upload that was already running lands after the deletion: it is removed again
    store.put(auth.archive.id, "data", sha(b"late"), io.BytesIO(b"late"))
    with pytest.raises(Unauthenticated):
        archive.record_stored(metadata_db, store, auth, "data", 4, True)
    assert store.namespace_bytes(auth.archive.id) == 0
    assert reg(metadata_db, key, name).user_created  # the license is free again


def test_billing_discount_applies_from_the_next_cycle(metadata_db: Database) -> None:
    big, _ = make_org(metadata_db, "Big MSP")
    big_customer, _ = make_org(metadata_db, "Big Customer", big)
    small, _ = make_org(metadata_db, "Small MSP")
    jan10 = datetime(2025, 1, 10, 12, tzinfo=UTC)
    for index in range(51):
        org = big if index < 11 else big_customer
        give_data(metadata_db, make_user(metadata_db, org, created=jan10), jan10)
    for _ in range(50):
        give_data(metadata_db, make_user(metadata_db, small, created=jan10), jan10)
    make_user(metadata_db, small, created=jan10)  # a license without data: not in use
    with metadata_db.read() as session:
        jan = _totals(reports.billing_report(session, [big, small], date(2025, 1, 20)))
        feb = _totals(reports.billing_report(session, [big, small], date(2025, 2, 20)))
        before = _totals(reports.billing_report(session, [big], date(2025, 1, 9)))
    # expected values computed here: users × price in cents
    assert jan == {"Big MSP": (51, "9.99", _usd(51 * 999)),
                   "Small MSP": (50, "9.99", _usd(50 * 999))}
    assert feb == {"Big MSP": (51, "7.49", _usd(51 * 749)),
                   "Small MSP": (50, "9.99", _usd(50 * 999))}
    assert before == {"Big MSP": (0, "9.99", "0.00")}


def _totals(report: reports.Report) -> dict[str, tuple[int, str, str]]:
    return {r["account"]: (r["licenses_in_use"], r["unit_price"], r["amount"])
            for r in report.rows if r["level"] == "account"}


def _usd(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def test_licenses_in_use_follow_data_and_deactivation(metadata_db: Database,
                                                      tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "store")
    msp, _ = make_org(metadata_db, "MSP")
    day1 = datetime.now(UTC) - timedelta(days=2)
    leaver, stayer, idle = (make_user(metadata_db, msp, created=day1) for _ in range(3))
    give_data(metadata_db, leaver, day1)
    give_data(metadata_db, stayer, day1)
    archive.deactivate_user(metadata_db, store, OPERATOR, lambda s: s.get(User, leaver), None)
    with metadata_db.read() as session:
        past = reports.licenses(session, None, day1.date())
        today = reports.licenses(session, None, datetime.now(UTC).date())
    assert [r["licenses_in_use"] for r in past.rows if r["level"] == "org"] == [2]
    assert [r["licenses_in_use"] for r in today.rows if r["level"] == "org"] == [1]
    assert idle  # created, licensed, never uploaded: counted in neither


def test_stale_devices(metadata_db: Database) -> None:
    _msp, key = make_org(metadata_db, "MSP")
    name = new_name()
    ids = [reg(metadata_db, key, name, guid=f"pc-{i}").device_id for i in range(3)]
    now = datetime.now(UTC)
    with metadata_db.write() as session:
        for device_id, seen, backup in ((ids[0], 30, 1), (ids[1], 30, 10), (ids[2], 30, None)):
            session.execute(update(Device).where(Device.id == device_id).values(
                first_seen=now - timedelta(days=seen),
                last_backup_at=None if backup is None else now - timedelta(days=backup)))
    with metadata_db.read() as session:
        rows = reports.stale(session, None, 7, now).rows
    assert {r["device_id"]: r["days_since_backup"] for r in rows} == {ids[1]: 10, ids[2]: None}


def test_trash_restore_and_purge(metadata_db: Database, tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "store")
    _msp, key = make_org(metadata_db, "MSP")
    done = reg(metadata_db, key, new_name())
    with metadata_db.read() as session:
        auth = devices.authenticate(session, done.device_token)
        user = session.get(User, done.user_id)
    names = []
    for body in (b"one", b"two"):
        store.put(auth.archive.id, "data", sha(body), io.BytesIO(body))
        archive.record_stored(metadata_db, store, auth, "data", len(body), True)
        names.append(sha(body))
    count, missing = archive.trash_objects(metadata_db, store, auth,
                                           [("data", n) for n in names] + [("index", names[0])])
    assert count == 2 and missing == [("index", names[0])]
    assert archive.restore_trash(metadata_db, store, OPERATOR, user, None) == 2
    assert {i.name for i in store.list(auth.archive.id, "data")} == set(names)
    archive.trash_objects(metadata_db, store, auth, [("data", names[0])])
    kept = archive.maintain(metadata_db, store, grace_s=3600)
    assert kept["purged"] == 0
    assert archive.maintain(metadata_db, store, grace_s=0)["purged"] == 1
    assert archive.restore_trash(metadata_db, store, OPERATOR, user, None) == 0
    with metadata_db.read() as session:
        assert session.get(Archive, auth.archive.id).bytes_stored == 3  # re-counted: "two"


def test_quota_covers_the_org_and_those_above(metadata_db: Database) -> None:
    msp, _ = make_org(metadata_db, "MSP", quota=1000)
    customer, _ = make_org(metadata_db, "Customer", msp, quota=300)
    sibling, _ = make_org(metadata_db, "Sibling", msp)
    give_data(metadata_db, make_user(metadata_db, customer), datetime.now(UTC))  # 100 bytes
    give_data(metadata_db, make_user(metadata_db, sibling), datetime.now(UTC))
    with metadata_db.read() as session:
        archive.check_quota(session, customer, 200)
        with pytest.raises(QuotaExceeded, match="Customer"):
            archive.check_quota(session, customer, 201)
        archive.check_quota(session, sibling, 800)
        with pytest.raises(QuotaExceeded, match="MSP"):
            archive.check_quota(session, sibling, 801)


def test_sessions_expire_and_die_with_the_user(metadata_db: Database, tmp_path: Path) -> None:
    msp, _ = make_org(metadata_db, "MSP")
    name = new_name()
    make_user(metadata_db, msp, name)
    with pytest.raises(WrongCredentials):
        sessions.login(metadata_db, name, "not it at all")
    token, _expires, user = sessions.login(metadata_db, name, PASSWORD)
    with metadata_db.read() as session:
        assert sessions.principal_for(session, token).user_id == user.id
    with metadata_db.write() as session:
        session.execute(update(AdminSession).values(
            expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    with metadata_db.read() as session, pytest.raises(Unauthenticated):
        sessions.principal_for(session, token)
