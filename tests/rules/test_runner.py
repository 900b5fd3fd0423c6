"""The rules step and the timer sweep against the real database: effects exactly once."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from psycopg import Connection
from psycopg.rows import DictRow

from ingest.records import StoredBatch
from rules import service
from rules.engine import CompiledRule
from rules.runner import RuleRunner, stored_states
from rules.vector import ColumnarRule
from store.db import connect
from tests.rules.conftest import (
    T0,
    Feeder,
    add_device,
    alerts,
    make_rule,
    minutes,
    moments,
    rows,
)

DOOR_OPEN_10M = {
    "duration": {"for": "10m", "condition": {"state": {"metric": "door_open", "equals": True}}}
}
TOO_WARM = {"threshold": {"metric": "fridge_temp_c", "above": 8, "clear_below": 6}}


def test_threshold_alert_opens_once_and_clears_through_hysteresis(
    db: Connection[DictRow], feeder: Feeder
) -> None:
    rule_id = make_rule(
        db,
        "t.warm",
        "refrigerator",
        TOO_WARM,
        alert={"severity": "warning"},
        moment={"kind": "refrigerator.too_warm", "facts_from": {"fridge_temp_c": "fridge_temp_c"}},
    )
    fridge = add_device(db, "refrigerator")
    for i, temp in enumerate([5, 9, 10, 7, 6, 5.5]):
        feeder.send(fridge, T0 + minutes(i), fridge_temp_c=temp)
    [alert] = alerts(db, fridge)
    assert alert["rule_id"] == rule_id
    assert alert["opened_at"] == T0 + minutes(1)
    assert alert["cleared_at"] == T0 + minutes(5)
    assert (alert["status"], alert["clear_reason"]) == ("cleared", "auto")
    [moment] = moments(db, fridge)
    assert moment["facts"] == {"fridge_temp_c": 9}
    history = rows(db, "SELECT from_status, to_status, actor FROM alert_history ORDER BY id")
    assert history == [
        {"from_status": None, "to_status": "active", "actor": "rules"},
        {"from_status": "active", "to_status": "cleared", "actor": "rules"},
    ]


def test_several_readings_of_one_device_in_one_batch_are_evaluated_in_device_time_order(
    db: Connection[DictRow], feeder: Feeder
) -> None:
    make_rule(db, "t.warm", "refrigerator", TOO_WARM)
    fridge = add_device(db, "refrigerator")
    late_first = feeder.reading(fridge, T0 + minutes(2), fridge_temp_c=5)
    early = feeder.reading(fridge, T0 + minutes(1), fridge_temp_c=9)
    feeder.batch(late_first, early)
    [alert] = alerts(db, fridge)
    assert (alert["opened_at"], alert["cleared_at"]) == (T0 + minutes(1), T0 + minutes(2))


def test_a_rolled_back_batch_leaves_nothing_and_its_redo_creates_effects_once(
    db: Connection[DictRow], feeder: Feeder, database_url: str
) -> None:
    make_rule(db, "t.warm", "refrigerator", TOO_WARM, moment={"kind": "refrigerator.too_warm"})
    fridge = add_device(db, "refrigerator")
    reading = feeder.reading(fridge, T0, fridge_temp_c=12)
    with (
        contextlib.closing(connect(database_url)) as conn,
        conn.transaction(force_rollback=True),
    ):
        feeder.runner.process_batch(conn, StoredBatch([reading], []))
    assert alerts(db, fridge) == [] and moments(db, fridge) == []
    feeder.batch(reading)
    assert len(alerts(db, fridge)) == 1 and len(moments(db, fridge)) == 1


def test_restart_in_the_middle_of_a_10_minute_window_fires_once_on_time(
    db: Connection[DictRow], feeder: Feeder
) -> None:
    make_rule(
        db, "t.door", "refrigerator", DOOR_OPEN_10M, moment={"kind": "refrigerator.door_left_open"}
    )
    fridge = add_device(db, "refrigerator")
    feeder.send(fridge, T0, door_open=True)
    feeder.clock.advance(minutes=4)
    feeder.send(fridge, T0 + minutes(4), door_open=True)
    feeder.restart()  # the process dies and comes back: only the database remembers
    feeder.clock.advance(minutes=5, seconds=59)
    assert feeder.sweep() == 0  # 9:59 in: not yet
    assert alerts(db, fridge) == []
    feeder.clock.advance(seconds=1)
    feeder.restart()
    assert feeder.sweep() == 1
    [alert] = alerts(db, fridge)
    assert alert["opened_at"] == T0 + minutes(10)  # on time, in device time
    [moment] = moments(db, fridge)
    assert moment["occurred_at"] == T0 + minutes(10)
    feeder.clock.advance(minutes=30)
    feeder.restart()
    assert feeder.sweep() == 0
    feeder.send(fridge, T0 + minutes(12), door_open=True)
    assert len(alerts(db, fridge)) == 1 and len(moments(db, fridge)) == 1


def test_a_late_scheduler_still_stamps_the_due_time(
    db: Connection[DictRow], feeder: Feeder
) -> None:
    make_rule(db, "t.door", "refrigerator", DOOR_OPEN_10M)
    fridge = add_device(db, "refrigerator")
    feeder.send(fridge, T0, door_open=True)
    feeder.clock.advance(hours=3)  # the scheduler was down for hours
    assert feeder.sweep() == 1
    assert alerts(db, fridge)[0]["opened_at"] == T0 + minutes(10)


def test_absence_decided_by_the_scheduler_and_a_reading_that_wins_the_race(
    db: Connection[DictRow], feeder: Feeder, database_url: str
) -> None:
    make_rule(db, "t.silent", "refrigerator", {"absence": {"after": "15m"}})
    fridge = add_device(db, "refrigerator")
    feeder.send(fridge, T0, fridge_temp_c=4)
    feeder.clock.advance(minutes=15)
    # A batch carrying a reading at 14 min is mid-transaction when the scheduler runs:
    # the scheduler skips the locked row, then sees the new last reading and does not fire.
    with contextlib.closing(connect(database_url)) as conn, conn.transaction():
        RuleRunner(feeder.clock).process_batch(
            conn, StoredBatch([feeder.reading(fridge, T0 + minutes(14), fridge_temp_c=4)], [])
        )
        assert feeder.sweep() == 0  # locked by the batch: skipped, not waited for
    assert feeder.sweep() == 0  # due moved to 29 min
    feeder.clock.advance(minutes=14)
    assert feeder.sweep() == 1
    [alert] = alerts(db, fridge)
    assert alert["opened_at"] == T0 + minutes(29)


def test_concurrent_sweeps_never_fire_a_timer_twice(
    db: Connection[DictRow], feeder: Feeder
) -> None:
    make_rule(
        db, "t.door", "refrigerator", DOOR_OPEN_10M, moment={"kind": "refrigerator.door_left_open"}
    )
    fridges = [add_device(db, "refrigerator") for _ in range(40)]
    feeder.batch(*(feeder.reading(f, T0, door_open=True) for f in fridges))
    feeder.clock.advance(minutes=10)
    results: list[int] = []
    sweepers = [Feeder(feeder.url, feeder.clock) for _ in range(4)]
    threads = [threading.Thread(target=lambda s=s: results.append(s.sweep())) for s in sweepers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 40
    assert rows(db, "SELECT count(*) AS n FROM moments")[0]["n"] == 40
    assert rows(db, "SELECT count(*) AS n FROM alerts")[0]["n"] == 40


def test_scopes_model_device_and_customer(db: Connection[DictRow], feeder: Feeder) -> None:
    owned = add_device(db, "refrigerator", time_zone="Europe/Paris")
    other = add_device(db, "refrigerator")
    customer = db.execute(
        "SELECT c.public_id FROM customers c JOIN device_ownerships o ON o.customer_id = c.id"
        " WHERE o.device_id = %s",
        (owned.id,),
    ).fetchone()
    assert customer is not None
    base = {"name": "n", "when": TOO_WARM, "actions": {"alert": {}}}
    service.create_rule(db, {**base, "key": "t.by_device", "scope": {"device": other.uid}})
    service.create_rule(
        db, {**base, "key": "t.by_customer", "scope": {"customer": str(customer["public_id"])}}
    )
    feeder.batch(
        feeder.reading(owned, T0, fridge_temp_c=10), feeder.reading(other, T0, fridge_temp_c=10)
    )
    keys = rows(
        db,
        "SELECT d.uid, r.key FROM alerts a JOIN rules r ON r.id = a.rule_id"
        " JOIN devices d ON d.id = a.device_id ORDER BY r.key",
    )
    assert keys == [
        {"uid": owned.uid, "key": "t.by_customer"},
        {"uid": other.uid, "key": "t.by_device"},
    ]


def test_editing_a_rule_restarts_its_conditions_without_losing_the_open_alert(
    db: Connection[DictRow], feeder: Feeder
) -> None:
    rule_id = make_rule(db, "t.warm", "refrigerator", TOO_WARM)
    fridge = add_device(db, "refrigerator")
    feeder.send(fridge, T0, fridge_temp_c=10)
    stricter = {"threshold": {"metric": "fridge_temp_c", "above": 12, "clear_below": 11}}
    spec = {"key": "t.warm", "name": "n", "scope": {"model": "refrigerator"}, "when": stricter}
    service.update_rule(db, rule_id, {**spec, "actions": {"alert": {}}})
    feeder.send(fridge, T0 + minutes(1), fridge_temp_c=10)  # below the new level: clears
    [alert] = alerts(db, fridge)
    assert alert["cleared_at"] == T0 + minutes(1)


def test_deleting_a_rule_clears_its_alerts_and_its_timers(
    db: Connection[DictRow], feeder: Feeder
) -> None:
    rule_id = make_rule(
        db, "t.door", "refrigerator", {"state": {"metric": "door_open", "equals": True}}
    )
    timer_id = make_rule(db, "t.door10", "refrigerator", DOOR_OPEN_10M)
    fridge = add_device(db, "refrigerator")
    feeder.send(fridge, T0, door_open=True)
    service.delete_rule(db, rule_id, actor="op", at=T0 + minutes(1))
    service.delete_rule(db, timer_id, actor="op", at=T0 + minutes(1))
    [alert] = alerts(db, fridge)
    assert alert["clear_reason"] == "rule_changed"
    feeder.clock.advance(minutes=20)
    assert feeder.sweep() == 0
    assert rows(db, "SELECT count(*) AS n FROM rule_states")[0]["n"] == 0
    # the sweep met the deleted rules' timer in the device's packed row and dropped the row
    assert rows(db, "SELECT count(*) AS n FROM columnar_rule_states")[0]["n"] == 0


def test_manual_clear_while_the_condition_still_holds_waits_for_a_new_edge(
    db: Connection[DictRow], feeder: Feeder
) -> None:
    make_rule(db, "t.warm", "refrigerator", TOO_WARM)
    fridge = add_device(db, "refrigerator")
    feeder.send(fridge, T0, fridge_temp_c=10)
    [alert] = alerts(db, fridge)
    service.acknowledge_alert(db, alert["id"], actor="op@example", at=T0 + minutes(1))
    service.clear_alert(db, alert["id"], actor="op@example", at=T0 + minutes(2), note="fixed door")
    feeder.send(fridge, T0 + minutes(3), fridge_temp_c=10)  # still warm: no new alert
    assert len(alerts(db, fridge)) == 1
    feeder.send(fridge, T0 + minutes(4), fridge_temp_c=5)
    feeder.send(fridge, T0 + minutes(5), fridge_temp_c=10)
    assert [a["status"] for a in alerts(db, fridge)] == ["cleared", "active"]


def test_an_unknown_device_in_a_batch_is_skipped(db: Connection[DictRow], feeder: Feeder) -> None:
    make_rule(db, "t.warm", "refrigerator", TOO_WARM)
    fridge = add_device(db, "refrigerator")
    ghost = add_device(db, "refrigerator")
    db.execute("DELETE FROM devices WHERE id = %s", (ghost.id,))
    feeder.batch(
        feeder.reading(ghost, T0, fridge_temp_c=10), feeder.reading(fridge, T0, fridge_temp_c=10)
    )
    assert len(alerts(db, fridge)) == 1


def test_timer_due_time_is_stored_for_the_scheduler(
    db: Connection[DictRow], feeder: Feeder
) -> None:
    make_rule(db, "t.door", "refrigerator", DOOR_OPEN_10M)
    fridge = add_device(db, "refrigerator")
    feeder.send(fridge, T0, door_open=True)
    [state] = stored_states(db, feeder.runner.rules).values()
    assert (state.due_at, state.holding) == ((T0 + minutes(10)).timestamp(), False)
    # the column the scheduler claims by (the rule runs in columnar form: one row per device)
    assert rows(db, "SELECT due_at FROM columnar_rule_states") == [{"due_at": T0 + minutes(10)}]


class Exploding:
    """An evaluator with a bug (the seam: a compiled rule's root)."""

    key = "c"

    def step(self, state: dict, inp: object, ctx: object) -> tuple[bool, None]:
        raise ZeroDivisionError("bug")


class ExplodingColumnar(ColumnarRule):
    """A columnar rule with a bug (the seam: a compiled rule's columnar form)."""

    def advance(self, rows: Any, inputs: Any) -> Any:
        raise ZeroDivisionError("bug")


def _with_bug(rule: CompiledRule, path: str) -> CompiledRule:
    if path == "engine":  # without a columnar form the rule runs through the engine
        return dataclasses.replace(rule, root=Exploding(), columnar=None)
    exploding = ExplodingColumnar(rule.spec.when, rule.metrics, rule.id, rule.version)
    return dataclasses.replace(rule, columnar=exploding)


@pytest.mark.parametrize("path", ["engine", "columnar"])
def test_a_broken_rule_never_stops_the_batch_or_the_other_rules(
    db: Connection[DictRow], feeder: Feeder, path: str
) -> None:
    good = make_rule(db, "t.warm", "refrigerator", TOO_WARM)
    buggy = make_rule(db, "t.buggy", "refrigerator", TOO_WARM)
    unreadable = make_rule(db, "t.unreadable", "refrigerator", TOO_WARM)
    db.execute(
        'UPDATE rules SET spec = \'{"from": "an older version"}\' WHERE id = %s', (unreadable,)
    )
    fridge = add_device(db, "refrigerator")
    with contextlib.closing(connect(feeder.url)) as conn, conn.transaction():
        feeder.runner.rules.refresh(conn)
    rules = feeder.runner.rules.by_id
    assert set(rules) == {good, buggy}  # the unreadable rule is skipped (and logged)
    feeder.runner.rules.load([rules[good], _with_bug(rules[buggy], path)])
    feeder.send(fridge, T0, fridge_temp_c=10.0)
    assert [a["rule_id"] for a in alerts(db, fridge)] == [good]
    states = stored_states(db, feeder.runner.rules)
    assert states[(good, fridge.id)].holding
    assert not states[(buggy, fridge.id)].holding  # restarted, and never held


@pytest.mark.parametrize("columnar", [True, False])
def test_a_timer_set_before_the_rule_was_edited_does_not_fire(
    db: Connection[DictRow], database_url: str, columnar: bool
) -> None:
    feeder = Feeder(database_url, columnar=columnar)
    rule_id = make_rule(db, "t.door", "refrigerator", DOOR_OPEN_10M)
    fridge = add_device(db, "refrigerator")
    feeder.send(fridge, T0, door_open=True)
    longer = {"duration": {"for": "20m", "condition": DOOR_OPEN_10M["duration"]["condition"]}}
    spec = {"key": "t.door", "name": "n", "scope": {"model": "refrigerator"}, "when": longer}
    service.update_rule(db, rule_id, {**spec, "actions": {"alert": {}}})
    feeder.clock.advance(minutes=11)
    assert feeder.sweep() == 0  # the 10-minute timer belonged to version 1
    assert alerts(db, fridge) == []
    state = stored_states(db, feeder.runner.rules)[(rule_id, fridge.id)]
    assert (state.version, state.due_at, state.state) == (2, None, {"v": {}, "n": {}})
    feeder.send(fridge, T0 + minutes(12), door_open=True)  # version 2 starts counting here
    assert (
        stored_states(db, feeder.runner.rules)[(rule_id, fridge.id)].due_at
        == (T0 + minutes(32)).timestamp()
    )


@pytest.mark.parametrize("columnar", [True, False])
def test_a_disabled_rule_keeps_holding_so_its_alert_clears_once_enabled_again(
    db: Connection[DictRow], database_url: str, columnar: bool
) -> None:
    feeder = Feeder(database_url, columnar=columnar)
    rule_id = make_rule(db, "t.warm", "refrigerator", TOO_WARM)
    fridge = add_device(db, "refrigerator")
    feeder.send(fridge, T0, fridge_temp_c=10)
    spec = {"key": "t.warm", "name": "n", "scope": {"model": "refrigerator"}, "when": TOO_WARM}
    service.update_rule(db, rule_id, {**spec, "actions": {"alert": {}}, "enabled": False})
    feeder.send(fridge, T0 + minutes(1), fridge_temp_c=3)  # disabled: nothing is decided
    assert [a["status"] for a in alerts(db, fridge)] == ["active"]
    service.update_rule(db, rule_id, {**spec, "actions": {"alert": {}}})
    feeder.send(fridge, T0 + minutes(2), fridge_temp_c=7)  # restarted, still held: clears
    [alert] = alerts(db, fridge)
    assert (alert["status"], alert["cleared_at"]) == ("cleared", T0 + minutes(2))


def test_a_deleted_rule_leaves_the_packed_row_at_the_next_write(
    db: Connection[DictRow], feeder: Feeder
) -> None:
    kept = make_rule(db, "t.warm", "refrigerator", TOO_WARM)
    deleted = make_rule(db, "t.door", "refrigerator", DOOR_OPEN_10M)
    fridge = add_device(db, "refrigerator")
    feeder.send(fridge, T0, door_open=True, fridge_temp_c=5)
    assert set(stored_states(db, feeder.runner.rules)) == {(kept, fridge.id), (deleted, fridge.id)}
    service.delete_rule(db, deleted, actor="op", at=T0 + minutes(1))
    feeder.send(fridge, T0 + minutes(2), door_open=True, fridge_temp_c=5)
    assert set(stored_states(db, feeder.runner.rules)) == {(kept, fridge.id)}
    # the deleted rule's 10-minute timer went with it
    assert rows(db, "SELECT due_at FROM columnar_rule_states") == [{"due_at": None}]


@pytest.mark.parametrize(("columnar", "rows_per_device"), [(True, 1), (False, 2)])
def test_only_states_that_changed_are_written(
    db: Connection[DictRow], database_url: str, columnar: bool, rows_per_device: int
) -> None:
    feeder = Feeder(database_url, columnar=columnar)
    make_rule(db, "t.warm", "refrigerator", TOO_WARM)
    make_rule(db, "t.door", "refrigerator", DOOR_OPEN_10M)
    fridges = [add_device(db, "refrigerator") for _ in range(3)]

    def written(*readings: Any) -> int:
        with contextlib.closing(connect(database_url)) as conn, conn.transaction():
            return feeder.runner.process_batch(conn, StoredBatch(readings, [])).rows_written

    # packed: one row per device for both rules; engine: one row per device and rule
    assert (
        written(*(feeder.reading(f, T0, fridge_temp_c=5) for f in fridges)) == 3 * rows_per_device
    )
    late = [feeder.reading(f, T0 - minutes(1), fridge_temp_c=9) for f in fridges]
    assert written(*late) == 0  # late readings decide nothing, so nothing changed
    newer = feeder.reading(fridges[0], T0 + minutes(1), fridge_temp_c=5)
    assert written(newer, feeder.reading(fridges[1], T0 - minutes(2))) == rows_per_device


def test_a_batch_and_a_sweep_each_send_their_writes_in_one_pipeline(
    db: Connection[DictRow], feeder: Feeder, database_url: str
) -> None:
    # a nested pipeline waits for everything queued before it: with a large state upsert
    # queued, that wait hung against PostgreSQL 18 over a Unix socket
    make_rule(db, "t.door", "refrigerator", DOOR_OPEN_10M, moment={"kind": "refrigerator.door"})
    make_rule(db, "t.warm", "refrigerator", TOO_WARM)
    fridge = add_device(db, "refrigerator")
    events: list[str] = []
    with contextlib.closing(connect(database_url)) as conn:
        original = conn.pipeline

        @contextlib.contextmanager
        def counted() -> Iterator[Any]:
            events.append("enter")
            try:
                with original() as pipeline:
                    yield pipeline
            finally:
                events.append("exit")

        conn.pipeline = counted  # type: ignore[method-assign]
        with conn.transaction():
            feeder.runner.process_batch(
                conn, StoredBatch([feeder.reading(fridge, T0, door_open=True, fridge_temp_c=9)], [])
            )
        feeder.clock.advance(minutes=10)
        with conn.transaction():
            assert feeder.runner.fire_due(conn).triggers == 1
    assert events == ["enter", "exit", "enter", "exit"]  # one each, never one inside another
    assert len(alerts(db, fridge)) == 2
