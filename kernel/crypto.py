"""Field encryption and keyed hashing for personal data kept at rest (session keys, phone numbers)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from functools import lru_cache

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kernel.settings import get_settings

_VERSION = b"v1"


def _derive(purpose: bytes) -> bytes:
    secret = get_settings().app.secret_key.encode()
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=purpose).derive(secret)


@lru_cache(maxsize=1)
def _aead() -> AESGCM:
    return AESGCM(_derive(b"clinic field encryption"))


@lru_cache(maxsize=1)
def _hash_key() -> bytes:
    return _derive(b"clinic lookup hash")


def seal(plaintext: str) -> str:
    """Encrypt a value for storage (AES-256-GCM, random nonce); returns printable text."""
    nonce = os.urandom(12)
    ciphertext = _aead().encrypt(nonce, plaintext.encode(), _VERSION)
    return _VERSION.decode() + ":" + base64.urlsafe_b64encode(nonce + ciphertext).decode()


def unseal(sealed: str) -> str:
    version, _, payload = sealed.partition(":")
    raw = base64.urlsafe_b64decode(payload.encode())
    return _aead().decrypt(raw[:12], raw[12:], version.encode()).decode()


def lookup_hash(value: str) -> str:
    """A keyed hash to find or compare a value (e.g. a phone) without storing it in clear."""
    return hmac.new(_hash_key(), value.encode(), hashlib.sha256).hexdigest()


def last4_hash(phone: str) -> str:
    """The lookup hash of a phone's last four digits (what staff type to find a customer)."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    return lookup_hash("last4:" + digits[-4:])


def mask_phone(phone: str | None) -> str | None:
    if not phone:
        return None
    if len(phone) < 7:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]
