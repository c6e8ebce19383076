"""Derives a local archive's key-encryption key first thing in ``cairn backup``.

Argon2id takes 64 MiB (and 0.15 s here). Derived before the rest of Cairn is
imported and before the walk fills its buffers, those 64 MiB come and go while
the process is still small: measured on the benchmark set, this took a first
backup's start-up peak (four lister processes, the main process and the
derivation) from 153 to about 131 MiB. Opening the archive then takes the result
(``agent.codec.keys``); anything unusual (a damaged key file, an unreadable
folder) is left to the normal path, which reports it.
"""

from __future__ import annotations

from pathlib import Path

from agent.codec.keys import checked_key_file, derive_early, prepare_new_key
from agent.dest.local import LocalDestination
from agent.errors import CairnError


def unlock_early(dest_root: str, passphrase: str) -> None:
    """Derive the key that ``passphrase`` needs to open (or create) the archive in
    ``dest_root``: the key of the first passphrase key file that ``Repository.open``
    tries, or a new key file's when the folder is empty."""
    dest = LocalDestination(Path(dest_root))
    try:
        names = dest.list("keys")
        if not names:
            if dest.is_empty():
                prepare_new_key(passphrase)
            return
        for name in sorted(names):
            doc = checked_key_file(name, dest.read("keys", name))
            if doc is None:
                continue  # damaged: Repository.open skips it too
            if doc.get("kind") == "passphrase" and isinstance(doc.get("kdf"), dict):
                derive_early(passphrase, doc["kdf"])
                return
    except (CairnError, OSError):
        return
