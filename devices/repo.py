"""SQL of the registry: customers, devices and who may see which device."""

from __future__ import annotations

from typing import Any

from psycopg import Connection
from psycopg.rows import DictRow

Conn = Connection[DictRow]
Row = dict[str, Any]

DEVICE_COLUMNS = "d.id, d.uid, d.serial, d.model_id, d.firmware, d.nickname, d.created_at, "
DEVICE_COLUMNS += "d.decommissioned_at"


def insert_customer(conn: Conn, values: Row) -> Row:
    """Insert a customer (personal fields already sealed)."""
    row = conn.execute(
        """
        INSERT INTO customers (language, time_zone, name_enc, email_enc, phone_enc, address_enc,
                               email_index)
        VALUES (%(language)s, %(time_zone)s, %(name_enc)s, %(email_enc)s, %(phone_enc)s,
                %(address_enc)s, %(email_index)s)
        ON CONFLICT (email_index) DO NOTHING
        RETURNING *
        """,
        values,
    ).fetchone()
    return dict(row) if row else {}


def customer(conn: Conn, customer_id: int) -> Row | None:
    """One customer row by internal id (erased customers excluded)."""
    return conn.execute(
        "SELECT * FROM customers WHERE id = %s AND erased_at IS NULL", (customer_id,)
    ).fetchone()


def customer_by_public_id(conn: Conn, public_id: str) -> Row | None:
    """One customer row by public id."""
    return conn.execute(
        "SELECT * FROM customers WHERE public_id::text = %s AND erased_at IS NULL", (public_id,)
    ).fetchone()


def customer_id_by_email_index(conn: Conn, email_index: bytes) -> int | None:
    """The id of the customer with this email blind index."""
    row = conn.execute(
        "SELECT id FROM customers WHERE email_index = %s AND erased_at IS NULL", (email_index,)
    ).fetchone()
    return int(row["id"]) if row else None


def update_customer(conn: Conn, customer_id: int, changes: Row) -> None:
    """Set the given (already sealed) columns of a customer."""
    allowed = {"name_enc", "phone_enc", "address_enc", "language", "time_zone"}
    columns = [c for c in changes if c in allowed]
    if not columns:
        return
    assignments = ", ".join(f"{c} = %({c})s" for c in columns)
    conn.execute(
        f"UPDATE customers SET {assignments} WHERE id = %(id)s", {**changes, "id": customer_id}
    )


def list_customers(conn: Conn, limit: int, before_id: int | None) -> list[Row]:
    """Customers, newest first, continuing below `before_id`."""
    return conn.execute(
        """
        SELECT * FROM customers
        WHERE erased_at IS NULL AND (%(before)s::bigint IS NULL OR id < %(before)s)
        ORDER BY id DESC LIMIT %(limit)s
        """,
        {"before": before_id, "limit": limit},
    ).fetchall()


def insert_device(conn: Conn, values: Row) -> Row | None:
    """Insert a device; None when its uid or serial is taken."""
    return conn.execute(
        """
        INSERT INTO devices AS d (uid, serial, model_id, firmware, nickname, latitude, longitude)
        VALUES (%(uid)s, %(serial)s, %(model_id)s, %(firmware)s, %(nickname)s,
                %(latitude)s, %(longitude)s)
        ON CONFLICT DO NOTHING
        RETURNING """
        + DEVICE_COLUMNS,
        values,
    ).fetchone()


def device_by_uid(conn: Conn, uid: str, *, lock: bool = False) -> Row | None:
    """One device by uid (optionally locked for an ownership change)."""
    suffix = " FOR UPDATE" if lock else ""
    return conn.execute(
        f"SELECT {DEVICE_COLUMNS} FROM devices d WHERE d.uid = %s{suffix}", (uid,)
    ).fetchone()


def device_visible_to(conn: Conn, uid: str, customer_id: int) -> Row | None:
    """The device with this uid if the customer currently owns or shares it, with their role."""
    return conn.execute(
        f"""
        SELECT {DEVICE_COLUMNS}, o.role FROM devices d
        JOIN device_ownerships o ON o.device_id = d.id
        WHERE d.uid = %s AND o.customer_id = %s AND o.ended_at IS NULL
        """,
        (uid, customer_id),
    ).fetchone()


def devices_of_customer(
    conn: Conn, customer_id: int, limit: int, after_uid: str | None
) -> list[Row]:
    """Devices the customer currently owns or shares, with their role, by uid."""
    return conn.execute(
        f"""
        SELECT {DEVICE_COLUMNS}, o.role FROM device_ownerships o
        JOIN devices d ON d.id = o.device_id
        WHERE o.customer_id = %(customer)s AND o.ended_at IS NULL
          AND (%(after)s::text IS NULL OR d.uid > %(after)s)
        ORDER BY d.uid LIMIT %(limit)s
        """,
        {"customer": customer_id, "after": after_uid, "limit": limit},
    ).fetchall()


def list_devices(conn: Conn, model_id: str | None, limit: int, after_uid: str | None) -> list[Row]:
    """Every device (for staff), optionally of one model, by uid."""
    return conn.execute(
        f"""
        SELECT {DEVICE_COLUMNS} FROM devices d
        WHERE (%(model)s::text IS NULL OR d.model_id = %(model)s)
          AND (%(after)s::text IS NULL OR d.uid > %(after)s)
        ORDER BY d.uid LIMIT %(limit)s
        """,
        {"model": model_id, "limit": limit, "after": after_uid},
    ).fetchall()


def set_nickname(conn: Conn, device_id: int, nickname: str | None) -> None:
    """Rename a device."""
    conn.execute("UPDATE devices SET nickname = %s WHERE id = %s", (nickname, device_id))


def members(conn: Conn, device_id: int, *, history: bool) -> list[Row]:
    """Current (or all) memberships of a device, with the customer's public id."""
    return conn.execute(
        """
        SELECT c.public_id AS customer_public_id, o.customer_id, o.role, o.started_at,
               o.ended_at
        FROM device_ownerships o JOIN customers c ON c.id = o.customer_id
        WHERE o.device_id = %s AND (%s OR o.ended_at IS NULL)
        ORDER BY o.started_at, o.id
        """,
        (device_id, history),
    ).fetchall()


def add_member(conn: Conn, device_id: int, customer_id: int, role: str) -> None:
    """Start a membership."""
    conn.execute(
        "INSERT INTO device_ownerships (device_id, customer_id, role) VALUES (%s, %s, %s)",
        (device_id, customer_id, role),
    )


def end_members(conn: Conn, device_id: int, customer_id: int | None, roles: tuple[str, ...]) -> int:
    """End active memberships of a device (one person's, or everyone's with these roles)."""
    cursor = conn.execute(
        """
        UPDATE device_ownerships SET ended_at = now()
        WHERE device_id = %s AND ended_at IS NULL AND role = ANY(%s)
          AND (%s::bigint IS NULL OR customer_id = %s)
        """,
        (device_id, list(roles), customer_id, customer_id),
    )
    return cursor.rowcount
