"""Request and response models of the accounts API (strict: unknown fields are rejected)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from api.security.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH

Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        max_length=254,
        pattern=r"^[^@\s\x00]{1,64}@[^@\s\x00]+\.[^@\s\x00]+$",
    ),
]
Password = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PASSWORD_LENGTH)]
NewPassword = Annotated[
    str, StringConstraints(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)
]
TotpCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]
RecoveryCode = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]{5}-[a-z0-9]{5}$")]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9 ()\-]{6,24}$")]
UserRole = Literal["operator", "support", "customer"]


def _refuse_unstorable(value: object) -> object:
    """NUL and lone surrogates cannot be stored or encrypted: refuse them as input (422)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("NUL characters are not allowed")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError("text must be valid Unicode (no lone surrogates)") from exc
    return value


class Strict(BaseModel):
    """Base of request bodies: unknown fields are an error (no mass assignment)."""

    model_config = ConfigDict(extra="forbid", str_max_length=4096)

    @field_validator("*", mode="before")
    @classmethod
    def _storable_text(cls, value: object) -> object:
        return _refuse_unstorable(value)


class LoginRequest(Strict):
    """Email and password."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"email": "op@example.com", "password": "correct horse"}]},
    )
    email: Email
    password: Password


class TokenPair(BaseModel):
    """Tokens of a full session."""

    status: Literal["ok"] = "ok"
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (the OAuth token type, not a secret)
    access_token: str
    expires_in: int
    refresh_token: str
    session_id: str


class MfaChallenge(BaseModel):
    """The password was right; a second step is needed with `mfa_token` as bearer token."""

    status: Literal["mfa_required", "mfa_enrollment_required"]
    mfa_token: str
    expires_in: int


class MfaVerifyRequest(Strict):
    """A TOTP code or one recovery code."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"code": "123456"}]})
    code: TotpCode | None = None
    recovery_code: RecoveryCode | None = None


class RefreshRequest(Strict):
    """A refresh token from login or the previous refresh."""

    refresh_token: Annotated[str, StringConstraints(min_length=10, max_length=200)]


class TotpEnrollRequest(Strict):
    """Password again when enrolling from a full session."""

    password: Password | None = None


class TotpEnrollment(BaseModel):
    """A new, not yet confirmed TOTP secret."""

    secret: str
    otpauth_uri: str


class TotpConfirmRequest(Strict):
    """The first code from the authenticator app."""

    code: TotpCode


class TotpConfirmed(BaseModel):
    """Recovery codes (shown once) and, after enrollment at login, the session tokens."""

    recovery_codes: list[str]
    session: TokenPair | None = None


class ReauthRequest(Strict):
    """Password and, when two-factor authentication is on, a code."""

    password: Password
    code: TotpCode | None = None


class EmailChangeRequest(ReauthRequest):
    """A new login email, confirmed by re-authentication."""

    new_email: Email


class PhoneChangeRequest(ReauthRequest):
    """A new phone number, confirmed by re-authentication."""

    new_phone: Phone


class PasswordChangeRequest(ReauthRequest):
    """A new password, confirmed by the current one."""

    new_password: NewPassword


class PasswordResetRequest(Strict):
    """Ask for a reset link; it goes to the address on record of that account, if any."""

    email: Email


class PasswordResetConfirm(Strict):
    """The token from the reset email and the new password."""

    token: Annotated[str, StringConstraints(min_length=20, max_length=200)]
    new_password: NewPassword


class UserCreate(Strict):
    """A new account (operators only). Customers must name an existing customer."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"role": "support", "email": "s@example.com", "password": "a long passphrase"}
            ]
        },
    )
    role: UserRole
    email: Email
    password: NewPassword
    display_name: Annotated[str, StringConstraints(max_length=80)] | None = None
    customer_id: Annotated[int, Field(gt=0, le=2**62)] | None = None


class UserPublic(BaseModel):
    """An account as the API shows it (masked for anyone but operators and the user)."""

    id: str
    role: UserRole
    email: str | None
    phone: str | None
    display_name: str | None
    customer_id: int | None
    totp_enabled: bool
    created_at: datetime
    disabled: bool


class SessionPublic(BaseModel):
    """One live session."""

    id: str
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    current: bool


class ApiKeyCreate(Strict):
    """A new integration key with its scopes."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "warehouse", "scopes": ["read"]}]}
    )
    name: Annotated[str, StringConstraints(min_length=1, max_length=80, pattern=r"^[^\x00]*$")]
    scopes: Annotated[list[Literal["read", "write"]], Field(min_length=1, max_length=2)]
    expires_in_days: Annotated[int, Field(ge=1, le=730)] | None = None


class ApiKeyPublic(BaseModel):
    """An API key without its secret."""

    id: str
    prefix: str
    name: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked: bool
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    """A new key; `key` is shown only this once."""

    key: str
