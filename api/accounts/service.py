"""Account use cases: create users, log in with two factors, refresh and revoke sessions.

Password resets, contact changes and API keys live in api/accounts/recovery.py and
api/accounts/keys.py; all share the `Accounts` object built once per process.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import psycopg
import pyotp
import structlog
from psycopg import AsyncConnection
from psycopg.rows import DictRow

from api import audit
from api.accounts import repo
from api.accounts.errors import (
    AccountConflict,
    InvalidCredentials,
    InvalidToken,
    MfaRequired,
    ReauthenticationFailed,
    Throttled,
    UserNotFound,
)
from api.accounts.models import MfaChallenge, TokenPair, TotpEnrollment, UserPublic
from api.audit import AuditAction
from api.config import ApiConfig
from api.mail import MailSender
from api.security.masking import mask_email, mask_name, mask_phone
from api.security.passwords import Passwords
from api.security.principal import STAFF_ROLES, Principal
from api.security.tokens import TokenError, hash_secret, issue_token, new_secret, verify_token
from store.encryption import FieldCipher

log = structlog.get_logger(__name__)

Conn = AsyncConnection[DictRow]
TOTP_ISSUER = "Kizuna"
RECOVERY_CODE_COUNT = 10
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def utc_now() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


@dataclass
class Accounts:
    """Everything the account use cases need, built once per process."""

    config: ApiConfig
    secret_key: str
    cipher: FieldCipher
    passwords: Passwords
    mailer: MailSender
    clock: Callable[[], datetime] = utc_now

    # --- personal data ----------------------------------------------------------------------

    def seal(self, value: str | None, column: str) -> bytes | None:
        """Encrypt a personal-data value for a column of `users`."""
        return None if value is None else self.cipher.seal(value, f"users.{column}")

    def open(self, value: bytes | None, column: str) -> str | None:
        """Decrypt a personal-data value of a column of `users`."""
        return None if value is None else self.cipher.open(bytes(value), f"users.{column}")

    def public_user(self, row: dict[str, Any], viewer: Principal | None) -> UserPublic:
        """A user as `viewer` may see it: unmasked for operators and the user themself."""
        email = self.open(row["email_enc"], "email_enc")
        phone = self.open(row["phone_enc"], "phone_enc")
        name = self.open(row["display_name_enc"], "display_name_enc")
        own = viewer is not None and viewer.public_id == str(row["public_id"])
        if not own and (viewer is None or not viewer.sees_personal_data):
            email, phone, name = mask_email(email), mask_phone(phone), mask_name(name)
        return UserPublic(
            id=str(row["public_id"]),
            role=row["role"],
            email=email,
            phone=phone,
            display_name=name,
            customer_id=row["customer_id"],
            totp_enabled=row["totp_enabled"],
            created_at=row["created_at"],
            disabled=row["disabled_at"] is not None,
        )

    # --- users ------------------------------------------------------------------------------

    async def create_user(
        self,
        conn: Conn,
        *,
        role: str,
        email: str,
        password: str,
        display_name: str | None = None,
        phone: str | None = None,
        customer_id: int | None = None,
        totp_secret: str | None = None,
    ) -> dict[str, Any]:
        """Create an account; a `totp_secret` enables two-factor authentication at once."""
        if (role == "customer") != (customer_id is not None):
            raise AccountConflict("customer accounts need a customer_id, staff accounts none")
        if customer_id is not None:
            cur = await conn.execute(
                "SELECT 1 FROM customers WHERE id = %s AND erased_at IS NULL", (customer_id,)
            )
            if await cur.fetchone() is None:
                raise UserNotFound("no such customer")
        index = self.cipher.blind_index(email)
        password_hash = await asyncio.to_thread(self.passwords.hash, password)
        values = {
            "role": role,
            "customer_id": customer_id,
            "email_enc": self.seal(email.strip(), "email_enc"),
            "email_index": index,
            "phone_enc": self.seal(phone, "phone_enc"),
            "display_name_enc": self.seal(display_name, "display_name_enc"),
            "password_hash": password_hash,
            "totp_secret_enc": self.seal(totp_secret, "totp_secret_enc"),
            "totp_enabled": totp_secret is not None,
        }
        cur = await conn.execute(
            "SELECT 1 FROM users WHERE email_index = %s OR (customer_id = %s)", (index, customer_id)
        )
        if await cur.fetchone() is not None:
            raise AccountConflict("an account with this email or customer exists")
        return await repo.insert_user(conn, values)

    # --- login ------------------------------------------------------------------------------

    async def login(
        self, conn: Conn, email: str, password: str, client_ip: str
    ) -> TokenPair | MfaChallenge:
        """Check email and password (throttled, no enumeration); start a session or an MFA step."""
        identifier = self.cipher.blind_index(email)
        await self.refuse_if_throttled(
            conn, "password", identifier, client_ip, self.config.login_max_failures_per_identifier
        )
        user = await repo.user_by_email_index(conn, identifier)
        ok = await asyncio.to_thread(
            self.passwords.verify, user["password_hash"] if user else None, password
        )
        if user is None or not ok:
            await repo.record_attempt(conn, "password", identifier, client_ip, False)
            await audit.record(
                conn,
                AuditAction.USER_LOGGED_IN,
                actor=self.actor(user) if user else None,
                target_kind="user" if user else None,
                target_id=str(user["public_id"]) if user else None,
                outcome="failure",
                client=self.client_ref(client_ip),
                details={"step": "password"},
            )
            await conn.commit()
            raise InvalidCredentials()
        await repo.record_attempt(conn, "password", identifier, client_ip, True)
        if user["password_hash"] and self.passwords.needs_rehash(user["password_hash"]):
            new_hash = await asyncio.to_thread(self.passwords.hash, password)
            await repo.set_user_fields(conn, user["id"], {"password_hash": new_hash})
        if user["totp_enabled"]:
            return self._challenge(user, "mfa")
        if user["role"] in STAFF_ROLES:
            return self._challenge(user, "mfa_enroll")
        return await self._start_session(conn, user, client_ip, "password")

    def _challenge(self, user: dict[str, Any], kind: Literal["mfa", "mfa_enroll"]) -> MfaChallenge:
        ttl = self.config.mfa_token_ttl_s
        token = issue_token(self.secret_key, kind, str(user["public_id"]), ttl)
        status = "mfa_required" if kind == "mfa" else "mfa_enrollment_required"
        return MfaChallenge(status=status, mfa_token=token, expires_in=ttl)

    async def refuse_if_throttled(
        self, conn: Conn, kind: str, identifier: bytes, client_ip: str, max_failures: int
    ) -> None:
        """429 when this identifier or this address failed too often inside the window.

        Attempts on one identifier are serialized by a transaction-level advisory lock, so
        parallel requests cannot all pass the check before any failure is recorded.
        """
        await repo.lock_identifier(conn, kind, identifier)
        window = self.config.login_window_s
        counts = await repo.recent_failures(conn, kind, identifier, client_ip, window)
        if counts["by_identifier"] >= max_failures:
            elapsed = (counts["now"] - counts["oldest_by_identifier"]).total_seconds()
            raise Throttled(int(window - elapsed) + 1)
        if counts["by_ip"] >= self.config.login_max_failures_per_ip:
            raise Throttled(window)

    async def verify_mfa(
        self,
        conn: Conn,
        mfa_token: str,
        code: str | None,
        recovery_code: str | None,
        client_ip: str,
    ) -> TokenPair:
        """Second step of login: a TOTP code (single use) or a recovery code (single use)."""
        user = await self._user_of_pending_token(conn, mfa_token, "mfa")
        identifier = hash_secret(f"totp:{user['public_id']}")
        await self.refuse_if_throttled(
            conn, "totp", identifier, client_ip, self.config.totp_max_failures
        )
        ok = False
        if code is not None and recovery_code is None:
            ok = await self._check_totp(conn, user, code)
        elif recovery_code is not None and code is None:
            ok = await repo.use_recovery_code(conn, user["id"], self._recovery_hash(recovery_code))
        if not ok:
            await repo.record_attempt(conn, "totp", identifier, client_ip, False)
            await audit.record(
                conn,
                AuditAction.USER_LOGGED_IN,
                actor=self.actor(user),
                target_kind="user",
                target_id=str(user["public_id"]),
                outcome="failure",
                client=self.client_ref(client_ip),
                details={"step": "mfa"},
            )
            await conn.commit()
            raise InvalidCredentials()
        await repo.record_attempt(conn, "totp", identifier, client_ip, True)
        method = "totp" if code else "recovery_code"
        return await self._start_session(conn, user, client_ip, method)

    async def _user_of_pending_token(self, conn: Conn, token: str, kind: str) -> dict[str, Any]:
        try:
            claims = verify_token(self.secret_key, token, kind)  # type: ignore[arg-type]
        except TokenError as exc:
            raise InvalidToken() from exc
        user = await repo.user_by_public_id(conn, claims.subject)
        if user is None or user["disabled_at"] is not None:
            raise InvalidToken()
        return user

    async def _check_totp(self, conn: Conn, user: dict[str, Any], code: str) -> bool:
        """True for a current code whose time step was never used before (replay refused)."""
        secret = self.open(user["totp_secret_enc"], "totp_secret_enc")
        if not secret:
            return False
        totp = pyotp.TOTP(secret)
        now = self.clock()
        for offset in (0, -totp.interval, totp.interval):
            moment = now + timedelta(seconds=offset)
            if hmac.compare_digest(totp.at(moment), code):
                return await repo.claim_totp_step(conn, user["id"], totp.timecode(moment))
        return False

    @staticmethod
    def actor(user: dict[str, Any]) -> tuple[str, str, str]:
        """The audit actor tuple of a user row."""
        return ("user", str(user["public_id"]), user["role"])

    def client_ref(self, client_ip: str) -> str:
        """The audit log's keyed pseudonym of a client address (never the address itself)."""
        return audit.client_reference(self.secret_key, client_ip)

    async def audit_user(
        self,
        conn: Conn,
        action: AuditAction,
        user: dict[str, Any],
        *,
        client_ip: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Record a successful `action` a user did to their own account."""
        await audit.record(
            conn,
            action,
            actor=self.actor(user),
            target_kind="user",
            target_id=str(user["public_id"]),
            client=self.client_ref(client_ip) if client_ip is not None else None,
            details=details,
        )

    # --- sessions ---------------------------------------------------------------------------

    async def _start_session(
        self, conn: Conn, user: dict[str, Any], client_ip: str, method: str
    ) -> TokenPair:
        secret = new_secret()
        expires = self.clock() + timedelta(seconds=self.config.refresh_token_ttl_s)
        session = await repo.insert_session(conn, user["id"], hash_secret(secret), expires)
        await self.audit_user(
            conn,
            AuditAction.USER_LOGGED_IN,
            user,
            client_ip=client_ip,
            details={"method": method, "session": str(session["public_id"])},
        )
        return self._tokens(user, str(session["public_id"]), secret)

    def _tokens(self, user: dict[str, Any], session_public_id: str, secret: str) -> TokenPair:
        ttl = self.config.access_token_ttl_s
        access = issue_token(
            self.secret_key, "access", str(user["public_id"]), ttl, session=session_public_id
        )
        return TokenPair(
            access_token=access,
            expires_in=ttl,
            refresh_token=f"{session_public_id}.{secret}",
            session_id=session_public_id,
        )

    async def issue_session(
        self, conn: Conn, user_id: int, client_ip: str = "system", *, method: str = "issued"
    ) -> TokenPair:
        """A full session without checking credentials (after enrollment; seeding, tests)."""
        user = await repo.user_by_id(conn, user_id)
        if user is None:
            raise UserNotFound()
        return await self._start_session(conn, user, client_ip, method)

    async def refresh(self, conn: Conn, refresh_token: str, client_ip: str) -> TokenPair:
        """New tokens for a refresh token; a reused (stolen) one revokes its whole session."""
        session_public_id, _, secret = refresh_token.partition(".")
        try:
            session = await repo.session_by_public_id(conn, session_public_id)
        except psycopg.errors.DataError as exc:  # a malformed uuid is just an invalid token
            await conn.rollback()
            raise InvalidToken() from exc
        if session is None or not secret:
            raise InvalidToken()
        new = new_secret()
        expires = self.clock() + timedelta(seconds=self.config.refresh_token_ttl_s)
        rotated = session["disabled_at"] is None and await repo.rotate_refresh(
            conn, session["id"], hash_secret(secret), hash_secret(new), expires
        )
        if not rotated:
            if session["revoked_at"] is None:
                await repo.revoke_session(conn, session["id"], "refresh_token_reuse")
                await audit.record(
                    conn,
                    AuditAction.SESSION_REFRESH_TOKEN_REUSED,
                    target_kind="session",
                    target_id=session_public_id,
                    outcome="denied",
                    client=self.client_ref(client_ip),
                    details={"session_revoked": True},
                )
                await conn.commit()
            raise InvalidToken()
        user = await repo.user_by_id(conn, session["user_id"])
        assert user is not None
        return self._tokens(user, session_public_id, new)

    async def logout(self, conn: Conn, principal: Principal, everywhere: bool = False) -> None:
        """Revoke the current session, or every session of the user."""
        assert principal.user_id is not None and principal.session_id is not None
        if everywhere:
            await repo.revoke_user_sessions(conn, principal.user_id, "logout_all")
        else:
            await repo.revoke_session(conn, principal.session_id, "logout")
        await audit.record(
            conn,
            AuditAction.USER_LOGGED_OUT,
            principal=principal,
            target_kind="user",
            target_id=principal.public_id,
            details={"everywhere": everywhere},
        )

    async def principal_from_access_token(self, conn: Conn, token: str) -> Principal:
        """The principal of a genuine access token whose session is still live."""
        try:
            claims = verify_token(self.secret_key, token, "access")
        except TokenError as exc:
            raise InvalidToken() from exc
        if claims.session is None:
            raise InvalidToken()
        try:
            row = await repo.session_principal(conn, claims.session, claims.subject)
        except psycopg.errors.DataError as exc:  # signed tokens carry good uuids; be safe anyway
            await conn.rollback()
            raise InvalidToken() from exc
        if row is None:
            raise InvalidToken()
        return Principal(
            kind="user",
            public_id=str(row["public_id"]),
            role=row["role"],
            user_id=row["user_id"],
            customer_id=row["customer_id"],
            session_id=row["session_id"],
        )

    async def user_of_enrollment_token(self, conn: Conn, token: str) -> dict[str, Any]:
        """The user behind an MFA-enrollment token (staff who must enroll before anything)."""
        return await self._user_of_pending_token(conn, token, "mfa_enroll")

    # --- two-factor enrollment ------------------------------------------------------------------

    async def begin_totp(self, conn: Conn, user: dict[str, Any]) -> TotpEnrollment:
        """Store a new unconfirmed TOTP secret; refused when one is already active."""
        if user["totp_enabled"]:
            raise AccountConflict("two-factor authentication is already enabled")
        secret = pyotp.random_base32()
        await repo.set_user_fields(
            conn,
            user["id"],
            {"totp_secret_enc": self.seal(secret, "totp_secret_enc"), "totp_last_step": None},
        )
        label = str(user["public_id"])
        uri = pyotp.TOTP(secret).provisioning_uri(name=label, issuer_name=TOTP_ISSUER)
        await self.audit_user(conn, AuditAction.USER_MFA_ENROLLMENT_STARTED, user)
        return TotpEnrollment(secret=secret, otpauth_uri=uri)

    async def confirm_totp(self, conn: Conn, user: dict[str, Any], code: str) -> list[str]:
        """Enable TOTP after a first valid code; return fresh recovery codes (shown once)."""
        if user["totp_enabled"] or user["totp_secret_enc"] is None:
            raise AccountConflict("no two-factor enrollment in progress")
        if not await self._check_totp(conn, user, code):
            raise InvalidCredentials()
        await repo.set_user_fields(conn, user["id"], {"totp_enabled": True})
        codes = await self._new_recovery_codes(conn, user["id"])
        await self.audit_user(conn, AuditAction.USER_MFA_ENROLLED, user, details={"method": "totp"})
        return codes

    async def _new_recovery_codes(self, conn: Conn, user_id: int) -> list[str]:
        codes = [
            "-".join("".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(5)) for _ in range(2))
            for _ in range(RECOVERY_CODE_COUNT)
        ]
        await repo.replace_recovery_codes(conn, user_id, [self._recovery_hash(c) for c in codes])
        return codes

    def _recovery_hash(self, code: str) -> bytes:
        # Keyed (HMAC with the secret key): ~49-bit codes must not be brute-forced offline
        # from a copy of the database alone.
        return hmac.new(self.secret_key.encode(), b"recovery:" + code.encode(), "sha256").digest()

    async def reauthenticate(
        self, conn: Conn, user: dict[str, Any], password: str, code: str | None, client_ip: str
    ) -> None:
        """Password (and TOTP when enabled) again before a sensitive change; throttled."""
        identifier = hash_secret(f"reauth:{user['public_id']}")
        await self.refuse_if_throttled(
            conn, "password", identifier, client_ip, self.config.login_max_failures_per_identifier
        )
        ok = await asyncio.to_thread(self.passwords.verify, user["password_hash"], password)
        if ok and user["totp_enabled"]:
            ok = code is not None and await self._check_totp(conn, user, code)
        if not ok:
            await repo.record_attempt(conn, "password", identifier, client_ip, False)
            await audit.record(
                conn,
                AuditAction.USER_REAUTHENTICATED,
                actor=self.actor(user),
                target_kind="user",
                target_id=str(user["public_id"]),
                outcome="failure",
                client=self.client_ref(client_ip),
            )
            await conn.commit()
            raise ReauthenticationFailed()
        await repo.record_attempt(conn, "password", identifier, client_ip, True)

    async def disable_totp(self, conn: Conn, user: dict[str, Any]) -> None:
        """Turn TOTP off (customers only; staff must keep it)."""
        if user["role"] in STAFF_ROLES:
            raise MfaRequired("two-factor authentication is mandatory for staff")
        await repo.set_user_fields(
            conn,
            user["id"],
            {"totp_enabled": False, "totp_secret_enc": None, "totp_last_step": None},
        )
        await repo.replace_recovery_codes(conn, user["id"], [])
        await self.audit_user(conn, AuditAction.USER_MFA_DISABLED, user)

    async def regenerate_recovery_codes(self, conn: Conn, user: dict[str, Any]) -> list[str]:
        """Replace every recovery code of a user with new ones."""
        if not user["totp_enabled"]:
            raise AccountConflict("two-factor authentication is not enabled")
        codes = await self._new_recovery_codes(conn, user["id"])
        await self.audit_user(conn, AuditAction.USER_RECOVERY_CODES_REGENERATED, user)
        return codes
