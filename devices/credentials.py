"""Per-device MQTT credentials: a random secret shown once, stored only as an argon2id hash.

The broker enforces them (dynsec keeps its own salted hash and each device's ACLs); the
platform keeps which credential is current, so rotation and revocation are recorded.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from typing import Protocol

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from psycopg import Connection
from psycopg.rows import DictRow

from app.broker_url import MqttEndpoint
from app.settings import Settings
from devices.dynsec import DynsecAdmin
from devices.errors import BrokerRefused, Conflict, NotFound
from devices.models import ProvisionedCredential

log = structlog.get_logger(__name__)

Conn = Connection[DictRow]
SECRET_BYTES = 32
_HASHER = PasswordHasher()


class CredentialBroker(Protocol):
    """The broker side of device credentials."""

    def create_device(self, prefix: str, uid: str, password: str) -> None: ...

    def set_password(self, username: str, password: str) -> None: ...

    def delete_device(self, uid: str) -> None: ...


class UnenforcedBroker:
    """For an anonymous development broker: credentials are issued but not enforced."""

    def create_device(self, prefix: str, uid: str, password: str) -> None:
        """Nothing to do on an anonymous broker."""
        log.warning("devices.credentials_not_enforced", reason="broker_auth is none")

    def set_password(self, username: str, password: str) -> None:
        """Nothing to do on an anonymous broker."""

    def delete_device(self, uid: str) -> None:
        """Nothing to do on an anonymous broker."""


@contextlib.contextmanager
def credential_broker(settings: Settings) -> Iterator[CredentialBroker]:
    """The broker administrator these settings ask for, connected for the block."""
    config = settings.devices
    if config.broker_auth == "none" or settings.mqtt_url is None:
        yield UnenforcedBroker()
        return
    broker = MqttEndpoint.from_url(settings.mqtt_url)
    admin = MqttEndpoint(
        broker.host,
        broker.port,
        config.dynsec_admin_username,
        config.dynsec_admin_password,
        broker.tls,
    )
    with DynsecAdmin(admin) as connected:
        yield connected


def _device_id(conn: Conn, uid: str) -> int:
    row = conn.execute("SELECT id FROM devices WHERE uid = %s", (uid,)).fetchone()
    if row is None:
        raise NotFound("no such device")
    return int(row["id"])


def _issue(conn: Conn, device_id: int, uid: str, prefix: str) -> ProvisionedCredential:
    secret = secrets.token_urlsafe(SECRET_BYTES)
    conn.execute(
        "INSERT INTO device_credentials (device_id, username, secret_hash) VALUES (%s, %s, %s)",
        (device_id, uid, _HASHER.hash(secret)),
    )
    return ProvisionedCredential(
        uid=uid, username=uid, client_id=uid, password=secret, topic_prefix=prefix
    )


def provision(conn: Conn, broker: CredentialBroker, prefix: str, uid: str) -> ProvisionedCredential:
    """First credential of a device; Conflict when it has one (rotate instead). Commits."""
    with conn.transaction():
        device_id = _device_id(conn, uid)
        if _active(conn, device_id):
            raise Conflict("the device already has a credential; rotate it instead")
        issued = _issue(conn, device_id, uid, prefix)
        broker.create_device(prefix, uid, issued.password)
    conn.commit()
    log.info("devices.provisioned", device_id=device_id)
    return issued


def rotate(conn: Conn, broker: CredentialBroker, prefix: str, uid: str) -> ProvisionedCredential:
    """Replace a device's credential; the old one stops working at once. Commits."""
    with conn.transaction():
        device_id = _device_id(conn, uid)
        if not _revoke_rows(conn, device_id):
            raise NotFound("the device has no credential to rotate; provision it")
        issued = _issue(conn, device_id, uid, prefix)
        try:
            broker.set_password(uid, issued.password)
        except BrokerRefused:
            # The broker lost the client (restored store, auth switched on later): recreate it.
            broker.create_device(prefix, uid, issued.password)
    conn.commit()
    log.info("devices.credential_rotated", device_id=device_id)
    return issued


def revoke(conn: Conn, broker: CredentialBroker, uid: str) -> None:
    """Revoke a device's credential and disconnect it now. Commits."""
    with conn.transaction():
        device_id = _device_id(conn, uid)
        if not _revoke_rows(conn, device_id):
            raise NotFound("the device has no active credential")
        broker.delete_device(uid)
    conn.commit()
    log.info("devices.credential_revoked", device_id=device_id)


def verify_secret(conn: Conn, uid: str, secret: str) -> bool:
    """True when `secret` is the device's current credential."""
    row = conn.execute(
        """
        SELECT c.secret_hash FROM device_credentials c JOIN devices d ON d.id = c.device_id
        WHERE d.uid = %s AND c.revoked_at IS NULL
        """,
        (uid,),
    ).fetchone()
    if row is None:
        return False
    try:
        return _HASHER.verify(row["secret_hash"], secret)
    except (VerificationError, InvalidHashError):
        return False


def has_credential(conn: Conn, uid: str) -> bool:
    """True when the device has an active credential."""
    return _active(conn, _device_id(conn, uid))


def _active(conn: Conn, device_id: int) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM device_credentials WHERE device_id = %s AND revoked_at IS NULL",
            (device_id,),
        ).fetchone()
        is not None
    )


def _revoke_rows(conn: Conn, device_id: int) -> int:
    cursor = conn.execute(
        """
        UPDATE device_credentials SET revoked_at = now()
        WHERE device_id = %s AND revoked_at IS NULL
        """,
        (device_id,),
    )
    return cursor.rowcount
