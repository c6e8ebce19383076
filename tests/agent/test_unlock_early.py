"""Deriving the archive key early (first thing in ``cairn backup``) gives the same keys,
is used once, and never stands in for a check: a wrong passphrase still fails."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from agent import launch
from agent.archive.repository import Repository
from agent.archive.unlock_early import unlock_early
from agent.codec import keys as keys_module
from agent.codec.keys import (
    ArchiveKeys,
    derive_early,
    make_key_file,
    parse_key_file,
    prepare_new_key,
    unwrap_key_file,
)
from agent.dest.local import LocalDestination
from agent.errors import WrongPassphrase
from tests.agent.strategies import FAST_KDF


@pytest.fixture(autouse=True)
def _no_leftover_derivations() -> None:
    keys_module._early.clear()
    keys_module._new_salts.clear()


def _no_more_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> bytes:
        raise AssertionError("derived again instead of taking the key derived early")
    monkeypatch.setattr(keys_module, "_argon2id", refuse)


def test_unwrapping_takes_the_key_derived_early(keys: ArchiveKeys,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    doc = parse_key_file(make_key_file(keys, "pw", FAST_KDF))
    derive_early("pw", doc["kdf"])
    _no_more_argon2(monkeypatch)
    assert unwrap_key_file(doc, "pw") == keys
    assert not keys_module._early  # taken once


def test_a_key_derived_early_for_a_wrong_passphrase_opens_nothing(keys: ArchiveKeys) -> None:
    doc = parse_key_file(make_key_file(keys, "right", FAST_KDF))
    derive_early("wrong", doc["kdf"])
    assert unwrap_key_file(doc, "wrong") is None
    assert unwrap_key_file(doc, "right") == keys  # derived the normal way


def test_a_key_derived_early_with_other_parameters_is_not_used(keys: ArchiveKeys) -> None:
    doc = parse_key_file(make_key_file(keys, "pw", FAST_KDF))
    derive_early("pw", {**doc["kdf"], "iterations": 2})
    assert unwrap_key_file(doc, "pw") == keys
    assert len(keys_module._early) == 1  # still waiting for a key file it fits


def test_a_new_key_file_uses_the_salt_derived_early_once(keys: ArchiveKeys,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    prepare_new_key("pw", FAST_KDF)
    (prepared_salt,) = keys_module._new_salts.values()
    with monkeypatch.context() as patch:
        _no_more_argon2(patch)
        first = parse_key_file(make_key_file(keys, "pw", FAST_KDF))
    assert base64.b64decode(first["kdf"]["salt"]) == prepared_salt
    second = parse_key_file(make_key_file(keys, "pw", FAST_KDF))
    assert second["kdf"]["salt"] != first["kdf"]["salt"]  # a salt is never used twice
    assert unwrap_key_file(first, "pw") == unwrap_key_file(second, "pw") == keys


def test_a_failed_early_derivation_is_derived_again(keys: ArchiveKeys,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    doc = parse_key_file(make_key_file(keys, "pw", FAST_KDF))
    with monkeypatch.context() as patch:
        patch.setattr(keys_module, "_argon2id", lambda *a: (_ for _ in ()).throw(MemoryError()))
        derive_early("pw", doc["kdf"])
    assert not keys_module._early
    assert unwrap_key_file(doc, "pw") == keys


def test_unlock_early_prepares_the_key_an_archive_opens_with(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys_module, "DEFAULT_KDF", FAST_KDF)
    dest = LocalDestination(tmp_path / "archive")
    created = Repository.create(dest, "pw", tmp_path / "cache")
    created.close()
    unlock_early(str(tmp_path / "archive"), "pw")
    _no_more_argon2(monkeypatch)
    opened = Repository.open(dest, "pw", tmp_path / "cache")
    assert opened.keys == created.keys
    opened.close()


def test_unlock_early_prepares_a_new_archive_in_an_empty_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys_module, "DEFAULT_KDF", FAST_KDF)
    unlock_early(str(tmp_path / "new"), "pw")
    with monkeypatch.context() as patch:
        _no_more_argon2(patch)
        repo = Repository.create(LocalDestination(tmp_path / "new"), "pw", tmp_path / "cache")
    repo.close()
    with pytest.raises(WrongPassphrase):
        Repository.open(LocalDestination(tmp_path / "new"), "other", tmp_path / "cache")


def test_unlock_early_leaves_damaged_or_foreign_folders_to_the_normal_path(
        tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "photo.jpg").write_bytes(b"x")
    unlock_early(str(tmp_path / "full"), "pw")  # not empty, no archive
    damaged = tmp_path / "damaged" / "keys"
    damaged.mkdir(parents=True)
    (damaged / ("a" * 64)).write_text("{not json")
    unlock_early(str(tmp_path / "damaged"), "pw")
    (damaged / ("a" * 64)).write_text(json.dumps({"version": 1, "kind": "passphrase",
                                                  "kdf": {"algorithm": "argon2id"}}))
    unlock_early(str(tmp_path / "damaged"), "pw")  # no salt
    assert not keys_module._early and not keys_module._new_salts


def test_launch_finds_the_destination_of_a_backup_command_line() -> None:
    assert launch.backup_dest(["backup", "/docs", "--dest", "/mnt/usb", "--json"]) == "/mnt/usb"
    assert launch.backup_dest(["backup", "/docs", "--dest=/mnt/usb"]) == "/mnt/usb"
    assert launch.backup_dest(["backup", "/docs"]) is None
    assert launch.backup_dest(["backup", "--dest"]) is None
    assert launch.backup_dest(["backup", "--", "--dest", "/x"]) is None
    assert launch.backup_dest(["restore", "latest", "--dest", "/mnt/usb"]) is None
    assert launch.backup_dest([]) is None


def test_a_first_backup_is_one_into_a_folder_without_snapshots(tmp_path: Path) -> None:
    assert launch.first_backup(str(tmp_path / "not-yet"))
    assert launch.first_backup(str(tmp_path))  # empty: a new archive
    (tmp_path / "snapshots").mkdir()
    assert launch.first_backup(str(tmp_path))
    (tmp_path / "snapshots" / ("ab" * 32)).write_bytes(b"sealed")
    assert not launch.first_backup(str(tmp_path))
