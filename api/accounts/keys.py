"""API keys for integrations: shown once, stored as SHA-256, scoped, revocable."""

from __future__ import annotations

import secrets
import string
from datetime import timedelta
from typing import Any

from api import audit
from api.accounts import repo
from api.accounts.errors import UserNotFound
from api.accounts.models import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic
from api.accounts.service import Accounts, Conn
from api.audit import AuditAction
from api.security.principal import Principal
from api.security.tokens import hash_secret, new_secret

PREFIX_ALPHABET = string.ascii_letters + string.digits
PREFIX_LENGTH = 12


def key_public(row: dict[str, Any]) -> ApiKeyPublic:
    """A key row without its hash."""
    return ApiKeyPublic(
        id=str(row["public_id"]),
        prefix=row["prefix"],
        name=row["name"],
        scopes=list(row["scopes"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked=row["revoked_at"] is not None,
        last_used_at=row["last_used_at"],
    )


async def create_api_key(
    accounts: Accounts, conn: Conn, principal: Principal, new: ApiKeyCreate
) -> ApiKeyCreated:
    """A new key `kz_<prefix>_<secret>`; only its hash is stored."""
    prefix = "".join(secrets.choice(PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    key = f"kz_{prefix}_{new_secret()}"
    expires = (
        accounts.clock() + timedelta(days=new.expires_in_days) if new.expires_in_days else None
    )
    row = await repo.insert_api_key(
        conn,
        {
            "prefix": prefix,
            "key_hash": hash_secret(key),
            "name": new.name,
            "scopes": sorted(set(new.scopes)),
            "created_by": principal.user_id,
            "expires_at": expires,
        },
    )
    await audit.record(
        conn,
        AuditAction.API_KEY_CREATED,
        principal=principal,
        target_kind="api_key",
        target_id=str(row["public_id"]),
        details={"scopes": list(row["scopes"])},
    )
    return ApiKeyCreated(**key_public(row).model_dump(), key=key)


async def revoke_api_key(conn: Conn, principal: Principal, public_id: str) -> None:
    """Revoke a key at once (the next request with it gets 401)."""
    if not await repo.revoke_api_key(conn, public_id):
        raise UserNotFound("no such API key")
    await audit.record(
        conn,
        AuditAction.API_KEY_REVOKED,
        principal=principal,
        target_kind="api_key",
        target_id=public_id,
    )
