"""Login, two-factor authentication, token refresh and logout."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Request, status

from api.accounts import recovery, repo
from api.accounts.errors import InvalidToken
from api.accounts.models import (
    LoginRequest,
    MfaChallenge,
    MfaVerifyRequest,
    PasswordResetConfirm,
    PasswordResetRequest,
    RefreshRequest,
    TokenPair,
    TotpConfirmed,
    TotpConfirmRequest,
    TotpEnrollment,
    TotpEnrollRequest,
)
from api.audit import AuditAction
from api.audit_trail import CALLER, audited
from api.deps import AccountsDep, BearerToken, ClientIp, DbConn, PersonOnly
from api.errors import Unauthorized, Unprocessable

router = APIRouter(prefix="/auth", tags=["auth"])

# Reachable without a full session: the route-walk test requires a guard on every other one.
PUBLIC_ROUTES = frozenset(
    {
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/mfa/verify",
        "/api/v1/auth/password-reset",
        "/api/v1/auth/password-reset/confirm",
    }
)


@router.post(
    "/login",
    response_model=TokenPair | MfaChallenge,
    summary="Log in with email and password",
    responses={401: {"description": "Invalid credentials"}, 429: {"description": "Throttled"}},
)
async def login(
    body: LoginRequest, conn: DbConn, accounts: AccountsDep, ip: ClientIp
) -> TokenPair | MfaChallenge:
    """A session, or an MFA challenge whose `mfa_token` is the bearer for the next step."""
    return await accounts.login(conn, body.email, body.password, ip)


@router.post("/mfa/verify", response_model=TokenPair, summary="Second login step")
async def verify_mfa(
    body: MfaVerifyRequest,
    token: BearerToken,
    conn: DbConn,
    accounts: AccountsDep,
    ip: ClientIp,
) -> TokenPair:
    """Exchange the MFA token and a TOTP or recovery code for a session."""
    if (body.code is None) == (body.recovery_code is None):
        raise Unprocessable("give exactly one of code or recovery_code")
    return await accounts.verify_mfa(conn, token, body.code, body.recovery_code, ip)


@router.post("/refresh", response_model=TokenPair, summary="Rotate the refresh token")
async def refresh(
    body: RefreshRequest, conn: DbConn, accounts: AccountsDep, ip: ClientIp
) -> TokenPair:
    """New access and refresh tokens; the old refresh token stops working."""
    return await accounts.refresh(conn, body.refresh_token, ip)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, summary="End this session")
@audited(AuditAction.USER_LOGGED_OUT, target_kind="user", target_param=CALLER)
async def logout(principal: PersonOnly, conn: DbConn, accounts: AccountsDep) -> None:
    """Revoke the session of the access token used."""
    await accounts.logout(conn, principal)


@router.post("/logout-all", status_code=status.HTTP_204_NO_CONTENT, summary="End all sessions")
@audited(AuditAction.USER_LOGGED_OUT, target_kind="user", target_param=CALLER)
async def logout_all(principal: PersonOnly, conn: DbConn, accounts: AccountsDep) -> None:
    """Revoke every session of the user."""
    await accounts.logout(conn, principal, everywhere=True)


async def enrolling_user(
    request: Request, token: BearerToken, conn: DbConn, accounts: AccountsDep
) -> dict[str, Any]:
    """The user enrolling TOTP: an MFA-enrollment token, or a full session (customers)."""
    try:
        user = await accounts.user_of_enrollment_token(conn, token)
        request.state.enrollment_token = True
        return user
    except InvalidToken:
        principal = await accounts.principal_from_access_token(conn, token)
    if principal.user_id is None:
        raise Unauthorized()
    row = await repo.user_by_id(conn, principal.user_id)
    if row is None:
        raise Unauthorized()
    request.state.principal = principal
    request.state.enrollment_token = False
    return row


EnrollingUser = Annotated[dict[str, Any], Depends(enrolling_user)]


@router.post("/mfa/totp", response_model=TotpEnrollment, summary="Start TOTP enrollment")
async def begin_totp(
    body: TotpEnrollRequest,
    request: Request,
    user: EnrollingUser,
    conn: DbConn,
    accounts: AccountsDep,
    ip: ClientIp,
) -> TotpEnrollment:
    """A new secret to scan; a full session must give the password again."""
    if not request.state.enrollment_token:
        if body.password is None:
            raise Unprocessable("password is required")
        await accounts.reauthenticate(conn, user, body.password, None, ip)
    return await accounts.begin_totp(conn, user)


@router.post("/mfa/totp/confirm", response_model=TotpConfirmed, summary="Finish TOTP enrollment")
async def confirm_totp(
    body: TotpConfirmRequest,
    request: Request,
    user: EnrollingUser,
    conn: DbConn,
    accounts: AccountsDep,
    ip: ClientIp,
) -> TotpConfirmed:
    """Enable TOTP with a first code; recovery codes are shown once."""
    codes = await accounts.confirm_totp(conn, user, body.code)
    session = None
    if request.state.enrollment_token:
        session = await accounts.issue_session(conn, user["id"], ip, method="totp_enrollment")
    return TotpConfirmed(recovery_codes=codes, session=session)


@router.post(
    "/password-reset",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Ask for a password reset link",
    responses={429: {"description": "Throttled"}},
)
async def request_password_reset(
    body: PasswordResetRequest,
    conn: DbConn,
    accounts: AccountsDep,
    ip: ClientIp,
    background: BackgroundTasks,
) -> dict[str, str]:
    """Always 202: a link goes to the account's address on record, if there is an account."""
    mails = await recovery.request_password_reset(accounts, conn, body.email, ip)
    background.add_task(recovery.send_all, accounts, mails)
    return {"status": "accepted"}


@router.post(
    "/password-reset/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Set a new password with a reset token",
)
async def confirm_password_reset(
    body: PasswordResetConfirm,
    conn: DbConn,
    accounts: AccountsDep,
    ip: ClientIp,
    background: BackgroundTasks,
) -> None:
    """Single use, expiring; every session of the account ends."""
    mails = await recovery.confirm_password_reset(accounts, conn, body.token, body.new_password, ip)
    background.add_task(recovery.send_all, accounts, mails)
