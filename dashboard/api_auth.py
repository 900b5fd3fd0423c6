"""Dashboard sign-in through the API's account service: same users, passwords, TOTP and sessions.

The account service is asynchronous; the dashboard's WSGI threads call it on one private
event loop. The dashboard's session token names an API session (public ids only), and
every request checks that session is still live, so revoking it in the API signs the
dashboard out too.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar, cast

import structlog
from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg_pool import AsyncConnectionPool

from api.accounts import repo as accounts_repo
from api.accounts.errors import AccountsError
from api.accounts.models import MfaChallenge
from api.app import build_accounts
from api.security.principal import Principal as ApiPrincipal
from api.security.tokens import TokenError, verify_token
from app.settings import Settings
from dashboard.auth import LoginRefused, Principal
from store.db import open_async_pool

log = structlog.get_logger(__name__)
T = TypeVar("T")
CALL_TIMEOUT_S = 15.0
DASHBOARD_ROLES = {"operator": "operator", "customer": "customer"}


class ApiAuthenticator:
    """`Authenticator` backed by api.accounts (argon2 passwords, TOTP, throttling, audit)."""

    def __init__(self, settings: Settings) -> None:
        if settings.database_url is None:
            raise ValueError("ApiAuthenticator needs settings.database_url")
        self._settings = settings
        self._accounts = build_accounts(settings)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="dashboard-auth", daemon=True
        )
        self._thread.start()
        pool = self._call(open_async_pool(settings.database_url, settings.store, "dashboard-auth"))
        self._pool = cast(AsyncConnectionPool[AsyncConnection[DictRow]], pool)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(CALL_TIMEOUT_S)

    def login(self, email: str, password: str, otp: str, *, client_ip: str) -> str:
        """Password then TOTP, as the API does (throttled per `client_ip` too); staff without
        TOTP are refused."""
        return self._call(self._login(email, password, otp, client_ip))

    async def _login(self, email: str, password: str, otp: str, client_ip: str) -> str:
        async with self._pool.connection() as conn:
            try:
                first = await self._accounts.login(conn, email, password, client_ip)
                if isinstance(first, MfaChallenge):
                    if first.status != "mfa_required":
                        raise LoginRefused  # staff must enrol TOTP through the API first
                    tokens = await self._accounts.verify_mfa(
                        conn, first.mfa_token, otp, None, client_ip
                    )
                else:
                    tokens = first
            except AccountsError as exc:
                raise LoginRefused from exc
        try:
            claims = verify_token(self._accounts.secret_key, tokens.access_token, "access")
        except TokenError as exc:
            raise LoginRefused from exc
        return json.dumps({"sid": tokens.session_id, "sub": claims.subject})

    def resolve(self, token: str) -> Principal | None:
        """The principal of a live API session named by `token`."""
        try:
            ids = json.loads(token)
            session_id, subject = str(ids["sid"]), str(ids["sub"])
        except (ValueError, KeyError, TypeError):
            return None
        return self._call(self._resolve(session_id, subject))

    async def _resolve(self, session_id: str, subject: str) -> Principal | None:
        async with self._pool.connection() as conn:
            try:
                row = await accounts_repo.session_principal(conn, session_id, subject)
            except Exception:  # a malformed uuid: not a session
                await conn.rollback()
                return None
            if row is None or row["role"] not in DASHBOARD_ROLES:
                return None
            user = await accounts_repo.user_by_id(conn, row["user_id"])
        name = self._accounts.open(user["display_name_enc"], "display_name_enc") if user else None
        return Principal(
            user_id=str(row["public_id"]),
            role=DASHBOARD_ROLES[row["role"]],  # type: ignore[arg-type]
            display_name=name or row["role"],
            customer_id=row["customer_id"],
        )

    def logout(self, token: str) -> None:
        """Revoke the API session behind `token`."""
        try:
            ids = json.loads(token)
            self._call(self._logout(str(ids["sid"]), str(ids["sub"])))
        except (ValueError, KeyError, TypeError, AccountsError):
            log.info("dashboard.logout_unknown_session")

    async def _logout(self, session_id: str, subject: str) -> None:
        async with self._pool.connection() as conn:
            row = await accounts_repo.session_principal(conn, session_id, subject)
            if row is None:
                return
            principal = ApiPrincipal(
                kind="user",
                public_id=str(row["public_id"]),
                role=row["role"],
                user_id=row["user_id"],
                customer_id=row["customer_id"],
                session_id=row["session_id"],
            )
            await self._accounts.logout(conn, principal)

    def close(self) -> None:
        """Close the pool and stop the private loop."""
        self._call(self._pool.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
