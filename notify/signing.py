"""Webhook signatures, following the Standard Webhooks scheme (standardwebhooks.com).

Every webhook call carries three headers besides `Idempotency-Key`:

    webhook-id         the notification's idempotency key (the same on every retry)
    webhook-timestamp  Unix seconds when this attempt was signed
    webhook-signature  "v1," + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}"))

The key is the webhook's secret without its `whsec_` prefix, base64-decoded. Signing the id
and the timestamp with the body means a captured call cannot be replayed later (the
timestamp leaves the receiver's window) nor under another id (the signature breaks).
Receivers may use any Standard Webhooks library, or `verify` below.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)
SECRET_BYTES = 32
VERSION = "v1"
# How far a receiver accepts webhook-timestamp from its own clock, either way.
DEFAULT_TOLERANCE_S = 300

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"


class SignatureError(ValueError):
    """A webhook call is not authentic or not fresh (the message says which check failed)."""


def new_secret() -> str:
    """A fresh webhook secret: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("the secret is not whsec_ followed by base64") from exc


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature value for one call."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return f"{VERSION},{base64.b64encode(digest).decode()}"


def signature_headers(
    secret: str, message_id: str, body: bytes, now: float | None = None
) -> dict[str, str]:
    """The three headers that sign `body` for this attempt."""
    timestamp = int(time.time() if now is None else now)
    return {
        ID_HEADER: message_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, message_id, timestamp, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> str:
    """Check a received call; return its webhook-id, or raise SignatureError.

    `body` must be the raw bytes received, before any JSON parsing. The receiver should also
    remember the ids it accepted for at least the tolerance window and drop repeats: a
    retry of the same notification has the same id (and a new timestamp and signature).
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        message_id = lowered[ID_HEADER]
        stamp = lowered[TIMESTAMP_HEADER]
        offered = lowered[SIGNATURE_HEADER]
    except KeyError as exc:
        raise SignatureError(f"missing header {exc.args[0]}") from exc
    try:
        timestamp = int(stamp)
    except ValueError as exc:
        raise SignatureError("webhook-timestamp is not Unix seconds") from exc
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise SignatureError("webhook-timestamp is outside the tolerance window")
    expected = sign(secret, message_id, timestamp, body)
    for candidate in offered.split():
        if hmac.compare_digest(candidate.encode(), expected.encode()):
            return message_id
    raise SignatureError("no signature matches")
