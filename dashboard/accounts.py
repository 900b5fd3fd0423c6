"""An in-process account directory implementing `Authenticator`, for tests and local demos.

Passwords are argon2 hashes, one-time codes are real TOTP (with replay refused), sessions are
random tokens that expire. Production deployments pass the API's account service instead;
this class exists so the dashboard can be exercised end to end without it.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError

from dashboard.auth import LoginRefused, Principal, Role

SESSION_TTL_S = 8 * 3600


@dataclass
class _Account:
    password_hash: str
    totp_secret: str
    principal: Principal
    last_otp_counter: int = -1


class LocalAccounts:
    """Accounts kept in memory: argon2 passwords, TOTP second factor, expiring sessions."""

    def __init__(
        self, session_ttl_s: float = SESSION_TTL_S, hasher: PasswordHasher | None = None
    ) -> None:
        self._hasher = hasher or PasswordHasher()
        self._accounts: dict[str, _Account] = {}
        self._sessions: dict[str, tuple[Principal, float]] = {}
        self._ttl = session_ttl_s
        self._lock = threading.Lock()
        # Verifying against a fixed hash keeps unknown emails as slow as wrong passwords.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    def add(
        self,
        email: str,
        password: str,
        *,
        role: Role,
        display_name: str,
        customer_id: int | None = None,
        totp_secret: str | None = None,
    ) -> str:
        """Create an account; return its TOTP secret (base32)."""
        secret = totp_secret or pyotp.random_base32()
        principal = Principal(email.strip().lower(), role, display_name, customer_id)
        account = _Account(self._hasher.hash(password), secret, principal)
        with self._lock:
            self._accounts[principal.user_id] = account
        return secret

    def login(self, email: str, password: str, otp: str, *, client_ip: str = "local") -> str:
        """Check password and TOTP code; return a new session token (no throttling here)."""
        account = self._accounts.get(email.strip().lower())
        try:
            self._hasher.verify(account.password_hash if account else self._dummy_hash, password)
        except VerificationError as exc:
            raise LoginRefused from exc
        if account is None:
            raise LoginRefused
        self._accept_otp(account, otp.strip())
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[token] = (account.principal, time.monotonic() + self._ttl)
        return token

    def _accept_otp(self, account: _Account, otp: str) -> None:
        totp = pyotp.TOTP(account.totp_secret)
        now = time.time()
        for drift in (0, -1, 1):
            counter = totp.timecode(now) + drift
            if hmac_equal(totp.generate_otp(counter), otp):
                with self._lock:
                    if counter <= account.last_otp_counter:
                        raise LoginRefused  # a code already used: replay
                    account.last_otp_counter = counter
                return
        raise LoginRefused

    def resolve(self, token: str) -> Principal | None:
        """The principal of a live session, or None."""
        with self._lock:
            entry = self._sessions.get(token)
            if entry is None:
                return None
            if entry[1] < time.monotonic():
                del self._sessions[token]
                return None
            return entry[0]

    def logout(self, token: str) -> None:
        """Forget a session."""
        with self._lock:
            self._sessions.pop(token, None)


def hmac_equal(a: str, b: str) -> bool:
    """Constant-time string comparison."""
    return secrets.compare_digest(a.encode(), b.encode())
