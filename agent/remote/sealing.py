"""Sealing a key to an X25519 public key ("sealed box"), as the server does too.

Wire format (JSON object, every bytes field standard base64)::

    {"version": 1, "alg": "X25519-HKDF-SHA256-AES256GCM",
     "epk": <32-byte ephemeral public key>, "nonce": <12 bytes>, "ct": <ciphertext + 16-byte tag>}

    shared = X25519(ephemeral private, recipient public)
    key    = HKDF-SHA256(shared, salt = epk || recipient public,
                         info = "cairn sealed key v1|" + purpose)
    ct     = AES-256-GCM(key, nonce, plaintext, aad = purpose)

``purpose`` is ``org-escrow`` (the archive key sealed to an organization) or
``device`` (sealed by the server to one device). The server keeps its own copy
of this code (it never imports the agent); docs/agent-server.md is the contract.
"""

from __future__ import annotations

import base64
import binascii
import os

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

from agent.errors import IntegrityError

ALG = "X25519-HKDF-SHA256-AES256GCM"
ORG_ESCROW = "org-escrow"
DEVICE = "device"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: object, size: int | None = None) -> bytes:
    try:
        data = base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise IntegrityError("A sealed key is not valid base64.") from exc
    if size is not None and len(data) != size:
        raise IntegrityError("A sealed key field has the wrong length.")
    return data


def _raw_public(key: X25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def new_key_pair() -> tuple[bytes, bytes]:
    """A fresh X25519 key pair as (raw private, raw public), 32 bytes each."""
    private = X25519PrivateKey.generate()
    raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return raw, _raw_public(private.public_key())


def _key(shared: bytes, epk: bytes, recipient: bytes, purpose: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=epk + recipient,
                info=b"cairn sealed key v1|" + purpose.encode())
    return hkdf.derive(shared)


def seal(recipient_public: bytes, plaintext: bytes, purpose: str) -> dict:
    """Encrypt ``plaintext`` so only the holder of the recipient's private key opens it."""
    recipient = X25519PublicKey.from_public_bytes(recipient_public)
    ephemeral = X25519PrivateKey.generate()
    epk = _raw_public(ephemeral.public_key())
    key = _key(ephemeral.exchange(recipient), epk, recipient_public, purpose)
    nonce = os.urandom(12)
    ct = AESGCM(key).encrypt(nonce, plaintext, purpose.encode())
    return {"version": 1, "alg": ALG, "epk": b64(epk), "nonce": b64(nonce), "ct": b64(ct)}


def open_sealed(private_raw: bytes, doc: object, purpose: str) -> bytes:
    """The plaintext of a sealed document; IntegrityError if it does not verify."""
    if not isinstance(doc, dict) or doc.get("version") != 1 or doc.get("alg") != ALG:
        raise IntegrityError("The sealed key is not in a format this Cairn understands.")
    private = X25519PrivateKey.from_private_bytes(private_raw)
    recipient = _raw_public(private.public_key())
    epk = unb64(doc.get("epk"), 32)
    key = _key(private.exchange(X25519PublicKey.from_public_bytes(epk)), epk, recipient,
               purpose)
    try:
        return AESGCM(key).decrypt(unb64(doc.get("nonce"), 12), unb64(doc.get("ct")),
                                   purpose.encode())
    except InvalidTag as exc:
        raise IntegrityError("The sealed key does not open with this device's key.") from exc
