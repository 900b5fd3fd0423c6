"""Dependencies every router uses, as `Annotated` aliases defined once.

- `DbConn`: one pooled async connection per request; the request is one transaction (commit
  on success, rollback on error). `SyncDbConn` is the same for synchronous (`def`) routes
  that call the synchronous domain services (devices/, rules/, notify/).
- `CurrentPrincipal`: from a bearer access token (live session) or an API key (`kz_…`).
- Role guards: `OperatorOnly`, `StaffOnly` (operator or support), `CustomerOnly`, `AnyUser`.
  API keys pass `StaffOnly` and `AnyUser` with scope `read` on safe methods and `write`
  otherwise; they never pass `OperatorOnly` or `CustomerOnly`.
- `OwnedDevice`: the `{device_uid}` of the path, if the principal may see it (staff, API
  keys, or a customer with a current ownership or share); otherwise 404.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg import AsyncConnection, Connection
from psycopg.rows import DictRow

from api.accounts import repo as accounts_repo
from api.accounts.service import Accounts
from api.errors import Forbidden, NotFound, Unauthorized
from api.security.principal import Principal
from api.security.tokens import hash_secret
from app.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
API_KEY_PREFIX = "kz_"
DEVICE_UID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def get_accounts(request: Request) -> Accounts:
    """The accounts service of this app."""
    accounts: Accounts = request.app.state.accounts
    return accounts


async def get_db(request: Request) -> AsyncIterator[AsyncConnection[DictRow]]:
    """A pooled connection; the whole request is one transaction."""
    # A bounded wait: when the database is down the request fails fast with 503.
    timeout = request.app.state.settings.store.connect_timeout_s
    async with request.app.state.pool.connection(timeout=timeout) as conn:
        yield conn


def get_sync_db(request: Request) -> Iterator[Connection[DictRow]]:
    """A pooled synchronous connection for `def` routes (run in the threadpool)."""
    timeout = request.app.state.settings.store.connect_timeout_s
    with request.app.state.sync_pool.connection(timeout=timeout) as conn:
        yield conn


def client_ip(request: Request) -> str:
    """The client's address: the peer, or the forwarded client behind a trusted proxy.

    `KIZUNA_API__TRUSTED_PROXIES` decides (see api/config.py); the app's proxy-headers
    middleware has already put the forwarded address into the request when it applies.
    """
    return request.client.host if request.client else "unknown"


SettingsDep = Annotated[Settings, Depends(get_settings)]
AccountsDep = Annotated[Accounts, Depends(get_accounts)]
DbConn = Annotated[AsyncConnection[DictRow], Depends(get_db)]
SyncDbConn = Annotated[Connection[DictRow], Depends(get_sync_db)]
ClientIp = Annotated[str, Depends(client_ip)]


# Declared as a security scheme so OpenAPI marks every protected operation (and the docs
# page offers "Authorize"); auto_error is off so failures stay problem+json 401s.
BEARER_SCHEME = HTTPBearer(
    auto_error=False,
    description="An access token from /api/v1/auth/login, or an API key (kz_...).",
)


def bearer_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER_SCHEME)],
) -> str:
    """The bearer token of the Authorization header, or 401."""
    if credentials is None or not credentials.credentials.strip():
        raise Unauthorized()
    return credentials.credentials.strip()


BearerToken = Annotated[str, Depends(bearer_token)]


async def current_principal(
    request: Request, token: BearerToken, conn: DbConn, accounts: AccountsDep
) -> Principal:
    """The authenticated caller; 401 for anything forged, expired, revoked or pending MFA."""
    if token.startswith(API_KEY_PREFIX):
        principal = await _principal_from_api_key(conn, token)
    else:
        principal = await accounts.principal_from_access_token(conn, token)
    request.state.principal = principal
    return principal


async def _principal_from_api_key(conn: AsyncConnection[DictRow], token: str) -> Principal:
    prefix, _, secret = token[len(API_KEY_PREFIX) :].partition("_")
    if not prefix.isalnum() or not secret or len(prefix) > 16:
        raise Unauthorized()
    row = await accounts_repo.api_key_by_prefix(conn, prefix)
    # Compare against a hash even for unknown prefixes, so timing says nothing.
    expected = row["key_hash"] if row else hash_secret("")
    if not hmac.compare_digest(bytes(expected), hash_secret(token)) or row is None:
        raise Unauthorized()
    await accounts_repo.touch_api_key(conn, row["id"])
    return Principal(
        kind="api_key",
        public_id=str(row["public_id"]),
        role="integration",
        api_key_id=row["id"],
        scopes=frozenset(row["scopes"]),
    )


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def _api_key_may(principal: Principal, request: Request) -> bool:
    needed = "read" if request.method in SAFE_METHODS else "write"
    return needed in principal.scopes


def require_operator(principal: CurrentPrincipal) -> Principal:
    """Operators only."""
    if principal.role != "operator":
        raise Forbidden("operators only")
    return principal


def require_staff(principal: CurrentPrincipal, request: Request) -> Principal:
    """Operators, support staff, and API keys with the scope for this method."""
    if principal.role == "integration" and _api_key_may(principal, request):
        return principal
    if not principal.is_staff:
        raise Forbidden("staff only")
    return principal


def require_customer(principal: CurrentPrincipal) -> Principal:
    """Customers only (their own feed, preferences, account)."""
    if principal.role != "customer" or principal.customer_id is None:
        raise Forbidden("customers only")
    return principal


def require_user(principal: CurrentPrincipal, request: Request) -> Principal:
    """Any person with a full session; API keys with the scope for this method."""
    if principal.role == "integration" and not _api_key_may(principal, request):
        raise Forbidden("this API key lacks the scope for this method")
    return principal


def require_person(principal: CurrentPrincipal) -> Principal:
    """A person with a full session (their own account); API keys are refused."""
    if principal.kind != "user":
        raise Forbidden("API keys cannot use account routes")
    return principal


OperatorOnly = Annotated[Principal, Depends(require_operator)]
StaffOnly = Annotated[Principal, Depends(require_staff)]
CustomerOnly = Annotated[Principal, Depends(require_customer)]
AnyUser = Annotated[Principal, Depends(require_user)]
PersonOnly = Annotated[Principal, Depends(require_person)]

ROLE_GUARDS = (require_operator, require_staff, require_customer, require_user, require_person)


@dataclass(frozen=True)
class DeviceRef:
    """A device the principal may see; `relation` is 'owner'/'family' for customers."""

    id: int
    uid: str
    serial: str
    model_id: str
    nickname: str | None
    relation: str | None


DEVICE_COLUMNS = "d.id, d.uid, d.serial, d.model_id, d.nickname"


async def owned_device(
    device_uid: Annotated[str, Path(pattern=DEVICE_UID_PATTERN, max_length=64)],
    principal: AnyUser,
    conn: DbConn,
) -> DeviceRef:
    """The device of the path if this principal may see it, else 404 (never 403)."""
    if principal.role == "customer":
        cur = await conn.execute(
            f"SELECT {DEVICE_COLUMNS}, o.role AS relation FROM devices d "
            "JOIN device_ownerships o ON o.device_id = d.id AND o.ended_at IS NULL "
            "WHERE d.uid = %s AND o.customer_id = %s",
            (device_uid, principal.customer_id),
        )
    else:
        cur = await conn.execute(
            f"SELECT {DEVICE_COLUMNS}, NULL AS relation FROM devices d WHERE d.uid = %s",
            (device_uid,),
        )
    row = await cur.fetchone()
    if row is None:
        raise NotFound("no such device")
    return DeviceRef(**row)


OwnedDevice = Annotated[DeviceRef, Depends(owned_device)]
