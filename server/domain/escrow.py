"""Key escrow crypto: organization key pairs, the server secret, and sealed keys.

The server never stores an archive key in the clear. At the "standard" key
level a device deposits the archive master key sealed to its organization's
X25519 public key. The organization's private key is stored encrypted with
the *server secret*: 32 random bytes in ``DATA/escrow.secret`` (mode 0600,
made on first use; every server process of a deployment must share it, and
it must be backed up with the database, or escrowed keys become unrecoverable).
When a signed-in device asks, the server opens the escrow in memory and seals
the key again to that device's X25519 public key.

Sealed documents ("sealed box", the same format the agent uses; docs/agent-server.md)::

    {"version": 1, "alg": "X25519-HKDF-SHA256-AES256GCM", "epk": b64, "nonce": b64, "ct": b64}
    key = HKDF-SHA256(X25519(eph, recipient), salt=epk||recipient_pub,
                      info="cairn sealed key v1|" + purpose);  aad = purpose
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from server.errors import BadRequest, ServerError

ALG = "X25519-HKDF-SHA256-AES256GCM"
ORG_ESCROW = "org-escrow"
DEVICE = "device"
SECRET_FILE = "escrow.secret"
MAX_SEALED_CHARS = 1024
_secrets: dict[Path, bytes] = {}
_secrets_lock = threading.Lock()


class EscrowDamaged(ServerError):
    """The escrowed key or the organization key cannot be opened (wrong server secret)."""

    slug, title = "escrow-damaged", "Escrowed key unusable"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: object, size: int | None = None, what: str = "key") -> bytes:
    try:
        data = base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"The {what} is not valid base64.") from None
    if size is not None and len(data) != size:
        raise BadRequest(f"The {what} must be {size} bytes.")
    return data


def _raw_public(key: X25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


# --- the server secret --------------------------------------------------------------


def server_secret(data_dir: Path) -> bytes:
    """The deployment's escrow secret, created atomically on first use."""
    path = data_dir / SECRET_FILE
    with _secrets_lock:
        if path in _secrets:
            return _secrets[path]
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=".escrow-")
            try:
                os.write(fd, os.urandom(32))
                os.fsync(fd)
                os.close(fd)
                os.chmod(tmp, 0o600)
                with contextlib.suppress(FileExistsError):  # another process was first
                    os.link(tmp, path)
            finally:
                os.unlink(tmp)
        secret = path.read_bytes()
        if len(secret) != 32:
            raise EscrowDamaged(f"The escrow secret {path} is damaged (not 32 bytes).")
        _secrets[path] = secret
        return secret


# --- organization key pairs ---------------------------------------------------------


def new_org_key_pair(secret: bytes, org_id: str) -> tuple[str, str]:
    """(public key b64, private key encrypted with the server secret, b64)."""
    private = X25519PrivateKey.generate()
    raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    nonce = os.urandom(12)
    sealed = AESGCM(secret).encrypt(nonce, raw, b"cairn org key v1|" + org_id.encode())
    return b64(_raw_public(private.public_key())), b64(nonce + sealed)


def org_private_key(secret: bytes, org_id: str, sealed_b64: str) -> bytes:
    blob = base64.b64decode(sealed_b64)
    try:
        return AESGCM(secret).decrypt(blob[:12], blob[12:], b"cairn org key v1|" + org_id.encode())
    except InvalidTag:
        raise EscrowDamaged("The organization's escrow key does not open with this server's "
                            "escrow secret; restore DATA/escrow.secret from backup.") from None


# --- sealed keys ----------------------------------------------------------------------


def _kdf(shared: bytes, epk: bytes, recipient: bytes, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=epk + recipient,
                info=b"cairn sealed key v1|" + purpose.encode()).derive(shared)


def seal(recipient_public: bytes, plaintext: bytes, purpose: str) -> dict[str, Any]:
    ephemeral = X25519PrivateKey.generate()
    epk = _raw_public(ephemeral.public_key())
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient_public))
    nonce = os.urandom(12)
    ct = AESGCM(_kdf(shared, epk, recipient_public, purpose)).encrypt(nonce, plaintext,
                                                                       purpose.encode())
    return {"version": 1, "alg": ALG, "epk": b64(epk), "nonce": b64(nonce), "ct": b64(ct)}


def check_sealed(doc: object) -> str:
    """Validate a sealed document's shape; returns its canonical JSON for storage."""
    if not isinstance(doc, dict) or doc.get("version") != 1 or doc.get("alg") != ALG \
            or set(doc) != {"version", "alg", "epk", "nonce", "ct"}:
        raise BadRequest(f"The escrow must be a sealed key document ({ALG}, version 1).")
    unb64(doc["epk"], 32, "escrow's ephemeral key")
    unb64(doc["nonce"], 12, "escrow's nonce")
    unb64(doc["ct"], 48, "escrow's ciphertext")  # a 32-byte key plus the 16-byte tag
    text = json.dumps(doc, sort_keys=True)
    if len(text) > MAX_SEALED_CHARS:
        raise BadRequest("The escrow document is too large.")
    return text


def open_sealed(private_raw: bytes, doc: dict[str, Any], purpose: str) -> bytes:
    private = X25519PrivateKey.from_private_bytes(private_raw)
    epk = unb64(doc["epk"], 32)
    key = _kdf(private.exchange(X25519PublicKey.from_public_bytes(epk)), epk,
               _raw_public(private.public_key()), purpose)
    try:
        return AESGCM(key).decrypt(unb64(doc["nonce"], 12), unb64(doc["ct"]), purpose.encode())
    except InvalidTag:
        raise BadRequest("The escrowed key is not sealed to this organization's key.") from None


def archive_key_id(master: bytes) -> str:
    """The public fingerprint of an archive master key (docs/format.md, ``archive_id``)."""
    return blake3.blake3(master, derive_key_context="cairn 2026 archive id").digest(16).hex()
