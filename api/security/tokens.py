"""Signed short-lived tokens (JWT, HS256 with settings.secret_key) and hashed random secrets."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import jwt

ISSUER = "kizuna"
AUDIENCE = "kizuna-api"
ALGORITHM = "HS256"

TokenType = Literal["access", "mfa", "mfa_enroll"]


class TokenError(ValueError):
    """A token is malformed, forged, expired or of the wrong type."""


@dataclass(frozen=True)
class TokenClaims:
    """What a verified token says."""

    type: TokenType
    subject: str
    session: str | None
    expires_at: datetime


def issue_token(
    secret_key: str,
    token_type: TokenType,
    subject: str,
    ttl_s: int,
    *,
    session: str | None = None,
    now: datetime | None = None,
) -> str:
    """A signed token of `token_type` for user `subject` valid `ttl_s` seconds."""
    issued = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "typ": token_type,
        "sub": subject,
        "iat": int(issued.timestamp()),
        "exp": int((issued + timedelta(seconds=ttl_s)).timestamp()),
        "jti": secrets.token_urlsafe(12),
    }
    if session is not None:
        claims["sid"] = session
    return jwt.encode(claims, _signing_key(secret_key, token_type), algorithm=ALGORITHM)


def verify_token(secret_key: str, token: str, expected: TokenType) -> TokenClaims:
    """The claims of a genuine, unexpired token of the expected type, else TokenError."""
    try:
        claims = jwt.decode(
            token,
            _signing_key(secret_key, expected),
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "typ"]},
        )
    except jwt.PyJWTError as exc:
        raise TokenError(type(exc).__name__) from exc
    if claims.get("typ") != expected:
        raise TokenError("wrong token type")
    session = claims.get("sid")
    return TokenClaims(
        type=expected,
        subject=str(claims["sub"]),
        session=str(session) if session is not None else None,
        expires_at=datetime.fromtimestamp(claims["exp"], UTC),
    )


def _signing_key(secret_key: str, token_type: TokenType) -> bytes:
    # A key per token type: an MFA-pending token can never verify as an access token.
    return hmac.new(secret_key.encode(), f"kizuna-token:{token_type}".encode(), "sha256").digest()


def new_secret(nbytes: int = 32) -> str:
    """A random URL-safe secret (refresh tokens, reset tokens, API keys)."""
    return secrets.token_urlsafe(nbytes)


def hash_secret(secret: str) -> bytes:
    """SHA-256 of a high-entropy secret: stored instead of the secret itself."""
    return hashlib.sha256(secret.encode("utf-8")).digest()
