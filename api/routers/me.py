"""The caller's own account: profile, sessions, contact changes, two-factor settings."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Path, status

from api.accounts import recovery, repo
from api.accounts.errors import UserNotFound
from api.accounts.models import (
    EmailChangeRequest,
    PasswordChangeRequest,
    PhoneChangeRequest,
    ReauthRequest,
    SessionPublic,
    UserPublic,
)
from api.audit import AuditAction
from api.audit_trail import CALLER, Trail, audited
from api.deps import AccountsDep, ClientIp, DbConn, PersonOnly

router = APIRouter(prefix="/me", tags=["me"])

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


@router.get("", response_model=UserPublic, summary="My account")
@audited(AuditAction.USER_VIEWED, target_kind="user", target_param=CALLER, read=True)
async def me(principal: PersonOnly, conn: DbConn, accounts: AccountsDep) -> UserPublic:
    """The caller's own account, unmasked."""
    assert principal.user_id is not None
    row = await repo.user_by_id(conn, principal.user_id)
    if row is None:
        raise UserNotFound()
    return accounts.public_user(row, principal)


@router.get("/sessions", response_model=list[SessionPublic], summary="My live sessions")
@audited(AuditAction.SESSIONS_LISTED, target_kind="user", target_param=CALLER, read=True)
async def my_sessions(principal: PersonOnly, conn: DbConn) -> list[SessionPublic]:
    """Every live session of the caller."""
    assert principal.user_id is not None
    rows = await repo.user_sessions(conn, principal.user_id)
    return [
        SessionPublic(
            id=str(r["public_id"]),
            created_at=r["created_at"],
            last_used_at=r["last_used_at"],
            expires_at=r["expires_at"],
            current=r["id"] == principal.session_id,
        )
        for r in rows
    ]


@router.delete(
    "/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT, summary="End a session"
)
@audited(AuditAction.SESSION_ENDED, target_kind="session", target_param="session_id")
async def end_session(
    session_id: Annotated[str, Path(pattern=UUID_PATTERN)],
    principal: PersonOnly,
    conn: DbConn,
    trail: Trail,
) -> None:
    """Revoke one of the caller's sessions (404 for anyone else's)."""
    row = await repo.session_by_public_id(conn, session_id)
    if row is None or row["user_id"] != principal.user_id or row["revoked_at"] is not None:
        raise UserNotFound("no such session")
    await repo.revoke_session(conn, row["id"], "ended_by_user")
    await trail.record(conn)


@router.post("/password", status_code=status.HTTP_204_NO_CONTENT, summary="Change password")
@audited(AuditAction.USER_PASSWORD_CHANGED, target_kind="user", target_param=CALLER)
async def change_password(
    body: PasswordChangeRequest,
    principal: PersonOnly,
    conn: DbConn,
    accounts: AccountsDep,
    ip: ClientIp,
    background: BackgroundTasks,
) -> None:
    """New password; needs the current one (and a TOTP code when enabled)."""
    mails = await recovery.change_password(
        accounts, conn, principal, body.password, body.code, body.new_password, ip
    )
    background.add_task(recovery.send_all, accounts, mails)


@router.post("/email", status_code=status.HTTP_204_NO_CONTENT, summary="Change login email")
@audited(AuditAction.USER_EMAIL_CHANGED, target_kind="user", target_param=CALLER)
async def change_email(
    body: EmailChangeRequest,
    principal: PersonOnly,
    conn: DbConn,
    accounts: AccountsDep,
    ip: ClientIp,
    background: BackgroundTasks,
) -> None:
    """New login email; needs re-authentication; the old address is told."""
    mails = await recovery.change_email(
        accounts, conn, principal, body.password, body.code, body.new_email, ip
    )
    background.add_task(recovery.send_all, accounts, mails)


@router.post("/phone", status_code=status.HTTP_204_NO_CONTENT, summary="Change phone number")
@audited(AuditAction.USER_PHONE_CHANGED, target_kind="user", target_param=CALLER)
async def change_phone(
    body: PhoneChangeRequest,
    principal: PersonOnly,
    conn: DbConn,
    accounts: AccountsDep,
    ip: ClientIp,
    background: BackgroundTasks,
) -> None:
    """New phone number; needs re-authentication; the address on record is told."""
    mails = await recovery.change_phone(
        accounts, conn, principal, body.password, body.code, body.new_phone, ip
    )
    background.add_task(recovery.send_all, accounts, mails)


@router.post("/mfa/disable", status_code=status.HTTP_204_NO_CONTENT, summary="Turn TOTP off")
@audited(AuditAction.USER_MFA_DISABLED, target_kind="user", target_param=CALLER)
async def disable_mfa(
    body: ReauthRequest,
    principal: PersonOnly,
    conn: DbConn,
    accounts: AccountsDep,
    ip: ClientIp,
) -> None:
    """Customers may turn two-factor authentication off; staff may not."""
    user = await _own_row(conn, principal.user_id)
    await accounts.reauthenticate(conn, user, body.password, body.code, ip)
    await accounts.disable_totp(conn, user)


@router.post("/mfa/recovery-codes", response_model=list[str], summary="New recovery codes")
@audited(AuditAction.USER_RECOVERY_CODES_REGENERATED, target_kind="user", target_param=CALLER)
async def new_recovery_codes(
    body: ReauthRequest,
    principal: PersonOnly,
    conn: DbConn,
    accounts: AccountsDep,
    ip: ClientIp,
) -> list[str]:
    """Replace all recovery codes; the new ones are shown once."""
    user = await _own_row(conn, principal.user_id)
    await accounts.reauthenticate(conn, user, body.password, body.code, ip)
    return await accounts.regenerate_recovery_codes(conn, user)


async def _own_row(conn: DbConn, user_id: int | None) -> dict[str, Any]:
    assert user_id is not None
    row = await repo.user_by_id(conn, user_id)
    if row is None:
        raise UserNotFound()
    return row
