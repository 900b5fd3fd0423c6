"""A small, known fleet for dashboard tests: two customers, their products, alerts and messages."""

from __future__ import annotations

import asyncio
import json
import math
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from api.app import build_accounts
from api.security.tokens import verify_token
from app.settings import Settings
from devices import service as devices_service
from devices.catalog import builtin_models
from devices.catalog_sync import sync_product_models
from devices.models import CustomerCreate, DeviceCreate
from store.telemetry import TelemetryRow, ensure_slots, insert_telemetry

PASSWORD = "correct horse battery staple 42"
TOKYO = (35.68, 139.76)


@dataclass
class SeedUser:
    """An account the tests sign in with."""

    email: str
    totp_secret: str
    customer_id: int | None = None
    user_id: int = 0

    def code(self) -> str:
        """The current one-time code."""
        return pyotp.TOTP(self.totp_secret).now()


@dataclass
class Fleet:
    """What was seeded, for assertions."""

    operator: SeedUser
    alice: SeedUser
    bob: SeedUser
    alice_devices: list[str] = field(default_factory=list)
    bob_devices: list[str] = field(default_factory=list)
    alert_ids: list[int] = field(default_factory=list)
    alice_public_id: str = ""


def create_users(settings: Settings, alice_id: int, bob_id: int) -> tuple[SeedUser, ...]:
    """Operator and two customer accounts in the API's account store, all with TOTP."""
    accounts = build_accounts(settings)
    users = (
        SeedUser(f"ops-{secrets.token_hex(3)}@example.com", pyotp.random_base32()),
        SeedUser(f"alice-{secrets.token_hex(3)}@example.com", pyotp.random_base32(), alice_id),
        SeedUser(f"bob-{secrets.token_hex(3)}@example.com", pyotp.random_base32(), bob_id),
    )
    names = ("Operator Oda", "Alice", "Bob")

    async def create() -> None:
        assert settings.database_url is not None
        conn = await AsyncConnection.connect(settings.database_url, row_factory=dict_row)
        async with conn:
            for user, name in zip(users, names, strict=True):
                row = await accounts.create_user(
                    conn,
                    role="customer" if user.customer_id else "operator",
                    email=user.email,
                    password=PASSWORD,
                    display_name=name,
                    customer_id=user.customer_id,
                    totp_secret=user.totp_secret,
                )
                user.user_id = int(row["id"])
            await conn.commit()

    asyncio.run(create())
    return users


def issue_session_token(settings: Settings, user: SeedUser) -> str:
    """A dashboard session token for a live API session of `user` (as after a login)."""
    accounts = build_accounts(settings)

    async def issue() -> str:
        assert settings.database_url is not None
        conn = await AsyncConnection.connect(
            settings.database_url, row_factory=dict_row, autocommit=False
        )
        async with conn:
            tokens = await accounts.issue_session(conn, user.user_id)
            await conn.commit()
        claims = verify_token(accounts.secret_key, tokens.access_token, "access")
        return json.dumps({"sid": tokens.session_id, "sub": claims.subject})

    return asyncio.run(issue())


def seed_fleet(db: Any, settings: Settings, *, extra_devices: int = 20) -> Fleet:
    """Customers, devices with twins and telemetry, a rule with alerts, messages and feed."""
    sync_product_models(db)
    cipher = devices_service.cipher_from_settings(settings)
    alice = devices_service.create_customer(
        db, cipher, CustomerCreate(name="Alice Aoki", email="alice@example.com", language="ja")
    )
    bob = devices_service.create_customer(
        db, cipher, CustomerCreate(name="Bob Brown", email="bob@example.com")
    )
    alice_id, bob_id = alice.id, bob.id
    operator, alice_user, bob_user = create_users(settings, alice_id, bob_id)
    fleet = Fleet(operator, alice_user, bob_user, alice_public_id=str(alice.public_id))
    now = datetime.now(UTC)
    fleet.alice_devices = [
        _device(
            db,
            "ev",
            "alice-car",
            alice_id,
            now,
            {"soc_pct": 81.5, "range_km": 402.0, "lat": 35.66, "lon": 139.70},
        ),
        _device(db, "refrigerator", "alice-fridge", alice_id, now, None),
    ]
    fleet.bob_devices = [
        _device(
            db,
            "ev",
            "bob-car",
            bob_id,
            now,
            {"soc_pct": 22.0, "range_km": 95.0, "lat": 35.45, "lon": 139.64},
        ),
    ]
    for i in range(extra_devices):
        model = ("ev", "washing_machine", "air_conditioner", "refrigerator")[i % 4]
        online = i % 3 != 0
        lat, lon = _spread(i)
        uid = _device(
            db,
            model,
            f"fleet-{i:03d}",
            None,
            now - timedelta(hours=0 if online else 3),
            {"lat": lat, "lon": lon} if model == "ev" else None,
        )
        if model != "ev":  # appliances have a registered address
            db.execute(
                "UPDATE devices SET latitude = %s, longitude = %s WHERE uid = %s", (lat, lon, uid)
            )
    _telemetry(db, fleet.alice_devices[0], now)
    fleet.alert_ids = _alerts(db, fleet.alice_devices[0], fleet.bob_devices[0], now)
    _messages(db, alice_id, fleet.alice_devices[0], "充電が80%になりました", now)
    _messages(db, bob_id, fleet.bob_devices[0], "Battery is low: 22%", now)
    _ingest_health(db, now)
    return fleet


def _device(
    db: Any,
    model: str,
    uid: str,
    owner: int | None,
    seen: datetime,
    reported: dict[str, Any] | None,
) -> str:
    devices_service.register_device(
        db,
        DeviceCreate(
            serial=f"SN-{uid}",
            model_id=model,
            uid=uid,
            firmware="1.4.2",
            nickname=uid.replace("-", " ").title(),
        ),
    )
    if owner is not None:
        devices_service.assign_owner(db, uid, owner)
    values = reported or {"power": True}
    twin = {k: {"v": v, "t": seen.isoformat()} for k, v in values.items()}
    db.execute(
        """INSERT INTO device_twins (device_id, reported, reported_at, desired, last_seen,
                                     last_seq, connection)
           SELECT id, %s, %s, %s, %s, 100, 'online' FROM devices WHERE uid = %s""",
        (
            json.dumps(twin),
            seen,
            json.dumps({"charge_limit_pct": 80} if model == "ev" else {}),
            seen,
            uid,
        ),
    )
    return uid


CITIES = (TOKYO, TOKYO, TOKYO, (34.69, 135.50), (35.18, 136.91), (43.06, 141.35), (33.59, 130.40))


def _spread(i: int) -> tuple[float, float]:
    """Deterministic positions around a few Japanese cities, most of them in Tokyo."""
    centre = CITIES[i % len(CITIES)]
    angle = (i * 2.399963) % 6.283185  # golden angle: an even spiral, no randomness
    radius = 0.02 + 0.25 * ((i * 7919) % 101) / 101
    return centre[0] + radius * math.sin(angle), centre[1] + radius * 1.2 * math.cos(angle)


def device_id(db: Any, uid: str) -> int:
    """The internal id of a device."""
    return int(db.execute("SELECT id FROM devices WHERE uid = %s", (uid,)).fetchone()["id"])


def _telemetry(db: Any, uid: str, now: datetime) -> None:
    slots = ensure_slots(db, builtin_models()["ev"])
    did = device_id(db, uid)
    rows = []
    for i in range(7 * 24 * 12):  # every 5 minutes for 7 days
        ts = now - timedelta(minutes=5 * i)
        soc = 20 + (i % 288) / 288 * 70
        rows.append(
            TelemetryRow(
                did, ts, 10_000 - i, ts, slots.encode({"soc_pct": soc, "range_km": soc * 5})
            )
        )
    with db.transaction():
        insert_telemetry(db, rows)


def _alerts(db: Any, alice_car: str, bob_car: str, now: datetime) -> list[int]:
    rule = db.execute(
        """INSERT INTO rules (key, source, scope_model_id, spec)
           VALUES ('ev.low_battery', 'pack', 'ev', '{}') RETURNING id"""
    ).fetchone()["id"]
    ids = []
    for uid, severity in ((alice_car, "warning"), (bob_car, "critical")):
        row = db.execute(
            """INSERT INTO alerts (rule_id, device_id, severity, opened_at, dedup_key)
               SELECT %s, id, %s, %s, %s FROM devices WHERE uid = %s RETURNING id""",
            (rule, severity, now - timedelta(minutes=30), f"seed-{uid}", uid),
        ).fetchone()
        ids.append(int(row["id"]))
        db.execute(
            """INSERT INTO moments (device_id, kind, severity, occurred_at, rule_id, dedup_key)
               SELECT id, 'ev.battery_low', %s, %s, %s, %s FROM devices WHERE uid = %s""",
            (severity, now - timedelta(minutes=30), rule, f"m-{uid}", uid),
        )
    return ids


def _messages(db: Any, customer_id: int, uid: str, text: str, now: datetime) -> None:
    did = device_id(db, uid)
    db.execute(
        """INSERT INTO feed_posts (customer_id, device_id, kind, severity, language, title, body,
                                   created_at)
           VALUES (%s, %s, 'ev.battery_low', 'info', 'en', %s, %s, %s)""",
        (customer_id, did, text, f"{text} — your car", now - timedelta(minutes=20)),
    )
    db.execute(
        """INSERT INTO notifications (customer_id, device_id, kind, severity, channel, language,
                                      title, body, status, created_at, sent_at)
           VALUES (%s, %s, 'ev.battery_low', 'info', 'feed', 'en', %s, %s, 'sent', %s, %s)""",
        (customer_id, did, text, f"{text} — your car", now - timedelta(minutes=20), now),
    )


def _ingest_health(db: Any, now: datetime) -> None:
    for reason in ("schema", "schema", "json", "clock_skew"):
        db.execute(
            """INSERT INTO ingest_dead_letters (received_at, topic, reason, detail, payload,
                                                payload_size)
               VALUES (%s, 'kizuna/v1/x/telemetry', %s, 'seeded', '\\x00', 1)""",
            (now, reason),
        )
    db.execute(
        """INSERT INTO ingest_seq_gaps (device_id, first_seq, last_seq, detected_at)
           SELECT id, 5, 7, %s FROM devices WHERE uid = 'fleet-001'""",
        (now,),
    )
