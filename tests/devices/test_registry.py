"""Customers, devices and ownership through the registry service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from devices import service
from devices.catalog_sync import load_all_models, product_model, sync_product_models
from devices.errors import Conflict, InvalidRequest, NotFound
from devices.models import CustomerCreate, CustomerUpdate, DeviceCreate
from store.encryption import FieldCipher
from tests.devices.conftest import new_customer, new_device

NEW_MODEL = """
id: heat_pump
names: {en: Heat pump, ja: ヒートポンプ}
voice: {en: your heat pump, ja: ヒートポンプ}
metrics:
  flow_temp_c: {type: number, unit: °C, min: 10, max: 80}
commands:
  boost: {args: {minutes: {type: integer, min: 5, max: 120}}}
"""


def test_a_new_model_file_needs_no_code(db: Any, tmp_path: Path) -> None:
    (tmp_path / "heat_pump.yaml").write_text(NEW_MODEL, encoding="utf-8")
    ids = sync_product_models(db, tmp_path)
    assert {"ev", "refrigerator", "washing_machine", "air_conditioner", "heat_pump"} <= set(ids)
    model = product_model(db, "heat_pump")
    assert model.check_metrics({"flow_temp_c": 45.0}) == []
    assert model.check_metrics({"flow_temp_c": 95.0}) == ["flow_temp_c: above maximum 80"]
    device = service.register_device(db, DeviceCreate(serial="HP-1", model_id="heat_pump"))
    assert device.model_id == "heat_pump"


def test_a_broken_model_file_is_refused_with_its_name(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("id: broken\nmetrics: {}\n", encoding="utf-8")
    with pytest.raises(InvalidRequest, match=r"broken\.yaml"):
        load_all_models(tmp_path)


def test_customer_personal_data_is_encrypted_at_rest(registry: Any, cipher: FieldCipher) -> None:
    new = CustomerCreate(
        name="山田 花子", email="Hanako@Example.com", phone="+81 90 1234 5678", language="ja"
    )
    created = service.create_customer(registry, cipher, new)
    raw = registry.execute("SELECT * FROM customers WHERE id = %s", (created.id,)).fetchone()
    stored = b"".join(bytes(raw[c]) for c in ("name_enc", "email_enc", "phone_enc"))
    assert "山田".encode() not in stored and b"Hanako" not in stored
    assert service.get_customer(registry, cipher, created.id).name == "山田 花子"
    # Other packages open these columns with the documented contexts.
    assert cipher.open(bytes(raw["name_enc"]), "customers.name") == "山田 花子"
    assert service.customer_context("email") == "customers.email"
    # The blind index finds the customer whatever the case of the email.
    assert service.customer_id_by_email(registry, cipher, " hanako@example.COM") == created.id
    with pytest.raises(Conflict):
        service.create_customer(registry, cipher, new)


def test_customer_update_and_bad_input(registry: Any, cipher: FieldCipher) -> None:
    customer_id = new_customer(registry, cipher)
    updated = service.update_customer(
        registry, cipher, customer_id, CustomerUpdate(time_zone="Europe/Paris", address=None)
    )
    assert updated.time_zone == "Europe/Paris" and updated.address is None
    with pytest.raises(ValidationError):
        CustomerUpdate(time_zone="Mars/Olympus")
    with pytest.raises(ValidationError):
        CustomerCreate(name="x\x00y", email="a@b.co")
    with pytest.raises(ValidationError):
        CustomerCreate.model_validate({"name": "x", "email": "a@b.co", "role": "operator"})


def test_device_registration_rules(registry: Any) -> None:
    device = service.register_device(registry, DeviceCreate(serial="EV-1", model_id="ev"))
    assert device.uid.startswith("ev-")
    with pytest.raises(Conflict):
        service.register_device(registry, DeviceCreate(serial="EV-1", model_id="ev"))
    with pytest.raises(InvalidRequest):
        service.register_device(registry, DeviceCreate(serial="X-1", model_id="toaster"))
    with pytest.raises(NotFound):
        service.get_device(registry, "nope")


def test_home_location_is_stored_for_rules_but_never_returned(registry: Any) -> None:
    new = DeviceCreate(serial="RF-9", model_id="refrigerator", latitude=35.66, longitude=139.7)
    device = service.register_device(registry, new)
    row = registry.execute(
        "SELECT latitude, longitude FROM devices WHERE uid = %s", (device.uid,)
    ).fetchone()
    assert (row["latitude"], row["longitude"]) == (35.66, 139.7)
    assert "latitude" not in device.model_dump() and "39.7" not in device.model_dump_json()
    with pytest.raises(ValidationError):
        DeviceCreate(serial="RF-10", model_id="refrigerator", latitude=95.0, longitude=0.0)


def test_family_sharing_and_visibility(registry: Any, cipher: FieldCipher) -> None:
    owner, partner, stranger = (new_customer(registry, cipher, n) for n in ("A", "B", "C"))
    uid = new_device(registry, "refrigerator", owner_id=owner)
    service.share(registry, uid, partner)
    seen = service.device_visible_to(registry, uid, partner)
    assert seen is not None and seen.role == "family"
    assert service.device_visible_to(registry, uid, stranger) is None
    assert [d.uid for d in service.devices_visible_to(registry, owner)] == [uid]
    with pytest.raises(Conflict):
        service.share(registry, uid, partner)
    with pytest.raises(Conflict):
        service.assign_owner(registry, uid, stranger)
    service.unshare(registry, uid, partner)
    assert service.device_visible_to(registry, uid, partner) is None
    with pytest.raises(NotFound):
        service.unshare(registry, uid, partner)


def test_transfer_cuts_the_old_owner_off_at_once(registry: Any, cipher: FieldCipher) -> None:
    old, family, new = (new_customer(registry, cipher, n) for n in ("Old", "Fam", "New"))
    uid = new_device(registry, "ev", owner_id=old)
    service.share(registry, uid, family)
    with pytest.raises(Conflict):
        service.transfer(registry, uid, old)
    service.transfer(registry, uid, new)
    assert service.device_visible_to(registry, uid, old) is None
    assert service.device_visible_to(registry, uid, family) is None
    now = service.device_visible_to(registry, uid, new)
    assert now is not None and now.role == "owner"
    history = service.members(registry, uid, history=True)
    assert [(m.role, m.ended_at is None) for m in history] == [
        ("owner", False),
        ("family", False),
        ("owner", True),
    ]


def test_transfer_to_a_family_member_can_keep_the_family(
    registry: Any, cipher: FieldCipher
) -> None:
    old, spouse, child = (new_customer(registry, cipher, n) for n in ("Old", "Sp", "Ch"))
    uid = new_device(registry, "washing_machine", owner_id=old)
    service.share(registry, uid, spouse)
    service.share(registry, uid, child)
    service.transfer(registry, uid, spouse, keep_family=True)
    current = {m.customer_public_id: m.role for m in service.members(registry, uid)}
    assert sorted(current.values()) == ["family", "owner"]
    assert service.device_visible_to(registry, uid, old) is None
    child_view = service.device_visible_to(registry, uid, child)
    assert child_view is not None and child_view.role == "family"


def test_an_invalid_stored_model_falls_back_or_says_so(db: Any) -> None:
    db.execute("INSERT INTO product_models (id, spec) VALUES ('ev', '{}'), ('odd', '{}')")
    assert "soc_pct" in product_model(db, "ev").metrics
    with pytest.raises(InvalidRequest, match="not valid"):
        product_model(db, "odd")
