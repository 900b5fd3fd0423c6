"""Registry use cases: customers, devices, and who may see which device.

Every function takes an open connection; the caller owns the transaction. Personal data is
sealed with the FieldCipher before it reaches SQL and opened only on the way out.
"""

from __future__ import annotations

import secrets
from typing import Any

import structlog
from psycopg import Connection
from psycopg.errors import ForeignKeyViolation, UniqueViolation
from psycopg.rows import DictRow

from app.settings import Settings
from devices import repo
from devices.errors import Conflict, InvalidRequest, NotFound
from devices.models import (
    CustomerCreate,
    CustomerPublic,
    CustomerUpdate,
    DeviceCreate,
    DevicePublic,
    MemberPublic,
)
from store.encryption import FieldCipher

log = structlog.get_logger(__name__)

Conn = Connection[DictRow]
PERSONAL_FIELDS = ("name", "email", "phone", "address")


def cipher_from_settings(settings: Settings) -> FieldCipher:
    """The personal-data cipher configured for this deployment."""
    return FieldCipher.from_encoded(
        settings.data_encryption_key.get_secret_value(),
        [k.get_secret_value() for k in settings.data_encryption_old_keys],
    )


def customer_context(field: str) -> str:
    """The FieldCipher context of a customer field: 'name' → 'customers.name' (column name_enc).

    Every package that opens customer personal data must use this context, or decryption fails.
    """
    if field not in PERSONAL_FIELDS:
        raise ValueError(f"not a personal-data field of customers: {field!r}")
    return f"customers.{field}"


def _seal(cipher: FieldCipher, field: str, value: str | None) -> bytes | None:
    return None if value is None else cipher.seal(value, customer_context(field))


def _customer_out(cipher: FieldCipher, row: dict[str, Any]) -> CustomerPublic:
    opened = {
        f: cipher.open(bytes(row[f"{f}_enc"]), customer_context(f)) if row[f"{f}_enc"] else None
        for f in PERSONAL_FIELDS
    }
    return CustomerPublic.model_validate({**row, **opened})


def create_customer(conn: Conn, cipher: FieldCipher, new: CustomerCreate) -> CustomerPublic:
    """Register a customer; Conflict when the email is already registered."""
    values: dict[str, Any] = {
        f"{f}_enc": _seal(cipher, f, getattr(new, f)) for f in PERSONAL_FIELDS
    }
    values |= {
        "language": new.language,
        "time_zone": new.time_zone,
        "email_index": cipher.blind_index(new.email),
    }
    row = repo.insert_customer(conn, values)
    if not row:
        raise Conflict("a customer with this email already exists")
    log.info("devices.customer_created", customer_id=row["id"])
    return _customer_out(cipher, row)


def get_customer(conn: Conn, cipher: FieldCipher, customer_id: int) -> CustomerPublic:
    """One customer by internal id."""
    row = repo.customer(conn, customer_id)
    if row is None:
        raise NotFound("no such customer")
    return _customer_out(cipher, row)


def get_customer_by_public_id(conn: Conn, cipher: FieldCipher, public_id: str) -> CustomerPublic:
    """One customer by public id."""
    row = repo.customer_by_public_id(conn, public_id)
    if row is None:
        raise NotFound("no such customer")
    return _customer_out(cipher, row)


def customer_id_by_email(conn: Conn, cipher: FieldCipher, email: str) -> int:
    """The id of the customer registered with this email, found through the blind index."""
    found = repo.customer_id_by_email_index(conn, cipher.blind_index(email))
    if found is None:
        raise NotFound("no customer with this email")
    return found


def update_customer(
    conn: Conn, cipher: FieldCipher, customer_id: int, changes: CustomerUpdate
) -> CustomerPublic:
    """Change a customer's own details (not the email: that needs re-authentication)."""
    given = changes.model_dump(exclude_unset=True)
    sealed: dict[str, Any] = {}
    for field, value in given.items():
        if field in PERSONAL_FIELDS:
            sealed[f"{field}_enc"] = _seal(cipher, field, value)
        elif value is not None:
            sealed[field] = value
    repo.update_customer(conn, customer_id, sealed)
    return get_customer(conn, cipher, customer_id)


def list_customers(
    conn: Conn, cipher: FieldCipher, limit: int = 50, before_id: int | None = None
) -> list[CustomerPublic]:
    """Customers for staff, newest first."""
    return [_customer_out(cipher, r) for r in repo.list_customers(conn, limit, before_id)]


def register_device(conn: Conn, new: DeviceCreate) -> DevicePublic:
    """Register one device of a known product model; Conflict when uid or serial is taken."""
    values = new.model_dump()
    values["uid"] = new.uid or f"{new.model_id.replace('_', '-')}-{secrets.token_hex(6)}"
    try:
        with conn.transaction():
            row = repo.insert_device(conn, values)
    except ForeignKeyViolation as exc:
        raise InvalidRequest(f"unknown product model {new.model_id!r}") from exc
    if row is None:
        raise Conflict("a device with this uid or serial already exists")
    log.info("devices.registered", device_id=row["id"], model_id=new.model_id)
    return DevicePublic.model_validate(row)


def get_device(conn: Conn, uid: str) -> DevicePublic:
    """One device by uid (staff view)."""
    row = repo.device_by_uid(conn, uid)
    if row is None:
        raise NotFound("no such device")
    return DevicePublic.model_validate(row)


def device_visible_to(conn: Conn, uid: str, customer_id: int) -> DevicePublic | None:
    """The device if this customer owns it or it is shared with them now, else None."""
    row = repo.device_visible_to(conn, uid, customer_id)
    return DevicePublic.model_validate(row) if row else None


def devices_visible_to(
    conn: Conn, customer_id: int, limit: int = 100, after_uid: str | None = None
) -> list[DevicePublic]:
    """Every device this customer owns or shares now, with their role on each."""
    rows = repo.devices_of_customer(conn, customer_id, limit, after_uid)
    return [DevicePublic.model_validate(r) for r in rows]


def list_devices(
    conn: Conn, model_id: str | None = None, limit: int = 100, after_uid: str | None = None
) -> list[DevicePublic]:
    """Every device (staff view), by uid."""
    rows = repo.list_devices(conn, model_id, limit, after_uid)
    return [DevicePublic.model_validate(r) for r in rows]


def rename_device(conn: Conn, uid: str, nickname: str | None) -> DevicePublic:
    """Set a device's nickname."""
    device = get_device(conn, uid)
    repo.set_nickname(conn, device.id, nickname)
    return get_device(conn, uid)


def _locked_device(conn: Conn, uid: str) -> dict[str, Any]:
    row = repo.device_by_uid(conn, uid, lock=True)
    if row is None:
        raise NotFound("no such device")
    return row


def _require_customer(conn: Conn, customer_id: int) -> None:
    if repo.customer(conn, customer_id) is None:
        raise NotFound("no such customer")


def assign_owner(conn: Conn, uid: str, customer_id: int) -> None:
    """Give an unowned device its first owner; Conflict when it already has one."""
    device_id = _add_member(
        conn, uid, customer_id, "owner", "the device already has an owner (transfer it instead)"
    )
    log.info("devices.owner_assigned", device_id=device_id)


def share(conn: Conn, uid: str, customer_id: int) -> None:
    """Share a device with a family member; Conflict when they already have access."""
    device_id = _add_member(
        conn, uid, customer_id, "family", "this person already has access to the device"
    )
    log.info("devices.shared", device_id=device_id)


def _add_member(conn: Conn, uid: str, customer_id: int, role: str, conflict: str) -> int:
    """Add an active membership under the device lock; Conflict(`conflict`) when taken."""
    with conn.transaction():
        device = _locked_device(conn, uid)
        _require_customer(conn, customer_id)
        try:
            repo.add_member(conn, device["id"], customer_id, role)
        except UniqueViolation as exc:
            raise Conflict(conflict) from exc
    return int(device["id"])


def unshare(conn: Conn, uid: str, customer_id: int) -> None:
    """End a family member's access at once; NotFound when they had none."""
    with conn.transaction():
        device = _locked_device(conn, uid)
        if repo.end_members(conn, device["id"], customer_id, ("family",)) == 0:
            raise NotFound("this person has no shared access to the device")
    log.info("devices.unshared", device_id=device["id"])


def transfer(conn: Conn, uid: str, new_owner_id: int, *, keep_family: bool = False) -> None:
    """Hand a device to a new owner; the old owner (and family, unless kept) lose access now."""
    with conn.transaction():
        device = _locked_device(conn, uid)
        _require_customer(conn, new_owner_id)
        current = repo.device_visible_to(conn, uid, new_owner_id)
        if current is not None and current["role"] == "owner":
            raise Conflict("this customer already owns the device")
        ending = ("owner",) if keep_family else ("owner", "family")
        repo.end_members(conn, device["id"], None, ending)
        repo.end_members(conn, device["id"], new_owner_id, ("family",))
        repo.add_member(conn, device["id"], new_owner_id, "owner")
    log.info("devices.transferred", device_id=device["id"])


def members(conn: Conn, uid: str, *, history: bool = False) -> list[MemberPublic]:
    """Who has access to a device now (or ever, with history)."""
    device = get_device(conn, uid)
    return [MemberPublic.model_validate(r) for r in repo.members(conn, device.id, history=history)]
