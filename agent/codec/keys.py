"""Archive keys: the random master key, its derived subkeys, and key files.

Each archive has one random 256-bit master key. Everything else is derived from
it with BLAKE3's key-derivation mode (a distinct context string per use), so no
subkey is stored anywhere:

- ``id_key``: keys BLAKE3 for blob IDs,
- ``enc_key``: keys the per-object key/nonce derivation of the envelope,
- ``chunker_seed``: a 63-bit seed for FastCDC's gear table,
- ``archive_id``: a public 128-bit name for the archive (cache folder names).

A key file wraps the master key under a key-encryption key derived from a
passphrase with Argon2id (parameters stored in the file). Several key files may
wrap the same master key; changing a passphrase writes a new key file and
removes the old one, re-encrypting no data. See docs/format.md, "Key files".

Deriving a key-encryption key takes 64 MiB, the largest allocation of a backup,
so ``cairn backup`` derives it first, while its process is still small
(``derive_early``, ``prepare_new_key``, called by ``agent.archive.unlock_early``);
the key file code then takes that result.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from agent.errors import IntegrityError, NewerFormat, NotAnArchive

KEY_FILE_VERSION = 1
_WRAP_AAD = b"cairn key file v1"

# Argon2id: 64 MiB, 3 passes, 4 lanes (0.15-0.25 s here). Stored per key file so they can grow.
DEFAULT_KDF = {"algorithm": "argon2id", "memory_kib": 65536, "iterations": 3, "lanes": 4}


def _derive(context: str, master: bytes, length: int = 32) -> bytes:
    return blake3.blake3(master, derive_key_context=context).digest(length)


@dataclass(frozen=True)
class ArchiveKeys:
    """The master key and everything derived from it."""

    master: bytes
    id_key: bytes
    enc_key: bytes
    chunker_seed: int
    archive_id: str

    @classmethod
    def from_master(cls, master: bytes) -> ArchiveKeys:
        if len(master) != 32:
            raise IntegrityError("The archive master key must be 32 bytes.")
        seed = int.from_bytes(_derive("cairn 2026 chunker seed", master, 8), "little") >> 1
        return cls(
            master=master,
            id_key=_derive("cairn 2026 blob id", master),
            enc_key=_derive("cairn 2026 envelope", master),
            chunker_seed=seed,
            archive_id=_derive("cairn 2026 archive id", master, 16).hex(),
        )

    @classmethod
    def generate(cls) -> ArchiveKeys:
        return cls.from_master(os.urandom(32))

    def blob_id(self, data: bytes | memoryview) -> bytes:
        """Keyed BLAKE3 of a blob's plaintext: its 256-bit ID."""
        return blake3.blake3(data, key=self.id_key).digest()


def _kek(passphrase: str, salt: bytes, kdf: dict) -> bytes:
    if kdf.get("algorithm") != "argon2id":
        raise NewerFormat(f"Unknown key derivation {kdf.get('algorithm')!r}; upgrade Cairn.")
    with _early_lock:
        kek = _early.pop(_derivation_key(passphrase, salt, kdf), None)
    return kek if kek is not None else _argon2id(passphrase, salt, kdf)


def _argon2id(passphrase: str, salt: bytes, kdf: dict) -> bytes:
    return Argon2id(
        salt=salt,
        length=32,
        iterations=int(kdf["iterations"]),
        lanes=int(kdf["lanes"]),
        memory_cost=int(kdf["memory_kib"]),
    ).derive(passphrase.encode("utf-8"))


_early: dict[tuple, bytes] = {}  # derived before it was asked for; each taken once
_new_salts: dict[tuple, bytes] = {}  # (passphrase, kdf) → the salt of a key derived early
_early_lock = threading.Lock()


def _derivation_key(passphrase: str, salt: bytes, kdf: dict) -> tuple:
    params = tuple(sorted((k, str(v)) for k, v in kdf.items() if k != "salt"))
    return passphrase, salt, params


def derive_early(passphrase: str, kdf: dict) -> None:
    """Derive now the key-encryption key of a key file's ``kdf`` (with its base64
    salt); unwrapping that key file with ``passphrase`` later takes it."""
    try:
        salt = base64.b64decode(kdf["salt"])
    except (KeyError, ValueError, TypeError):
        return  # a damaged key file: opening it reports that
    if kdf.get("algorithm") != "argon2id":
        return
    _remember(passphrase, salt, kdf)


def prepare_new_key(passphrase: str, kdf: dict | None = None) -> None:
    """Derive now the key-encryption key of the next key file made for ``passphrase``
    (its salt is drawn now, and used once)."""
    kdf = dict(kdf or DEFAULT_KDF)
    salt = os.urandom(16)
    if _remember(passphrase, salt, kdf):
        with _early_lock:
            _new_salts[passphrase, _derivation_key(passphrase, salt, kdf)[2]] = salt


def _remember(passphrase: str, salt: bytes, kdf: dict) -> bool:
    try:
        kek = _argon2id(passphrase, salt, kdf)
    except Exception:  # bad parameters, no Argon2 in this OpenSSL...: opening the
        return False   # archive derives again, on the path that reports the error
    with _early_lock:
        _early[_derivation_key(passphrase, salt, kdf)] = kek
    return True


def _salt_for_new_key(passphrase: str, kdf: dict) -> bytes:
    _, _, params = _derivation_key(passphrase, b"", kdf)
    with _early_lock:
        salt = _new_salts.pop((passphrase, params), None)
    return salt if salt is not None else os.urandom(16)


def make_key_file(keys: ArchiveKeys, passphrase: str, kdf: dict | None = None) -> bytes:
    """A new passphrase key file (JSON bytes) wrapping ``keys.master``."""
    kdf = dict(kdf or DEFAULT_KDF)
    salt = _salt_for_new_key(passphrase, kdf)
    nonce = os.urandom(12)
    wrapped = AESGCM(_kek(passphrase, salt, kdf)).encrypt(nonce, keys.master, _WRAP_AAD)
    doc = {
        "version": KEY_FILE_VERSION,
        "kind": "passphrase",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "kdf": {**kdf, "salt": base64.b64encode(salt).decode()},
        "wrapped": base64.b64encode(nonce + wrapped).decode(),
    }
    return json.dumps(doc, indent=1, sort_keys=True).encode()


def parse_key_file(raw: bytes) -> dict:
    """Parse and sanity-check a key file; raise NotAnArchive/NewerFormat if unusable."""
    try:
        doc = json.loads(raw)
        version = int(doc["version"])
    except (ValueError, KeyError, TypeError) as exc:
        raise NotAnArchive("A key file of this archive is not readable.") from exc
    if version > KEY_FILE_VERSION:
        raise NewerFormat(
            f"This archive was written by a newer Cairn (key file format {version}); upgrade Cairn."
        )
    return doc


def checked_key_file(name: str, raw: bytes) -> dict | None:
    """The key file ``raw`` stored as ``name``, parsed; None if it is damaged (its
    SHA-256 is not its name, or it is no key file). A newer format raises NewerFormat."""
    if hashlib.sha256(raw).hexdigest() != name:
        return None
    try:
        return parse_key_file(raw)
    except NotAnArchive:
        return None


def unwrap_key_file(doc: dict, passphrase: str) -> ArchiveKeys | None:
    """The archive keys if ``passphrase`` opens this key file, else None."""
    if doc.get("kind") != "passphrase":
        return None
    try:
        kdf = doc["kdf"]
        salt = base64.b64decode(kdf["salt"])
        blob = base64.b64decode(doc["wrapped"])
    except (KeyError, ValueError, TypeError) as exc:
        raise NotAnArchive("A key file of this archive is damaged.") from exc
    try:
        master = AESGCM(_kek(passphrase, salt, kdf)).decrypt(blob[:12], blob[12:], _WRAP_AAD)
    except InvalidTag:
        return None
    return ArchiveKeys.from_master(master)
