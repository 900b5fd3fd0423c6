"""Demo data: product models, rule packs, households with their products, and logins.

Everything goes through the domain services, the same way the API would do it. Logins get
random passwords on first run, kept in `<data_dir>/demo-logins.json` (mode 0600) so a
restarted demo keeps working with the same ones.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

import pyotp
import structlog
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from api.app import build_accounts
from app.settings import Settings
from devices import service as devices
from devices.catalog_sync import sync_product_models
from devices.errors import NotFound
from devices.models import CustomerCreate, DeviceCreate
from rules.service import install_builtin_packs
from simulator.households import DemoDevice, DemoOwner, demo_devices
from store.db import connect
from store.encryption import FieldCipher

log = structlog.get_logger(__name__)

LOGINS_FILE = "demo-logins.json"
OPERATOR_EMAIL = "operator@kizuna.example"


@dataclass(frozen=True)
class DemoLogin:
    """A login printed for the person running the demo."""

    role: str
    email: str
    password: str
    totp_secret: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class DemoSeed:
    """What the demo registered: the simulated devices and the logins to try."""

    devices: list[DemoDevice]
    logins: list[DemoLogin]


def seed_demo(settings: Settings, device_count: int) -> DemoSeed:
    """Register the demo fleet and its people (idempotent across restarts)."""
    assert settings.database_url is not None
    fleet = demo_devices(device_count)
    logins_path = settings.data_dir / LOGINS_FILE
    with connect(settings.database_url) as conn:
        sync_product_models(conn)
        install_builtin_packs(conn)
        conn.commit()
        registered = _register_households(conn, settings, fleet)
        conn.commit()
    if logins_path.exists():
        logins = [DemoLogin(**item) for item in json.loads(logins_path.read_text())]
    else:
        logins = asyncio.run(_create_logins(settings, registered))
        _save_logins(logins_path, logins)
    log.info("demo.seeded", devices=len(fleet), logins=len(logins))
    return DemoSeed(devices=fleet, logins=logins)


def _register_households(
    conn: devices.Conn, settings: Settings, fleet: list[DemoDevice]
) -> dict[str, tuple[DemoOwner, int]]:
    """Customers and devices that are not registered yet; returns owner key → customer id."""
    cipher = devices.cipher_from_settings(settings)
    owners: dict[str, tuple[DemoOwner, int]] = {}
    for device in fleet:
        owner = device.owner
        if owner.key not in owners:
            owners[owner.key] = (owner, _customer_id(conn, cipher, owner))
        if _device_exists(conn, device.uid):
            continue
        devices.register_device(
            conn,
            DeviceCreate(
                uid=device.uid,
                serial=device.serial,
                model_id=device.model_id,
                nickname=device.nickname,
                firmware="1.4.2",
                latitude=device.latitude,
                longitude=device.longitude,
            ),
        )
        devices.assign_owner(conn, device.uid, owners[owner.key][1])
    return owners


def _customer_id(conn: devices.Conn, cipher: FieldCipher, owner: DemoOwner) -> int:
    try:
        return devices.customer_id_by_email(conn, cipher, owner.email)
    except NotFound:
        created = devices.create_customer(
            conn,
            cipher,
            CustomerCreate(
                name=owner.name,
                email=owner.email,
                language=owner.language,
                time_zone=owner.time_zone,
            ),
        )
        return created.id


def _device_exists(conn: devices.Conn, uid: str) -> bool:
    try:
        devices.get_device(conn, uid)
    except NotFound:
        return False
    return True


async def _create_logins(
    settings: Settings, owners: dict[str, tuple[DemoOwner, int]]
) -> list[DemoLogin]:
    """An operator with two-factor authentication, and a portal login per language."""
    assert settings.database_url is not None
    accounts = build_accounts(settings)
    totp_secret = pyotp.random_base32()
    logins = [DemoLogin("operator", OPERATOR_EMAIL, _password(), totp_secret)]
    first_by_language: dict[str, DemoOwner] = {}
    for owner, _ in owners.values():
        first_by_language.setdefault(owner.language, owner)
    logins += [
        DemoLogin("customer", owner.email, _password(), None, owner.language)
        for owner in first_by_language.values()
    ]
    customer_ids = {owner.email: cid for owner, cid in owners.values()}
    async with await AsyncConnection.connect(settings.database_url, row_factory=dict_row) as conn:
        for login in logins:
            await accounts.create_user(
                conn,
                role=login.role,
                email=login.email,
                password=login.password,
                totp_secret=login.totp_secret,
                customer_id=customer_ids.get(login.email) if login.role == "customer" else None,
            )
        await conn.commit()
    return logins


def _password() -> str:
    return secrets.token_urlsafe(12)


def _save_logins(path: Path, logins: list[DemoLogin]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps([asdict(login) for login in logins], ensure_ascii=False, indent=2))
