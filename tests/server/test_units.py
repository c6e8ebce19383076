"""Pure pieces of the server: ranges, billing arithmetic, versions, config, secrets."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.api.ranges import parse_range
from server.config import ServeOptions, is_loopback, resolve_locations
from server.domain import billing
from server.domain.versions import is_older, parse_version
from server.errors import BadRequest, RangeNotSatisfiable
from server.metadata.db import normalize_db_url, redact
from server.security import (
    new_registration_key,
    normalize_registration_key,
    registration_key_hash,
)


@given(st.binary(min_size=1, max_size=300), st.data())
def test_parsed_ranges_select_the_requested_bytes(blob: bytes, data: st.DataObject) -> None:
    size = len(blob)
    start = data.draw(st.integers(0, size - 1))
    end = data.draw(st.integers(start, size + 50))
    lo, hi = parse_range(f"bytes={start}-{end}", size)
    assert blob[lo:hi] == blob[start:end + 1]
    suffix = data.draw(st.integers(1, size + 50))
    lo, hi = parse_range(f"bytes=-{suffix}", size)
    assert blob[lo:hi] == blob[-suffix:]


def test_range_refusals() -> None:
    assert parse_range(None, 10) is None
    for bad in ("bytes=", "bytes=-", "bytes=1-2,4-5", "lines=1-2", "bytes=5-2", "bytes=a-b"):
        with pytest.raises(BadRequest):
            parse_range(bad, 10)
    for unsatisfiable in ("bytes=10-", "bytes=-0"):
        with pytest.raises(RangeNotSatisfiable):
            parse_range(unsatisfiable, 10)


@pytest.mark.parametrize(("tally", "previous"), [
    (date(2025, 3, 31), date(2025, 2, 28)), (date(2024, 3, 30), date(2024, 2, 29)),
    (date(2025, 1, 15), date(2024, 12, 15)), (date(2025, 8, 20), date(2025, 7, 20)),
])
def test_previous_billing_cycle(tally: date, previous: date) -> None:
    assert billing.previous_cycle(tally) == previous


def test_volume_price_starts_at_51_users() -> None:
    assert billing.unit_price_cents(50) == 999
    assert billing.unit_price_cents(51) == 749
    assert billing.dollars(51 * 749) == "381.99" and billing.dollars(5) == "0.05"


def test_versions() -> None:
    assert parse_version("1.2.3") == (1, 2, 3) and parse_version("2") == (2, 0, 0)
    assert parse_version("1.4.0rc1") == (1, 4, 0)
    assert is_older("1.9.9", "2.0.0") and not is_older("2.0.0", "2.0.0")
    for bad in ("", "v1", "1..2", "1.2.3.4.5", "x" * 100):
        with pytest.raises(BadRequest):
            parse_version(bad)


def test_config_precedence_and_defaults(tmp_path: Path) -> None:
    env = {"CAIRN_SERVER_DATA": str(tmp_path / "env"), "CAIRN_SERVER_DB": "postgresql://h/db",
           "CAIRN_S3_ENDPOINT": "http://s3.local"}
    from_env = resolve_locations(None, None, None, env)
    assert from_env.data_dir == tmp_path / "env" and from_env.db_url == "postgresql://h/db"
    assert from_env.storage_url == str(tmp_path / "env" / "storage")
    assert from_env.s3_endpoint == "http://s3.local"
    flags = resolve_locations(str(tmp_path / "flag"), None, "s3://b/p", env)
    assert flags.data_dir == tmp_path / "flag" and flags.storage_url == "s3://b/p"
    default = resolve_locations(None, None, None, {})
    assert default.db_url == f"sqlite:///{default.data_dir / 'cairn.sqlite3'}"


def test_listening_rules() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com")
    ServeOptions(host="127.0.0.1").check()
    ServeOptions(host="0.0.0.0", insecure_http=True).check()
    with pytest.raises(BadRequest, match="--insecure-http"):
        ServeOptions(host="10.0.0.5").check()


def test_database_urls() -> None:
    assert normalize_db_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalize_db_url("postgres://h/db") == "postgresql+psycopg://h/db"
    assert normalize_db_url("sqlite:////x.db") == "sqlite:////x.db"
    with pytest.raises(BadRequest) as caught:
        normalize_db_url("mysql://u:secret@h/db")
    assert "secret" not in str(caught.value)
    assert "secret" not in redact("postgresql://u:secret@h/db")


def test_registration_keys_have_160_random_bits() -> None:
    keys = {new_registration_key() for _ in range(100)}
    assert len(keys) == 100
    key = keys.pop()
    assert len(normalize_registration_key(key)) == 32  # 32 base32 characters = 160 bits
    assert registration_key_hash(key.lower().replace("-", " ")) == registration_key_hash(key)
