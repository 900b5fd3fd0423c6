"""Encryption of personal data at rest (AES-256-GCM) and blind indexes for lookups.

Each ciphertext carries the id of the key that sealed it, so keys can be rotated: new data
is sealed with the current key, old data stays readable with the old keys listed in
settings until it is re-encrypted (see docs/security.md, "Key rotation").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT_VERSION = b"\x01"
KEY_ID_BYTES = 4
NONCE_BYTES = 12


class EncryptionError(ValueError):
    """A key is malformed, or a ciphertext cannot be opened with any known key."""


def _key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"kizuna-key-id" + key).digest()[:KEY_ID_BYTES]


def decode_key(encoded: str) -> bytes:
    """A 32-byte key from its base64 text, or a clear error."""
    try:
        key = base64.b64decode(encoded, validate=True)
    except ValueError as exc:
        raise EncryptionError("data encryption key must be base64") from exc
    if len(key) != 32:
        raise EncryptionError(f"data encryption key must be 32 bytes, got {len(key)}")
    return key


class FieldCipher:
    """Seals and opens personal-data fields; `context` binds a ciphertext to its column."""

    def __init__(self, current_key: bytes, old_keys: tuple[bytes, ...] = ()) -> None:
        self._current = AESGCM(current_key)
        self._current_id = _key_id(current_key)
        self._by_id = {_key_id(k): AESGCM(k) for k in (current_key, *old_keys)}
        self._index_key = hmac.new(current_key, b"kizuna-blind-index", hashlib.sha256).digest()

    @classmethod
    def from_encoded(cls, current: str, old: list[str] | tuple[str, ...] = ()) -> FieldCipher:
        """Build from base64 keys as they appear in settings."""
        return cls(decode_key(current), tuple(decode_key(k) for k in old))

    def seal(self, plaintext: str, context: str) -> bytes:
        """Encrypt `plaintext` with the current key."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._current.encrypt(nonce, plaintext.encode("utf-8"), context.encode())
        return FORMAT_VERSION + self._current_id + nonce + sealed

    def open(self, ciphertext: bytes, context: str) -> str:
        """Decrypt a value sealed by `seal` with the current or an old key."""
        if not ciphertext or ciphertext[:1] != FORMAT_VERSION:
            raise EncryptionError("unknown ciphertext format")
        key_id = bytes(ciphertext[1 : 1 + KEY_ID_BYTES])
        cipher = self._by_id.get(key_id)
        if cipher is None:
            raise EncryptionError("ciphertext was sealed with a key that is not configured")
        nonce_end = 1 + KEY_ID_BYTES + NONCE_BYTES
        nonce = bytes(ciphertext[1 + KEY_ID_BYTES : nonce_end])
        plain = cipher.decrypt(nonce, bytes(ciphertext[nonce_end:]), context.encode())
        return plain.decode("utf-8")

    def needs_rotation(self, ciphertext: bytes) -> bool:
        """True when the value was sealed with an old key."""
        return bytes(ciphertext[1 : 1 + KEY_ID_BYTES]) != self._current_id

    def blind_index(self, value: str) -> bytes:
        """A keyed hash of a normalized value, for equality lookups without decrypting."""
        normalized = value.strip().lower().encode("utf-8")
        return hmac.new(self._index_key, normalized, hashlib.sha256).digest()
