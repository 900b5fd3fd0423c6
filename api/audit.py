"""The append-only audit log: what happened, who did it, to which object, and how it ended.

Every event names a domain action from `AuditAction` (`device.credential_rotated`, not "a POST
happened"), the actor (kind, public id, role), the target (kind, public id) and the outcome
(`success`, `denied`, `failure`). Personal data never goes in: people and objects appear by
their public ids, `details` holds only ids, counts and names of things (never emails, names,
phone numbers, addresses or URLs), and the client's address is stored as a keyed pseudonym
(`client_reference`), because nothing in this table can ever be erased.

Routes declare the action they perform (api/audit_trail.py) and write the success inside their
own transaction; refusals and failures are written by the middleware (api/middleware.py).
Synchronous callers (services, the dashboard, the CLI) use `record_sync`.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from enum import StrEnum
from typing import Any

from psycopg import AsyncConnection, Connection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from api.security.principal import Principal

INSERT_SQL = (
    "INSERT INTO audit_log (actor_kind, actor_id, actor_role, action, target_kind, target_id, "
    "outcome, client_ref, details) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
CLIENT_KEY_LABEL = b"kizuna-audit-client-reference"

Actor = tuple[str, str | None, str | None]


class AuditAction(StrEnum):
    """Every action the platform audits: `<object>.<what happened to it>`."""

    # Sign-in and sessions (target: the user)
    USER_LOGGED_IN = "user.logged_in"
    USER_LOGGED_OUT = "user.logged_out"
    USER_REAUTHENTICATED = "user.reauthenticated"
    SESSION_ENDED = "session.ended"
    SESSION_REFRESH_TOKEN_REUSED = "session.refresh_token_reused"  # noqa: S105 (an action name)
    # Accounts (target: the user)
    USER_CREATED = "user.created"
    USER_DISABLED = "user.disabled"
    USER_VIEWED = "user.viewed"
    USERS_LISTED = "user.listed"
    USER_PASSWORD_RESET_REQUESTED = "user.password_reset_requested"  # noqa: S105 (an action name)
    USER_PASSWORD_RESET = "user.password_reset"  # noqa: S105 (an action name)
    USER_PASSWORD_CHANGED = "user.password_changed"  # noqa: S105 (an action name)
    USER_EMAIL_CHANGED = "user.email_changed"
    USER_PHONE_CHANGED = "user.phone_changed"
    USER_MFA_ENROLLMENT_STARTED = "user.mfa_enrollment_started"
    USER_MFA_ENROLLED = "user.mfa_enrolled"
    USER_MFA_DISABLED = "user.mfa_disabled"
    USER_RECOVERY_CODES_REGENERATED = "user.recovery_codes_regenerated"
    SESSIONS_LISTED = "session.listed"
    # Integrations (target: the API key)
    API_KEY_CREATED = "api_key.created"
    API_KEY_REVOKED = "api_key.revoked"
    # Customers and their personal data (target: the customer)
    CUSTOMER_CREATED = "customer.created"
    CUSTOMER_UPDATED = "customer.updated"
    CUSTOMER_VIEWED = "customer.viewed"
    CUSTOMERS_LISTED = "customer.listed"
    CUSTOMER_DEVICES_LISTED = "customer.devices_listed"
    CUSTOMER_ERASED = "customer.erased"
    PERSONAL_DATA_REKEYED = "personal_data.rekeyed"
    # Devices (target: the device)
    DEVICE_REGISTERED = "device.registered"
    DEVICES_IMPORTED = "device.imported"
    DEVICE_RENAMED = "device.renamed"
    DEVICE_OWNER_ASSIGNED = "device.owner_assigned"
    DEVICE_SHARED = "device.shared"
    DEVICE_UNSHARED = "device.unshared"
    DEVICE_TRANSFERRED = "device.transferred"
    DEVICE_DESIRED_CHANGED = "device.desired_changed"
    DEVICE_PROVISIONED = "device.provisioned"
    DEVICE_CREDENTIAL_ROTATED = "device.credential_rotated"
    DEVICE_REVOKED = "device.revoked"
    DEVICE_COMMAND_SENT = "device.command_sent"
    # Rules and alerts (target: the rule / the alert)
    RULE_CREATED = "rule.created"
    RULE_UPDATED = "rule.updated"
    RULE_DELETED = "rule.deleted"
    ALERT_ACKNOWLEDGED = "alert.acknowledged"
    ALERT_CLEARED = "alert.cleared"
    # A customer's notifications (target: the customer / the feed post)
    NOTIFICATION_PROFILE_UPDATED = "notification_profile.updated"
    WEBHOOK_CREATED = "webhook.created"
    WEBHOOK_UPDATED = "webhook.updated"
    WEBHOOK_DELETED = "webhook.deleted"
    PREFERENCE_UPDATED = "preference.updated"
    PREFERENCE_CLEARED = "preference.cleared"
    FEED_POST_READ = "feed_post.read"
    FEED_POST_UNREAD = "feed_post.unread"
    FEED_POST_REACTED = "feed_post.reacted"


def client_reference(secret_key: str, address: str) -> str:
    """A keyed pseudonym of a client address: stable for one address, unreadable without the key.

    HMAC-SHA-256 under a key derived from the secret key (so it differs from every other use
    of that key), shortened to 128 bits. Whoever holds the key can test an address against it,
    which is how operators search the log by address; a copy of the table alone tells nothing.
    """
    key = hmac.new(secret_key.encode(), CLIENT_KEY_LABEL, hashlib.sha256).digest()
    digest = hmac.new(key, address.encode(), hashlib.sha256).hexdigest()
    return f"c-{digest[:32]}"


def customer_public_id(conn: Connection[DictRow], customer_id: int) -> str | None:
    """A customer's public id: events name people by public ids, never by internal ids."""
    row = conn.execute("SELECT public_id FROM customers WHERE id = %s", (customer_id,)).fetchone()
    return None if row is None else str(row["public_id"])


def _row(
    action: str,
    principal: Principal | None,
    target_kind: str | None,
    target_id: str | None,
    outcome: str,
    client: str | None,
    details: dict[str, Any] | None,
    actor: Actor | None,
) -> tuple[Any, ...]:
    if principal is not None:
        actor = (principal.kind, principal.public_id, principal.role)
    kind, actor_id, role = actor or ("anonymous", None, None)
    return (
        kind,
        actor_id,
        role,
        str(action),
        target_kind,
        target_id,
        outcome,
        client,
        Jsonb(details or {}),
    )


async def record(
    conn: AsyncConnection[DictRow],
    action: str,
    *,
    principal: Principal | None = None,
    actor: Actor | None = None,
    target_kind: str | None = None,
    target_id: str | None = None,
    outcome: str = "success",
    client: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one event inside the caller's transaction, so it commits with the change.

    `client` is a `client_reference`, never a raw address.
    """
    await conn.execute(
        INSERT_SQL,
        _row(action, principal, target_kind, target_id, outcome, client, details, actor),
    )


def record_sync(
    conn: Connection[DictRow],
    action: str,
    *,
    principal: Principal | None = None,
    actor: Actor | None = None,
    target_kind: str | None = None,
    target_id: str | None = None,
    outcome: str = "success",
    client: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """`record` for synchronous callers (routes, services, CLI); actor 'system' by default."""
    conn.execute(
        INSERT_SQL,
        _row(
            action,
            principal,
            target_kind,
            target_id,
            outcome,
            client,
            details,
            actor or ("system", None, None),
        ),
    )


async def query(
    conn: AsyncConnection[DictRow],
    *,
    since: datetime,
    until: datetime,
    action_prefix: str | None,
    actor_id: str | None,
    target_id: str | None,
    client: str | None,
    descending: bool,
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """A page of events in a time range, filtered, ordered by time then id."""
    op, order = ("<", "DESC") if descending else (">", "ASC")
    where = ["at >= %(since)s", "at < %(until)s"]
    if action_prefix:
        where.append("action LIKE %(action_like)s")
    if actor_id:
        where.append("actor_id = %(actor_id)s")
    if target_id:
        where.append("target_id = %(target_id)s")
    if client:
        where.append("client_ref = %(client)s")
    if after is not None:
        where.append(f"(at, id) {op} (%(after_at)s, %(after_id)s)")
    cur = await conn.execute(
        f"SELECT id, at, actor_kind, actor_id, actor_role, action, target_kind, target_id, "
        f"outcome, client_ref, details FROM audit_log WHERE {' AND '.join(where)} "
        f"ORDER BY at {order}, id {order} LIMIT %(limit)s",
        {
            "since": since,
            "until": until,
            "action_like": (action_prefix or "").replace("%", r"\%").replace("_", r"\_") + "%",
            "actor_id": actor_id,
            "target_id": target_id,
            "client": client,
            "after_at": after[0] if after else None,
            "after_id": after[1] if after else None,
            "limit": limit,
        },
    )
    return await cur.fetchall()
