"""Erasure of a customer's personal data ("forget me"), by operators or the customer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from api.accounts import privacy, repo
from api.accounts.errors import UserNotFound
from api.accounts.models import ReauthRequest
from api.audit import AuditAction
from api.audit_trail import audited
from api.deps import AccountsDep, ClientIp, CustomerOnly, DbConn, OperatorOnly
from api.routers.users import UUID_PATTERN

router = APIRouter(prefix="/privacy", tags=["privacy"])


@router.post("/customers/{customer_public_id}/erase", summary="Erase a customer")
@audited(AuditAction.CUSTOMER_ERASED, target_kind="customer", target_param="customer_public_id")
async def erase_customer(
    customer_public_id: Annotated[str, Path(pattern=UUID_PATTERN)],
    principal: OperatorOnly,
    conn: DbConn,
) -> dict[str, int]:
    """Remove personal data, detach devices, close the customer's accounts."""
    cur = await conn.execute(
        "SELECT id FROM customers WHERE public_id = %s AND erased_at IS NULL",
        (customer_public_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise UserNotFound("no such customer")
    return await privacy.erase_customer(conn, row["id"], principal)


@router.post("/forget-me", summary="Erase my personal data")
@audited(AuditAction.CUSTOMER_ERASED, target_kind="customer")
async def forget_me(
    body: ReauthRequest,
    principal: CustomerOnly,
    conn: DbConn,
    accounts: AccountsDep,
    ip: ClientIp,
) -> dict[str, int]:
    """The customer erases themself after re-authenticating; every session ends."""
    assert principal.user_id is not None and principal.customer_id is not None
    user = await repo.user_by_id(conn, principal.user_id)
    if user is None:
        raise UserNotFound()
    await accounts.reauthenticate(conn, user, body.password, body.code, ip)
    return await privacy.erase_customer(conn, principal.customer_id, principal)
