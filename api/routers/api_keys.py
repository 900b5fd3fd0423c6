"""API keys for integrations (operators): create (shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from api.accounts import keys, repo
from api.accounts.models import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic
from api.audit import AuditAction
from api.audit_trail import audited
from api.deps import AccountsDep, DbConn, OperatorOnly
from api.routers.users import UUID_PATTERN

router = APIRouter(prefix="/api-keys", tags=["api keys"])


@router.post(
    "",
    response_model=ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key",
)
@audited(AuditAction.API_KEY_CREATED, target_kind="api_key")
async def create_api_key(
    body: ApiKeyCreate, principal: OperatorOnly, conn: DbConn, accounts: AccountsDep
) -> ApiKeyCreated:
    """A new key; `key` appears in this response only."""
    return await keys.create_api_key(accounts, conn, principal, body)


@router.get("", response_model=list[ApiKeyPublic], summary="List API keys")
async def list_api_keys(principal: OperatorOnly, conn: DbConn) -> list[ApiKeyPublic]:
    """Every key, without secrets."""
    return [keys.key_public(r) for r in await repo.list_api_keys(conn)]


@router.delete("/{public_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke an API key")
@audited(AuditAction.API_KEY_REVOKED, target_kind="api_key", target_param="public_id")
async def revoke_api_key(
    public_id: Annotated[str, Path(pattern=UUID_PATTERN)], principal: OperatorOnly, conn: DbConn
) -> None:
    """Revoke at once."""
    await keys.revoke_api_key(conn, principal, public_id)
