"""Create login accounts from scripts (demo, first operator): `seed_user(settings, ...)`."""

from __future__ import annotations

import asyncio
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from api.accounts import repo
from api.app import build_accounts
from app.settings import Settings
from store.db import connection_kwargs


def seed_user(
    settings: Settings,
    *,
    role: str,
    email: str,
    password: str,
    display_name: str | None = None,
    phone: str | None = None,
    customer_id: int | None = None,
    totp_secret: str | None = None,
) -> dict[str, Any]:
    """Create an account (or return the existing one with this email); committed on return.

    Operators and support must have a `totp_secret` (base32, e.g. pyotp.random_base32()) or
    they will be asked to enroll at first login. Returns {"id", "public_id", "created"}.
    """
    return asyncio.run(
        _seed(settings, role, email, password, display_name, phone, customer_id, totp_secret)
    )


async def _seed(
    settings: Settings,
    role: str,
    email: str,
    password: str,
    display_name: str | None,
    phone: str | None,
    customer_id: int | None,
    totp_secret: str | None,
) -> dict[str, Any]:
    assert settings.database_url is not None, "seed_user needs settings.database_url"
    accounts = build_accounts(settings)
    conn = await AsyncConnection.connect(
        settings.database_url, row_factory=dict_row, **connection_kwargs(settings.store)
    )
    async with conn:
        existing = await repo.user_by_email_index(conn, accounts.cipher.blind_index(email))
        if existing is not None:
            return {"id": existing["id"], "public_id": str(existing["public_id"]), "created": False}
        user = await accounts.create_user(
            conn,
            role=role,
            email=email,
            password=password,
            display_name=display_name,
            phone=phone,
            customer_id=customer_id,
            totp_secret=totp_secret,
        )
        await conn.commit()
        return {"id": user["id"], "public_id": str(user["public_id"]), "created": True}
