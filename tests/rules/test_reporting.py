"""Read-only dashboard queries over what the rules wrote."""

from __future__ import annotations

from psycopg import Connection
from psycopg.rows import DictRow

from rules import reporting, service
from tests.rules.conftest import T0, Feeder, add_device, make_rule, minutes

TOO_WARM = {"threshold": {"metric": "fridge_temp_c", "above": 8, "clear_below": 6}}


def test_alert_moment_and_rule_summaries(db: Connection[DictRow], feeder: Feeder) -> None:
    rule_id = make_rule(
        db, "t.warm", "refrigerator", TOO_WARM, moment={"kind": "refrigerator.too_warm"}
    )
    make_rule(
        db,
        "t.door",
        "refrigerator",
        {"state": {"metric": "door_open", "equals": True}},
        alert={"severity": "critical"},
    )
    owned = add_device(db, "refrigerator", time_zone="Asia/Tokyo")
    other = add_device(db, "refrigerator")
    feeder.batch(
        feeder.reading(owned, T0, fridge_temp_c=10.0, door_open=True),
        feeder.reading(other, T0, fridge_temp_c=10.0, door_open=False),
    )
    feeder.send(other, T0 + minutes(1), fridge_temp_c=5.0)  # clears other's warm alert
    assert reporting.open_alerts_by_severity(db) == {"critical": 1, "warning": 1, "info": 0}
    open_alerts = reporting.list_alerts(db)
    assert [(a.device_uid, a.rule_key) for a in open_alerts] == [
        (owned.uid, "t.door"),
        (owned.uid, "t.warm"),
    ]
    assert len(reporting.list_alerts(db, statuses=("cleared",), device_id=other.id)) == 1
    assert {m.device_uid for m in reporting.recent_moments(db)} == {owned.uid, other.uid}
    overview = {r.key: r for r in reporting.rules_overview(db)}
    assert overview["t.warm"].scope == "model:refrigerator"
    assert overview["t.warm"].open_alerts == 1 and overview["t.door"].open_alerts == 1
    customer = db.execute(
        "SELECT customer_id FROM device_ownerships WHERE device_id = %s", (owned.id,)
    ).fetchone()
    assert customer is not None
    assert reporting.open_alert_counts_for_customer(db, customer["customer_id"]) == {
        "critical": 1,
        "warning": 1,
        "info": 0,
    }
    service.delete_rule(db, rule_id, actor="op", at=T0 + minutes(2))
    assert "t.warm" not in {r.key for r in reporting.rules_overview(db)}
