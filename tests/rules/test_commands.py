"""Commands rules ask for reach devices/ once, after the ingest transaction, or say why not."""

from __future__ import annotations

import contextlib

from psycopg import Connection
from psycopg.rows import DictRow

from devices.catalog_sync import sync_product_models
from devices.errors import BrokerError
from devices.protocol import Channel, device_topic
from rules.commands import dispatch_intents
from store.db import connect
from tests.rules.conftest import T0, Feeder, add_device, install_packs, make_rule, rows


class RecordingDownlink:
    """The broker seam: keeps what would have been published."""

    def __init__(self, fail: bool = False) -> None:
        self.published: list[str] = []
        self.fail = fail

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        if self.fail:
            raise BrokerError("broker unavailable")
        self.published.append(topic)


def test_a_leak_pauses_the_washer_exactly_once(
    db: Connection[DictRow], feeder: Feeder, database_url: str
) -> None:
    sync_product_models(db)
    install_packs(db)
    washer = add_device(db, "washing_machine")
    feeder.send(washer, T0, leak_detected=True)
    link = RecordingDownlink()
    with contextlib.closing(connect(database_url)) as conn:
        assert dispatch_intents(conn, link, "kz", T0) == 1
        assert dispatch_intents(conn, link, "kz", T0) == 0
    [command] = rows(db, "SELECT command_id, name, status, requested_by FROM device_commands")
    assert (command["name"], command["requested_by"]) == ("pause", "rule:washing_machine.leak")
    [intent] = rows(db, "SELECT command_id, dispatched_at, detail FROM rule_command_intents")
    assert intent == {"command_id": command["command_id"], "dispatched_at": T0, "detail": None}
    topic = device_topic("kz", washer.uid, Channel.COMMANDS, command["command_id"])
    assert link.published == [topic]


def test_a_refused_command_is_recorded_with_its_reason_and_not_retried(
    db: Connection[DictRow], feeder: Feeder, database_url: str
) -> None:
    sync_product_models(db)
    washer = add_device(db, "washing_machine")
    make_rule(
        db,
        "t.pause",
        "washing_machine",
        {"state": {"metric": "leak_detected", "equals": True}},
        command={"name": "pause"},
    )
    feeder.send(washer, T0, leak_detected=True)
    # the model changed after the rule was written: 'pause' now refuses any argument given
    db.execute("UPDATE rule_command_intents SET args = '{\"speed\": 3}'")
    with contextlib.closing(connect(database_url)) as conn:
        assert dispatch_intents(conn, RecordingDownlink(), "kz", T0) == 1
        assert dispatch_intents(conn, RecordingDownlink(), "kz", T0) == 0
    [intent] = rows(db, "SELECT command_id, detail FROM rule_command_intents")
    assert intent["command_id"] is None
    assert intent["detail"] == "not sent: speed: unknown argument"
    assert rows(db, "SELECT id FROM device_commands") == []


def test_a_broker_outage_leaves_the_command_failed_and_the_intent_sent_once(
    db: Connection[DictRow], feeder: Feeder, database_url: str
) -> None:
    sync_product_models(db)
    washer = add_device(db, "washing_machine")
    make_rule(
        db,
        "t.pause",
        "washing_machine",
        {"state": {"metric": "leak_detected", "equals": True}},
        command={"name": "pause"},
    )
    feeder.send(washer, T0, leak_detected=True)
    with contextlib.closing(connect(database_url)) as conn:
        assert dispatch_intents(conn, RecordingDownlink(fail=True), "kz", T0) == 1
    [command] = rows(db, "SELECT status FROM device_commands")
    assert command["status"] == "failed"  # visible to operators; the rule does not resend
    [intent] = rows(db, "SELECT command_id IS NOT NULL AS linked FROM rule_command_intents")
    assert intent["linked"]
