"""Password resets and changes of login email, phone and password.

A reset link only ever goes to the address on record of the account (never to an address
from the request), is single use, expires, and ends every session. Changing email, phone or
password needs the password again (and a TOTP code when enabled) and tells the old address.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from psycopg.errors import UniqueViolation

from api import audit
from api.accounts import repo
from api.accounts.errors import AccountConflict, InvalidToken, UserNotFound
from api.accounts.service import Accounts, Conn
from api.audit import AuditAction
from api.security.masking import mask_email
from api.security.principal import Principal
from api.security.tokens import hash_secret, new_secret

log = structlog.get_logger(__name__)

RESET_REQUESTS_PER_WINDOW = 5


@dataclass(frozen=True)
class Mail:
    """A message to send once the transaction has committed."""

    to: str
    subject: str
    body: str


async def send_all(accounts: Accounts, mails: list[Mail]) -> None:
    """Send queued mails; a failure is logged (without the address), never raised."""
    for mail in mails:
        try:
            await accounts.mailer.send(mail.to, mail.subject, mail.body)
        except Exception as exc:
            log.error("accounts.mail_failed", subject=mail.subject, error_type=type(exc).__name__)


async def request_password_reset(
    accounts: Accounts, conn: Conn, email: str, client_ip: str
) -> list[Mail]:
    """Queue a reset link to the account's address on record; the same answer for anyone."""
    identifier = accounts.cipher.blind_index(email)
    await accounts.refuse_if_throttled(
        conn, "reset", identifier, client_ip, RESET_REQUESTS_PER_WINDOW
    )
    # Every request counts towards the limit, known address or not.
    await repo.record_attempt(conn, "reset", identifier, client_ip, False)
    user = await repo.user_by_email_index(conn, identifier)
    if user is None:
        await audit.record(
            conn,
            AuditAction.USER_PASSWORD_RESET_REQUESTED,
            outcome="failure",
            client=accounts.client_ref(client_ip),
            details={"reason": "no_such_account"},
        )
        return []
    token = new_secret()
    expires = accounts.clock() + timedelta(seconds=accounts.config.password_reset_ttl_s)
    await repo.insert_password_reset(conn, user["id"], hash_secret(token), expires)
    await accounts.audit_user(
        conn, AuditAction.USER_PASSWORD_RESET_REQUESTED, user, client_ip=client_ip
    )
    on_record = accounts.open(user["email_enc"], "email_enc")
    assert on_record is not None
    minutes = accounts.config.password_reset_ttl_s // 60
    link = f"{accounts.config.public_base_url}/reset-password?token={token}"
    return [
        Mail(
            on_record,
            "Reset your Kizuna password",
            f"Someone asked to reset the password of your Kizuna account.\n\n"
            f"If it was you, open this link within {minutes} minutes:\n{link}\n\n"
            f"If it was not you, ignore this message; nothing has changed.\n",
        )
    ]


async def confirm_password_reset(
    accounts: Accounts, conn: Conn, token: str, new_password: str, client_ip: str
) -> list[Mail]:
    """Set the new password with a live reset token; end every session of the account."""
    user_id = await repo.claim_password_reset(conn, hash_secret(token))
    if user_id is None:
        raise InvalidToken("the reset link is invalid, used or expired")
    user = await repo.user_by_id(conn, user_id)
    if user is None or user["disabled_at"] is not None:
        raise InvalidToken("the reset link is invalid, used or expired")
    await _set_password(accounts, conn, user, new_password, keep_session_id=None)
    await repo.expire_password_resets(conn, user_id)
    email = accounts.open(user["email_enc"], "email_enc")
    assert email is not None
    # A successful reset also clears the login throttle for this address.
    await repo.record_attempt(conn, "password", accounts.cipher.blind_index(email), client_ip, True)
    await accounts.audit_user(
        conn,
        AuditAction.USER_PASSWORD_RESET,
        user,
        client_ip=client_ip,
        details={"sessions_ended": True},
    )
    return [
        _notice(
            email,
            "Your Kizuna password was reset",
            "The password of your Kizuna account was reset and every session ended.",
        )
    ]


async def _set_password(
    accounts: Accounts,
    conn: Conn,
    user: dict[str, Any],
    password: str,
    keep_session_id: int | None,
) -> None:
    password_hash = await asyncio.to_thread(accounts.passwords.hash, password)
    await conn.execute(
        "UPDATE users SET password_hash = %s, password_changed_at = now() WHERE id = %s",
        (password_hash, user["id"]),
    )
    await repo.revoke_user_sessions(
        conn, user["id"], "password_changed", keep_session_id=keep_session_id
    )


def _notice(to: str, subject: str, text: str) -> Mail:
    return Mail(to, subject, f"{text}\n\nIf this was not you, contact support immediately.\n")


async def _user_of(conn: Conn, principal: Principal) -> dict[str, Any]:
    assert principal.user_id is not None
    user = await repo.user_by_id(conn, principal.user_id)
    if user is None:
        raise UserNotFound()
    return user


async def change_password(
    accounts: Accounts,
    conn: Conn,
    principal: Principal,
    password: str,
    code: str | None,
    new_password: str,
    client_ip: str,
) -> list[Mail]:
    """New password after re-authentication; other sessions end."""
    user = await _user_of(conn, principal)
    await accounts.reauthenticate(conn, user, password, code, client_ip)
    await _set_password(accounts, conn, user, new_password, keep_session_id=principal.session_id)
    await accounts.audit_user(conn, AuditAction.USER_PASSWORD_CHANGED, user, client_ip=client_ip)
    email = accounts.open(user["email_enc"], "email_enc")
    assert email is not None
    return [
        _notice(
            email,
            "Your Kizuna password was changed",
            "The password of your Kizuna account was changed.",
        )
    ]


async def change_email(
    accounts: Accounts,
    conn: Conn,
    principal: Principal,
    password: str,
    code: str | None,
    new_email: str,
    client_ip: str,
) -> list[Mail]:
    """New login email after re-authentication; the old address is told; others sessions end."""
    user = await _user_of(conn, principal)
    await accounts.reauthenticate(conn, user, password, code, client_ip)
    old = accounts.open(user["email_enc"], "email_enc")
    assert old is not None
    index = accounts.cipher.blind_index(new_email)
    try:
        async with conn.transaction():
            await repo.set_user_fields(
                conn,
                user["id"],
                {"email_enc": accounts.seal(new_email, "email_enc"), "email_index": index},
            )
            if user["customer_id"] is not None:
                await repo.set_customer_contact(
                    conn,
                    user["customer_id"],
                    email_enc=accounts.cipher.seal(new_email, "customers.email"),
                    email_index=index,
                )
    except UniqueViolation as exc:
        raise AccountConflict("this email address cannot be used") from exc
    await repo.revoke_user_sessions(
        conn, user["id"], "email_changed", keep_session_id=principal.session_id
    )
    await repo.expire_password_resets(conn, user["id"])
    await accounts.audit_user(conn, AuditAction.USER_EMAIL_CHANGED, user, client_ip=client_ip)
    return [
        _notice(
            old,
            "Your Kizuna login email was changed",
            f"The login email of your Kizuna account was changed to {mask_email(new_email)}.",
        ),
        _notice(
            new_email,
            "Your Kizuna login email",
            "This address is now the login email of your Kizuna account.",
        ),
    ]


async def change_phone(
    accounts: Accounts,
    conn: Conn,
    principal: Principal,
    password: str,
    code: str | None,
    new_phone: str,
    client_ip: str,
) -> list[Mail]:
    """New phone number after re-authentication; the address on record is told."""
    user = await _user_of(conn, principal)
    await accounts.reauthenticate(conn, user, password, code, client_ip)
    await repo.set_user_fields(
        conn, user["id"], {"phone_enc": accounts.seal(new_phone, "phone_enc")}
    )
    if user["customer_id"] is not None:
        await repo.set_customer_contact(
            conn, user["customer_id"], phone_enc=accounts.cipher.seal(new_phone, "customers.phone")
        )
    await accounts.audit_user(conn, AuditAction.USER_PHONE_CHANGED, user, client_ip=client_ip)
    email = accounts.open(user["email_enc"], "email_enc")
    assert email is not None
    return [
        _notice(
            email,
            "Your Kizuna phone number was changed",
            "The phone number of your Kizuna account was changed.",
        )
    ]
