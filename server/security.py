"""Secrets: registration keys, bearer tokens and password hashes.

- Registration keys carry 160 random bits, shown once as eight groups of four
  base32 characters (``ABCD-EFGH-…``); only their SHA-256 is stored.
- Device tokens (``cdt_…``) and admin session tokens (``cst_…``) carry 256
  random bits; only their SHA-256 is stored, so a database leak yields nothing
  usable. A fast hash is right here: the inputs are random, not guessable.
- Passwords are hashed with Argon2id (argon2-cffi, RFC 9106 low-memory profile).
  At most ``os.cpu_count()`` hashes run at once so a burst of registrations
  cannot exhaust memory (each hash uses 64 MiB).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

DEVICE_TOKEN_PREFIX = "cdt_"
SESSION_TOKEN_PREFIX = "cst_"
REGISTRATION_KEY_BYTES = 20

_hasher = PasswordHasher()
_hash_slots = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))
# A valid hash of a random password: verified against when the user does not
# exist, so a wrong username costs as much time as a wrong password.
_dummy_hash: str | None = None


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def new_registration_key() -> str:
    """A fresh registration key in its display form."""
    raw = base64.b32encode(secrets.token_bytes(REGISTRATION_KEY_BYTES)).decode()
    return "-".join(raw[i:i + 4] for i in range(0, len(raw), 4))


def normalize_registration_key(key: str) -> str:
    """Canonical form for hashing: dashes and spaces removed, upper case."""
    return "".join(ch for ch in key.upper() if ch not in "- \t")


def registration_key_hash(key: str) -> str:
    return sha256_hex(normalize_registration_key(key))


def new_device_token() -> str:
    return DEVICE_TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_session_token() -> str:
    return SESSION_TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return sha256_hex(token)


def new_id() -> str:
    """A random 128-bit identifier as 32 lowercase hex characters."""
    return secrets.token_hex(16)


def hash_password(password: str) -> str:
    """Argon2id hash in PHC string format."""
    with _hash_slots:
        return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when password matches; a missing hash costs the same time and fails."""
    global _dummy_hash
    if stored_hash is None:
        if _dummy_hash is None:
            _dummy_hash = hash_password(secrets.token_hex(16))
        stored_hash = _dummy_hash
    with _hash_slots:
        try:
            return _hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
