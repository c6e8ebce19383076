"""Key files: the right passphrase opens, a wrong one does not, newer formats are refused."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.codec.keys import (
    DEFAULT_KDF,
    ArchiveKeys,
    make_key_file,
    parse_key_file,
    unwrap_key_file,
)
from agent.errors import NewerFormat, NotAnArchive
from tests.agent.strategies import FAST_KDF, few

passphrases = st.text(min_size=1, max_size=40)


@few
@given(passphrase=passphrases, wrong=passphrases)
def test_right_passphrase_opens_wrong_one_does_not(
        keys: ArchiveKeys, passphrase: str, wrong: str) -> None:
    doc = parse_key_file(make_key_file(keys, passphrase, FAST_KDF))
    assert unwrap_key_file(doc, passphrase) == keys
    if wrong != passphrase:
        assert unwrap_key_file(doc, wrong) is None


def test_key_file_stores_real_argon2id_parameters_and_no_secret(keys: ArchiveKeys) -> None:
    raw = make_key_file(keys, "hunter2")
    doc = parse_key_file(raw)
    assert doc["version"] == 1 and doc["kind"] == "passphrase"
    assert doc["kdf"]["algorithm"] == "argon2id"
    assert doc["kdf"]["memory_kib"] >= DEFAULT_KDF["memory_kib"] >= 65536
    assert b"hunter2" not in raw and keys.master.hex().encode() not in raw
    assert unwrap_key_file(doc, "hunter2") == keys


def test_two_key_files_for_one_archive_are_independent(keys: ArchiveKeys) -> None:
    a = parse_key_file(make_key_file(keys, "alpha", FAST_KDF))
    b = parse_key_file(make_key_file(keys, "beta", FAST_KDF))
    assert a["wrapped"] != b["wrapped"] and a["kdf"]["salt"] != b["kdf"]["salt"]
    assert unwrap_key_file(a, "alpha") == unwrap_key_file(b, "beta") == keys
    assert unwrap_key_file(a, "beta") is None


def test_newer_version_is_refused(keys: ArchiveKeys) -> None:
    doc = json.loads(make_key_file(keys, "pw", FAST_KDF))
    doc["version"] = 99
    with pytest.raises(NewerFormat, match="newer"):
        parse_key_file(json.dumps(doc).encode())


def test_unknown_kdf_is_refused_as_newer(keys: ArchiveKeys) -> None:
    doc = json.loads(make_key_file(keys, "pw", FAST_KDF))
    doc["kdf"]["algorithm"] = "argon3"
    with pytest.raises(NewerFormat):
        unwrap_key_file(doc, "pw")


@pytest.mark.parametrize("raw", [b"", b"not json", b"[]", b'{"kind": "passphrase"}',
                                 b'{"version": "x"}', b"\xff\xfe"])
def test_unreadable_key_files_are_not_an_archive(raw: bytes) -> None:
    with pytest.raises(NotAnArchive):
        parse_key_file(raw)


@pytest.mark.parametrize("field", ["kdf", "wrapped"])
def test_damaged_key_file_is_reported(keys: ArchiveKeys, field: str) -> None:
    doc = json.loads(make_key_file(keys, "pw", FAST_KDF))
    del doc[field]
    with pytest.raises(NotAnArchive):
        unwrap_key_file(doc, "pw")


def test_tampered_wrapped_key_does_not_open(keys: ArchiveKeys) -> None:
    doc = json.loads(make_key_file(keys, "pw", FAST_KDF))
    wrapped = bytearray(doc["wrapped"].encode())
    wrapped[20] = ord("A") if wrapped[20] != ord("A") else ord("B")
    doc["wrapped"] = wrapped.decode()
    assert unwrap_key_file(doc, "pw") is None


def test_other_kinds_are_skipped(keys: ArchiveKeys) -> None:
    doc = json.loads(make_key_file(keys, "pw", FAST_KDF))
    doc["kind"] = "escrow"
    assert unwrap_key_file(doc, "pw") is None
