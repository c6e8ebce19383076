"""Packed listings (how the crawl holds folders ahead of the walk) give back exactly
the listing they stand for."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from types import SimpleNamespace

import pytest

from agent.scan.listing import (
    EntryStat,
    PackedListing,
    entry_names,
    list_dir,
    subfolder_names,
)
from agent.scan.listproc import ListerProcess, can_fork


def sample_folder(root: Path) -> list:
    (root / "sub").mkdir()
    (root / "empty").mkdir()
    (root / "file.txt").write_text("hello")
    (root / "caf\u00e9 \u65e5\u672c").write_bytes(b"x" * 3000)
    if hasattr(os, "symlink"):
        os.symlink(root / "sub", root / "link-to-sub")  # a link, not a subfolder
    listing = list_dir(str(root))
    assert not isinstance(listing, OSError)
    listing.insert(2, ("vanished", FileNotFoundError(2, "No such file or directory")))
    return listing


def test_a_packed_listing_unpacks_to_every_field_and_error(tmp_path: Path) -> None:
    listing = sample_folder(tmp_path)
    packed = PackedListing(*PackedListing.pack(listing).parts())  # as through the pipe
    want = [(name, st if isinstance(st, OSError) else EntryStat(*EntryStat.fields_of(st)))
            for name, st in listing]
    assert packed.entries() == want
    assert list(packed) == want and len(packed) == len(want)
    assert [packed[i] for i in range(len(want))] == want
    assert packed[-1] == want[-1] and packed[1:3] == want[1:3]


def test_packed_and_plain_listings_pick_the_same_subfolders(tmp_path: Path) -> None:
    listing = sample_folder(tmp_path)
    packed = PackedListing.pack(listing)
    assert subfolder_names(packed) == subfolder_names(listing) == ["empty", "sub"]
    assert entry_names(packed) == entry_names(listing) == [name for name, _ in listing]


def test_a_packed_listing_whose_parts_do_not_match_is_refused() -> None:
    with pytest.raises(ValueError):
        PackedListing(["a", "b"], bytes(64), {})


def test_a_field_beyond_64_bits_cannot_be_packed() -> None:
    st = SimpleNamespace(st_mode=0o100644, st_uid=0, st_gid=0, st_size=1, st_mtime_ns=0,
                         st_ctime_ns=0, st_ino=2**64, st_blocks=0)
    with pytest.raises(struct.error):
        PackedListing.pack([("huge-inode", st)])  # type: ignore[list-item]


@pytest.mark.skipif(not can_fork(), reason="lister processes need os.fork")
def test_a_lister_sends_whole_stat_results_when_a_listing_cannot_be_packed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    listing = sample_folder(tmp_path)

    def cannot_pack(cls: type, listing: list) -> PackedListing:
        raise struct.error("beyond 64 bits")

    monkeypatch.setattr(PackedListing, "pack", classmethod(cannot_pack))
    process = ListerProcess()  # forked now: the child has the patched method
    try:
        process.send([str(tmp_path)], 0)
        ((path, answer),) = process.receive()
    finally:
        process.close()
    assert path == str(tmp_path) and isinstance(answer, list)
    plain = [entry for entry in listing if entry[0] != "vanished"]
    assert [(n, s.st_ino, s.st_mode, s.st_mtime_ns) for n, s in answer] == \
           [(n, s.st_ino, s.st_mode, s.st_mtime_ns) for n, s in plain]
