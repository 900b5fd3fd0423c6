"""Personal data: erasure of a customer ("forget me") and re-encryption after key rotation."""

from __future__ import annotations

from typing import Any

import structlog
from psycopg import Connection
from psycopg.rows import DictRow

from api import audit
from api.accounts.errors import UserNotFound
from api.accounts.service import Conn
from api.audit import AuditAction
from api.security.principal import Principal
from notify import repo as notify_repo
from store.encryption import FieldCipher

log = structlog.get_logger(__name__)

USER_SEALED = ("email_enc", "phone_enc", "display_name_enc", "totp_secret_enc")
CUSTOMER_SEALED = ("name", "email", "phone", "address")


async def erase_customer(conn: Conn, customer_id: int, principal: Principal) -> dict[str, int]:
    """Remove a customer's personal data, end every ownership and share, close their accounts.

    The customer row stays (erased_at set, every personal column NULL) so telemetry and audit
    rows keep their references without pointing at a person.
    """
    cur = await conn.execute(
        "UPDATE customers SET name_enc = NULL, email_enc = NULL, phone_enc = NULL, "
        "address_enc = NULL, email_index = NULL, erased_at = now() "
        "WHERE id = %s AND erased_at IS NULL RETURNING public_id",
        (customer_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise UserNotFound("no such customer")
    cur = await conn.execute(
        "UPDATE device_ownerships SET ended_at = now() WHERE customer_id = %s AND ended_at IS NULL",
        (customer_id,),
    )
    detached = cur.rowcount
    cur = await conn.execute(
        "UPDATE users SET email_enc = NULL, email_index = NULL, phone_enc = NULL, "
        "display_name_enc = NULL, password_hash = NULL, totp_secret_enc = NULL, "
        "totp_enabled = false, disabled_at = coalesce(disabled_at, now()) "
        "WHERE customer_id = %s RETURNING id",
        (customer_id,),
    )
    user_ids = [r["id"] for r in await cur.fetchall()]
    for table in ("recovery_codes", "password_resets"):
        await conn.execute(f"DELETE FROM {table} WHERE user_id = ANY(%s)", (user_ids,))
    await conn.execute(
        "UPDATE sessions SET revoked_at = now(), revoke_reason = 'erased' "
        "WHERE user_id = ANY(%s) AND revoked_at IS NULL",
        (user_ids,),
    )
    # What the person's products told them (names, values, their home's routine) goes too.
    for statement in notify_repo.ERASE_CUSTOMER_STATEMENTS:
        await conn.execute(statement, (customer_id,))
    counts = {"devices_detached": detached, "accounts_closed": len(user_ids)}
    await audit.record(
        conn,
        AuditAction.CUSTOMER_ERASED,
        principal=principal,
        target_kind="customer",
        target_id=str(row["public_id"]),
        details=counts,
    )
    log.info("accounts.customer_erased", **counts)
    return counts


def rotate_personal_data(conn: Connection[DictRow], cipher: FieldCipher) -> dict[str, int]:
    """Re-seal every personal-data value with the current key and recompute blind indexes.

    Run after restarting with a new `data_encryption_key` (old key listed in
    `data_encryption_old_keys`); until it finishes, logins by email cannot find accounts,
    because blind indexes are keyed by the current key. Idempotent; one transaction.
    """
    with conn.transaction():
        users = _rotate_table(
            conn, cipher, "users", {c: f"users.{c}" for c in USER_SEALED}, index_from="email_enc"
        )
        customers = _rotate_table(
            conn,
            cipher,
            "customers",
            {f"{f}_enc": f"customers.{f}" for f in CUSTOMER_SEALED},
            index_from="email_enc",
        )
    audit.record_sync(
        conn, AuditAction.PERSONAL_DATA_REKEYED, details={"users": users, "customers": customers}
    )
    return {"users": users, "customers": customers}


def _rotate_table(
    conn: Connection[DictRow],
    cipher: FieldCipher,
    table: str,
    columns: dict[str, str],
    index_from: str,
) -> int:
    names = ", ".join(columns)
    rows = conn.execute(f"SELECT id, email_index, {names} FROM {table} FOR UPDATE").fetchall()
    changed = 0
    for row in rows:
        update = _resealed(cipher, row, columns)
        sealed_email = row[index_from]
        if sealed_email is not None:
            email = cipher.open(bytes(sealed_email), columns[index_from])
            index = cipher.blind_index(email)
            if row["email_index"] is None or bytes(row["email_index"]) != index:
                update["email_index"] = index
        if update:
            assignments = ", ".join(f"{c} = %({c})s" for c in update)
            conn.execute(
                f"UPDATE {table} SET {assignments} WHERE id = %(id)s", {**update, "id": row["id"]}
            )
            changed += 1
    return changed


def _resealed(cipher: FieldCipher, row: dict[str, Any], columns: dict[str, str]) -> dict[str, Any]:
    update: dict[str, Any] = {}
    for column, context in columns.items():
        value = row[column]
        if value is not None and cipher.needs_rotation(bytes(value)):
            update[column] = cipher.seal(cipher.open(bytes(value), context), context)
    return update
