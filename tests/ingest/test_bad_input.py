"""Every MQTT bad input of ROBUSTNESS.md through the real broker: DLQ row, ack, counter, go on."""
# ruff: noqa: E501

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices.protocol import Channel, device_topic
from tests.ingest.conftest import (
    WASHER_OK,
    ago,
    reading_payload,
    register_devices,
    sample,
    wait_until,
)

pytestmark = pytest.mark.mqtt5  # the device-side test clients speak MQTT 5


def _reading(seq: int, metrics: Any, ts: str | None = None) -> bytes:
    ts = ts or datetime.now(UTC).isoformat()
    return json.dumps({"seq": seq, "ts": ts, "metrics": metrics}).encode()


def _raw_reading(seq: int, metrics_json: bytes) -> bytes:
    ts = datetime.now(UTC).isoformat().encode()
    return b'{"seq": %d, "ts": "%s", "metrics": {"power_w": %s}}' % (seq, ts, metrics_json)


def _bad_cases(prefix: str, uid: str, retired: str) -> list[tuple[str, str, bytes, str, bool]]:
    """(label, topic, payload, expected reason, retain)."""
    t = device_topic(prefix, uid, Channel.TELEMETRY)
    ev = device_topic(prefix, uid, Channel.EVENTS)
    now = datetime.now(UTC).isoformat()
    return [
        ("oversize", t, _reading(900, {"power_w": 1.0}) + b" " * 70_000, "payload_too_large", False),
        ("not utf-8", t, b"\xff\xfe\xfa", "invalid_json", False),
        ("not json", t, b"power=5", "invalid_json", False),
        ("empty", t, b"", "invalid_json", False),
        ("missing fields", t, b'{"seq": 901}', "schema_invalid", False),
        ("wrong types", t, b'{"seq": "x", "ts": 5, "metrics": []}', "schema_invalid", False),
        ("extra field", t, b'{"seq": 1, "ts": "%s", "metrics": {}, "role": "admin"}' % now.encode(), "schema_invalid", False),
        ("naive time", t, b'{"seq": 1, "ts": "2026-01-01T00:00:00", "metrics": {}}', "schema_invalid", False),
        ("unknown metric", t, _reading(902, {"warp_drive": 1}), "metric_invalid", False),
        ("out of range", t, _reading(903, {"drum_temp_c": 1000.0}), "metric_invalid", False),
        ("wrong metric type", t, _reading(904, {"leak_detected": "yes"}), "metric_invalid", False),
        ("unknown enum", t, _reading(905, {"phase": "dance"}), "metric_invalid", False),
        ("NaN", t, _raw_reading(906, b"NaN"), "schema_invalid", False),
        ("Infinity", t, _raw_reading(907, b"-Infinity"), "schema_invalid", False),
        ("1e999", t, _raw_reading(908, b"1e999"), "schema_invalid", False),
        ("deep nesting", t, _raw_reading(909, b"[" * 5000 + b"]" * 5000), "invalid_json", False),
        ("huge integer", t, _raw_reading(910, b"9" * 60_000), "invalid_json", False),
        ("NUL in metric", t, _reading(911, {"phase": "wa\u0000sh"}), "nul_character", False),
        ("NUL in event", ev, json.dumps({"seq": 912, "ts": now, "event": "cycle_started", "data": {"p": "a\u0000"}}).encode(), "nul_character", False),
        ("unknown event", ev, json.dumps({"seq": 913, "ts": now, "event": "took_off"}).encode(), "unknown_event", False),
        ("too many readings", t, json.dumps({"readings": [{"seq": i, "ts": now, "metrics": {}} for i in range(501)]}).encode(), "schema_invalid", False),
        ("bad device id", f"{prefix}/v1/devices/bad.uid/telemetry", _reading(1, {}), "bad_topic", False),
        ("huge topic", f"{prefix}/v1/devices/{'x' * 20_000}/telemetry", _reading(1, {}), "bad_topic", False),
        ("unknown device", device_topic(prefix, "nobody-here", Channel.TELEMETRY), _reading(1, {}), "unknown_device", False),
        ("decommissioned", device_topic(prefix, retired, Channel.TELEMETRY), _reading(1, {"power_w": 1.0}), "device_decommissioned", False),
        ("retained telemetry", t, _reading(914, {"power_w": 1.0}), "retained_telemetry", True),
        ("clearing a retained one", t, b"", "retained_telemetry", True),
        ("bad status", device_topic(prefix, uid, Channel.STATUS), b'{"state": "exploded"}', "schema_invalid", False),
        ("bad command ack", device_topic(prefix, uid, Channel.COMMAND_ACKS), b'{"command_id": "../x", "status": "done"}', "schema_invalid", False),
    ]  # fmt: skip


def test_each_bad_message_is_dead_lettered_acked_counted_and_the_stream_goes_on(
    settings, db, start_ingest, make_device, topic_prefix
):
    devices = register_devices(settings.database_url, "washing_machine", 2)
    uid, retired = list(devices)
    db.execute("UPDATE devices SET decommissioned_at = now() WHERE uid = %s", (retired,))
    cases = _bad_cases(topic_prefix, uid, retired)
    before = {
        reason: sample("kizuna_ingest_dead_letters_total", reason=reason) for *_, reason, _ in cases
    }
    ingest = start_ingest()
    device = make_device(uid)
    for seq, (_, topic, payload, _, retain) in enumerate(cases, start=1):
        device.raw(topic, payload, retain=retain)
        device.reading(seq, WASHER_OK, ago(100 - seq))  # a good message after each bad one
    wait_until(lambda: ingest.worker.totals.readings_stored == len(cases))
    wait_until(lambda: sum(ingest.worker.totals.dead_letters.values()) == len(cases))

    rows = db.execute("SELECT * FROM ingest_dead_letters ORDER BY id").fetchall()
    limit = ingest.config.dead_letter_max_bytes
    # Writer lanes commit different devices independently: match rows to cases by content.
    assert Counter(
        (row["topic"], bytes(row["payload"]), row["payload_size"], row["reason"]) for row in rows
    ) == Counter(
        (topic[:512], payload[:limit], len(payload), reason)
        for _, topic, payload, reason, _ in cases
    )
    assert all(row["received_at"] is not None and row["detail"] for row in rows)
    expected = Counter(reason for *_, reason, _ in cases)
    for reason, count in expected.items():
        assert sample("kizuna_ingest_dead_letters_total", reason=reason) - before[reason] == count
    # Acked: the broker does not redeliver to a new session of the same client id.
    ingest.stop()
    again = start_ingest()
    time.sleep(1.0)
    assert again.worker.totals.messages == 0


def test_qos2_flood_and_one_noisy_device_do_not_starve_others(
    settings, db, start_ingest, make_device, mqtt_url
):
    devices = register_devices(settings.database_url, "washing_machine", 2)
    noisy_uid, quiet_uid = list(devices)
    ingest = start_ingest()
    noisy, quiet = make_device(noisy_uid), make_device(quiet_uid)
    flood = 3000
    started = time.monotonic()
    done = threading.Event()

    def publish_flood() -> None:
        infos = [
            noisy.client.publish(
                noisy.topic(Channel.TELEMETRY), reading_payload(seq, {"power_w": 1.0}), qos=2
            )
            for seq in range(1, flood + 1)
        ]
        for info in infos:
            info.wait_for_publish(30)
        done.set()

    thread = threading.Thread(target=publish_flood)
    thread.start()
    for seq in range(1, 6):
        quiet.reading(seq, {"power_w": 2.0})
    quiet_id = devices[quiet_uid]
    wait_until(
        lambda: (
            db.execute(
                "SELECT count(*) AS n FROM telemetry WHERE device_id = %s", (quiet_id,)
            ).fetchone()["n"]
            == 5
        ),
        timeout_s=10,
    )
    quiet_latency = time.monotonic() - started
    thread.join(60)
    wait_until(lambda: ingest.worker.totals.readings_stored == flood + 5, timeout_s=60)
    assert quiet_latency < 10
    assert ingest.worker.totals.duplicates == 0


def test_publishing_to_a_wildcard_topic_is_refused_by_the_broker_and_ingest_goes_on(
    settings, start_ingest, make_device, mqtt_url, topic_prefix
):
    uid = next(iter(register_devices(settings.database_url, "washing_machine", 1)))
    ingest = start_ingest()
    rogue = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"rogue-{uid}", protocol=mqtt.MQTTv5)
    port = int(mqtt_url.rsplit(":", 1)[1])
    rogue.connect("127.0.0.1", port)
    rogue.loop_start()
    try:
        result = rogue.publish(f"{topic_prefix}/v1/devices/+/telemetry", b"{}", qos=1)
        assert result.rc != mqtt.MQTT_ERR_SUCCESS  # refused before it leaves the client
    except ValueError:
        pass  # paho refuses wildcard topics outright
    finally:
        rogue.disconnect()
        rogue.loop_stop()
    make_device(uid).reading(1, {"power_w": 1.0})
    wait_until(lambda: ingest.worker.totals.readings_stored == 1)
