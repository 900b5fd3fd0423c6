"""SQL for users, sessions, login attempts, recovery codes, password resets and API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow

Conn = AsyncConnection[DictRow]
Row = dict[str, Any]

USER_COLUMNS = """u.id, u.public_id, u.role, u.customer_id, u.email_enc, u.phone_enc,
    u.display_name_enc, u.password_hash, u.totp_secret_enc, u.totp_enabled, u.totp_last_step,
    u.created_at, u.password_changed_at, u.disabled_at"""


async def insert_user(conn: Conn, values: dict[str, Any]) -> Row:
    """Insert a user; `values` maps column names to values."""
    columns = ", ".join(values)
    placeholders = ", ".join(f"%({c})s" for c in values)
    cur = await conn.execute(
        f"INSERT INTO users AS u ({columns}) VALUES ({placeholders}) RETURNING {USER_COLUMNS}",
        values,
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def user_by_email_index(conn: Conn, email_index: bytes) -> Row | None:
    """The enabled user whose login email has this blind index."""
    cur = await conn.execute(
        f"SELECT {USER_COLUMNS} FROM users u WHERE u.email_index = %s AND u.disabled_at IS NULL",
        (email_index,),
    )
    return await cur.fetchone()


async def user_by_public_id(conn: Conn, public_id: str) -> Row | None:
    """A user by public id (enabled or not)."""
    cur = await conn.execute(
        f"SELECT {USER_COLUMNS} FROM users u WHERE u.public_id = %s", (public_id,)
    )
    return await cur.fetchone()


async def user_by_id(conn: Conn, user_id: int) -> Row | None:
    """A user by internal id."""
    cur = await conn.execute(f"SELECT {USER_COLUMNS} FROM users u WHERE u.id = %s", (user_id,))
    return await cur.fetchone()


async def users_of_customer(conn: Conn, customer_id: int) -> list[Row]:
    """Every account linked to a customer."""
    cur = await conn.execute(
        f"SELECT {USER_COLUMNS} FROM users u WHERE u.customer_id = %s", (customer_id,)
    )
    return await cur.fetchall()


async def list_users(
    conn: Conn, *, role: str | None, sort: str, descending: bool, after: Any, limit: int
) -> list[Row]:
    """A page of users ordered by an allow-listed column, then id."""
    assert sort in ("created_at", "id")
    op = "<" if descending else ">"
    order = "DESC" if descending else "ASC"
    where = ["(%(role)s::text IS NULL OR u.role = %(role)s)"]
    if after is not None:
        where.append(f"(u.{sort}, u.id) {op} (%(after_key)s, %(after_id)s)")
    cur = await conn.execute(
        f"SELECT {USER_COLUMNS} FROM users u WHERE {' AND '.join(where)} "
        f"ORDER BY u.{sort} {order}, u.id {order} LIMIT %(limit)s",
        {
            "role": role,
            "after_key": after[0] if after else None,
            "after_id": after[1] if after else None,
            "limit": limit,
        },
    )
    return await cur.fetchall()


async def set_user_fields(conn: Conn, user_id: int, values: dict[str, Any]) -> None:
    """Update columns of one user; the column names come from code, never from requests."""
    assignments = ", ".join(f"{c} = %({c})s" for c in values)
    await conn.execute(
        f"UPDATE users SET {assignments} WHERE id = %(user_id)s", {**values, "user_id": user_id}
    )


async def claim_totp_step(conn: Conn, user_id: int, step: int) -> bool:
    """Mark a TOTP time step used; False when it (or a later one) was used already."""
    cur = await conn.execute(
        "UPDATE users SET totp_last_step = %s WHERE id = %s "
        "AND (totp_last_step IS NULL OR totp_last_step < %s)",
        (step, user_id, step),
    )
    return cur.rowcount == 1


# --- sessions -----------------------------------------------------------------------------


async def insert_session(
    conn: Conn, user_id: int, refresh_hash: bytes, expires_at: datetime
) -> Row:
    """A new session for a user."""
    cur = await conn.execute(
        "INSERT INTO sessions (user_id, refresh_hash, expires_at) VALUES (%s, %s, %s) "
        "RETURNING id, public_id, expires_at",
        (user_id, refresh_hash, expires_at),
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def session_principal(conn: Conn, session_public_id: str, user_public_id: str) -> Row | None:
    """The user behind a live session (not revoked, not expired, user enabled)."""
    cur = await conn.execute(
        "SELECT s.id AS session_id, u.id AS user_id, u.public_id, u.role, u.customer_id "
        "FROM sessions s JOIN users u ON u.id = s.user_id "
        "WHERE s.public_id = %s AND u.public_id = %s AND s.revoked_at IS NULL "
        "AND s.expires_at > now() AND u.disabled_at IS NULL",
        (session_public_id, user_public_id),
    )
    return await cur.fetchone()


async def session_by_public_id(conn: Conn, session_public_id: str) -> Row | None:
    """A session with its user's state."""
    cur = await conn.execute(
        "SELECT s.*, u.disabled_at FROM sessions s JOIN users u ON u.id = s.user_id "
        "WHERE s.public_id = %s",
        (session_public_id,),
    )
    return await cur.fetchone()


async def rotate_refresh(
    conn: Conn, session_id: int, old_hash: bytes, new_hash: bytes, expires_at: datetime
) -> bool:
    """Swap the refresh hash if `old_hash` is still current; False on reuse or race."""
    cur = await conn.execute(
        "UPDATE sessions SET refresh_hash = %s, last_used_at = now(), expires_at = %s "
        "WHERE id = %s AND refresh_hash = %s AND revoked_at IS NULL AND expires_at > now()",
        (new_hash, expires_at, session_id, old_hash),
    )
    return cur.rowcount == 1


async def revoke_session(conn: Conn, session_id: int, reason: str) -> None:
    """Revoke one session."""
    await conn.execute(
        "UPDATE sessions SET revoked_at = now(), revoke_reason = %s "
        "WHERE id = %s AND revoked_at IS NULL",
        (reason, session_id),
    )


async def revoke_user_sessions(
    conn: Conn, user_id: int, reason: str, *, keep_session_id: int | None = None
) -> int:
    """Revoke every live session of a user (except one, optionally); return how many."""
    cur = await conn.execute(
        "UPDATE sessions SET revoked_at = now(), revoke_reason = %s "
        "WHERE user_id = %s AND revoked_at IS NULL AND id IS DISTINCT FROM %s",
        (reason, user_id, keep_session_id),
    )
    return cur.rowcount


async def user_sessions(conn: Conn, user_id: int) -> list[Row]:
    """Live sessions of a user, newest first."""
    cur = await conn.execute(
        "SELECT id, public_id, created_at, last_used_at, expires_at FROM sessions "
        "WHERE user_id = %s AND revoked_at IS NULL AND expires_at > now() "
        "ORDER BY created_at DESC LIMIT 100",
        (user_id,),
    )
    return await cur.fetchall()


# --- throttling ---------------------------------------------------------------------------


async def record_attempt(
    conn: Conn, kind: str, identifier: bytes, client_ip: str, succeeded: bool
) -> None:
    """Remember one attempt."""
    await conn.execute(
        "INSERT INTO login_attempts (kind, identifier, client_ip, succeeded) "
        "VALUES (%s, %s, %s, %s)",
        (kind, identifier, client_ip, succeeded),
    )


async def lock_identifier(conn: Conn, kind: str, identifier: bytes) -> None:
    """Serialize attempts on one identifier until this transaction ends (no parallel guessing)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s || encode(%s, 'hex'), 0))",
        (kind, identifier),
    )


async def recent_failures(
    conn: Conn, kind: str, identifier: bytes, client_ip: str, window_s: int
) -> Row:
    """Failures inside the window since the last success, by identifier and by address."""
    cur = await conn.execute(
        """
        WITH last_ok AS (
            SELECT max(at) AS at FROM login_attempts
            WHERE kind = %(kind)s AND identifier = %(identifier)s AND succeeded
        )
        SELECT
            (SELECT count(*) FROM login_attempts a, last_ok
             WHERE a.kind = %(kind)s AND a.identifier = %(identifier)s AND NOT a.succeeded
               AND a.at > now() - make_interval(secs => %(window)s)
               AND (last_ok.at IS NULL OR a.at > last_ok.at)) AS by_identifier,
            (SELECT min(a.at) FROM login_attempts a, last_ok
             WHERE a.kind = %(kind)s AND a.identifier = %(identifier)s AND NOT a.succeeded
               AND a.at > now() - make_interval(secs => %(window)s)
               AND (last_ok.at IS NULL OR a.at > last_ok.at)) AS oldest_by_identifier,
            (SELECT count(*) FROM login_attempts a
             WHERE a.kind = %(kind)s AND a.client_ip = %(ip)s AND NOT a.succeeded
               AND a.at > now() - make_interval(secs => %(window)s)) AS by_ip,
            now() AS now
        """,
        {"kind": kind, "identifier": identifier, "ip": client_ip, "window": window_s},
    )
    row = await cur.fetchone()
    assert row is not None
    return row


# --- recovery codes and password resets ---------------------------------------------------


async def replace_recovery_codes(conn: Conn, user_id: int, code_hashes: list[bytes]) -> None:
    """Drop a user's recovery codes and store new ones."""
    await conn.execute("DELETE FROM recovery_codes WHERE user_id = %s", (user_id,))
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO recovery_codes (user_id, code_hash) VALUES (%s, %s)",
            [(user_id, h) for h in code_hashes],
        )


async def use_recovery_code(conn: Conn, user_id: int, code_hash: bytes) -> bool:
    """Spend one recovery code; False when unknown or already used."""
    cur = await conn.execute(
        "UPDATE recovery_codes SET used_at = now() "
        "WHERE user_id = %s AND code_hash = %s AND used_at IS NULL",
        (user_id, code_hash),
    )
    return cur.rowcount == 1


async def remaining_recovery_codes(conn: Conn, user_id: int) -> int:
    """How many unused recovery codes a user has."""
    cur = await conn.execute(
        "SELECT count(*) AS n FROM recovery_codes WHERE user_id = %s AND used_at IS NULL",
        (user_id,),
    )
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def insert_password_reset(
    conn: Conn, user_id: int, token_hash: bytes, expires_at: datetime
) -> None:
    """Store a reset token hash."""
    await conn.execute(
        "INSERT INTO password_resets (user_id, token_hash, expires_at) VALUES (%s, %s, %s)",
        (user_id, token_hash, expires_at),
    )


async def claim_password_reset(conn: Conn, token_hash: bytes) -> int | None:
    """Spend a live reset token; its user id, or None when unknown, used or expired."""
    cur = await conn.execute(
        "UPDATE password_resets SET used_at = now() "
        "WHERE token_hash = %s AND used_at IS NULL AND expires_at > now() RETURNING user_id",
        (token_hash,),
    )
    row = await cur.fetchone()
    return int(row["user_id"]) if row else None


async def expire_password_resets(conn: Conn, user_id: int) -> None:
    """Make every outstanding reset token of a user unusable."""
    await conn.execute(
        "UPDATE password_resets SET used_at = now() WHERE user_id = %s AND used_at IS NULL",
        (user_id,),
    )


# --- API keys -----------------------------------------------------------------------------


async def insert_api_key(conn: Conn, values: dict[str, Any]) -> Row:
    """Store a new API key (its hash)."""
    columns = ", ".join(values)
    placeholders = ", ".join(f"%({c})s" for c in values)
    cur = await conn.execute(
        f"INSERT INTO api_keys ({columns}) VALUES ({placeholders}) "
        "RETURNING id, public_id, prefix, name, scopes, created_at, expires_at, revoked_at, "
        "last_used_at",
        values,
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def api_key_by_prefix(conn: Conn, prefix: str) -> Row | None:
    """A live API key by its public prefix."""
    cur = await conn.execute(
        "SELECT id, public_id, key_hash, scopes FROM api_keys WHERE prefix = %s "
        "AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())",
        (prefix,),
    )
    return await cur.fetchone()


async def touch_api_key(conn: Conn, key_id: int) -> None:
    """Record use, at most once a minute (avoids a write per request)."""
    await conn.execute(
        "UPDATE api_keys SET last_used_at = now() WHERE id = %s "
        "AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        (key_id,),
    )


async def list_api_keys(conn: Conn) -> list[Row]:
    """Every API key (without hashes), newest first."""
    cur = await conn.execute(
        "SELECT id, public_id, prefix, name, scopes, created_at, expires_at, revoked_at, "
        "last_used_at FROM api_keys ORDER BY created_at DESC, id DESC LIMIT 1000"
    )
    return await cur.fetchall()


async def revoke_api_key(conn: Conn, public_id: str) -> bool:
    """Revoke a key; False when unknown or already revoked."""
    cur = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE public_id = %s AND revoked_at IS NULL",
        (public_id,),
    )
    return cur.rowcount == 1


# --- customer contact -----------------------------------------------------------------------


async def set_customer_contact(
    conn: Conn,
    customer_id: int,
    *,
    email_enc: bytes | None = None,
    email_index: bytes | None = None,
    phone_enc: bytes | None = None,
) -> None:
    """Keep the customer record's email/phone equal to the account's after a verified change.

    devices/service.update_customer deliberately refuses email changes (they need
    re-authentication, which only the API can do), so the verified change is written here.
    """
    values: dict[str, Any] = {}
    if email_enc is not None:
        values |= {"email_enc": email_enc, "email_index": email_index}
    if phone_enc is not None:
        values["phone_enc"] = phone_enc
    if not values:
        return
    assignments = ", ".join(f"{c} = %({c})s" for c in values)
    await conn.execute(
        f"UPDATE customers SET {assignments} WHERE id = %(id)s AND erased_at IS NULL",
        {**values, "id": customer_id},
    )
