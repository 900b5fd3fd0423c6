"""Accounts administration (operators): create, list, read and disable users."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from api.accounts import repo
from api.accounts.errors import UserNotFound
from api.accounts.models import UserCreate, UserPublic, UserRole
from api.audit import AuditAction
from api.audit_trail import Trail, audited
from api.deps import AccountsDep, DbConn, OperatorOnly, StaffOnly
from api.pagination import Page, Pagination, Sort, sort_param

router = APIRouter(prefix="/users", tags=["users"])

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
PublicId = Annotated[str, Path(pattern=UUID_PATTERN)]
UserSort = Annotated[Sort, sort_param(("created_at", "id"), "-created_at")]


@router.get("", response_model=Page[UserPublic], summary="List accounts")
@audited(AuditAction.USERS_LISTED, read=True)
async def list_users(
    principal: StaffOnly,
    conn: DbConn,
    accounts: AccountsDep,
    page: Pagination,
    sort: UserSort,
    role: Annotated[UserRole | None, Query()] = None,
) -> Page[UserPublic]:
    """Accounts, newest first by default; `sort` is allow-listed; masked for support."""
    after = page.after
    if after is not None and (len(after) != 2 or not isinstance(after[1], int)):
        after = None
    rows = await repo.list_users(
        conn,
        role=role,
        sort=sort.field,
        descending=sort.descending,
        after=after,
        limit=page.limit + 1,
    )
    result = page.page(
        rows,
        key=lambda r: (
            r[sort.field].isoformat() if sort.field == "created_at" else r[sort.field],
            r["id"],
        ),
    )
    return Page[UserPublic](
        items=[accounts.public_user(r, principal) for r in result.items],
        next_cursor=result.next_cursor,
    )


@router.post(
    "", response_model=UserPublic, status_code=status.HTTP_201_CREATED, summary="Create an account"
)
@audited(AuditAction.USER_CREATED, target_kind="user")
async def create_user(
    body: UserCreate, principal: OperatorOnly, conn: DbConn, accounts: AccountsDep, trail: Trail
) -> UserPublic:
    """A new account; staff must enroll TOTP at first login."""
    row = await accounts.create_user(
        conn,
        role=body.role,
        email=body.email,
        password=body.password,
        display_name=body.display_name,
        customer_id=body.customer_id,
    )
    await trail.record(conn, target_id=str(row["public_id"]), details={"role": body.role})
    return accounts.public_user(row, principal)


@router.get("/{public_id}", response_model=UserPublic, summary="One account")
@audited(AuditAction.USER_VIEWED, target_kind="user", target_param="public_id", read=True)
async def get_user(
    public_id: PublicId, principal: StaffOnly, conn: DbConn, accounts: AccountsDep
) -> UserPublic:
    """One account (personal data masked for support)."""
    row = await repo.user_by_public_id(conn, public_id)
    if row is None:
        raise UserNotFound()
    return accounts.public_user(row, principal)


@router.post(
    "/{public_id}/disable", status_code=status.HTTP_204_NO_CONTENT, summary="Disable an account"
)
@audited(AuditAction.USER_DISABLED, target_kind="user", target_param="public_id")
async def disable_user(
    public_id: PublicId, principal: OperatorOnly, conn: DbConn, trail: Trail
) -> None:
    """Disable the account and end its sessions at once."""
    row = await repo.user_by_public_id(conn, public_id)
    if row is None:
        raise UserNotFound()
    await conn.execute(
        "UPDATE users SET disabled_at = coalesce(disabled_at, now()) WHERE id = %s", (row["id"],)
    )
    await repo.revoke_user_sessions(conn, row["id"], "disabled")
    await trail.record(conn)
