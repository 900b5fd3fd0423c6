"""Notify reads the personal data that the devices registry writes, with the same keys."""

from typing import Any

from app.settings import Settings
from devices import service as devices
from devices.models import CustomerCreate
from notify.repo import EMAIL_CONTEXT, NAME_CONTEXT


def test_notify_opens_customer_fields_sealed_by_the_registry(settings: Settings, db: Any) -> None:
    cipher = devices.cipher_from_settings(settings)
    created = devices.create_customer(
        db, cipher, CustomerCreate(name="佐藤 愛子", email="aiko@example.com", language="ja")
    )
    row = db.execute(
        "SELECT name_enc, email_enc FROM customers WHERE id = %s", (created.id,)
    ).fetchone()
    assert cipher.open(bytes(row["name_enc"]), NAME_CONTEXT) == "佐藤 愛子"
    assert cipher.open(bytes(row["email_enc"]), EMAIL_CONTEXT) == "aiko@example.com"
