"""Operator notices (a rule's notify_operators action) reach the operators in settings."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from app.settings import Settings
from devices.protocol import Channel, Reading, device_topic, json_payload
from notify.config import NotifyConfig
from notify.models import ChannelName
from notify.signing import new_secret, verify
from tests.conftest import make_test_settings
from tests.notify.conftest import (
    RecordingChannel,
    SmtpServer,
    WebhookReceiver,
    World,
    make_outbox,
    real_channels,
)
from tests.notify.test_pipeline import _publish, _wait_for
from tests.platform import running_components

OPERATORS = ("ops@example.test", "oncall@example.test")
SECRET = new_secret()


def _operator_config(**values: Any) -> dict[str, Any]:
    return {
        "operator_emails": OPERATORS,
        "operator_webhook_secret": SecretStr(SECRET),
        **values,
    }


def _sent_operator_rows(world: World) -> list[dict[str, Any]]:
    return world.db.execute(
        """SELECT channel, recipient, status, customer_id, kind, idempotency_key::text AS key
           FROM notifications WHERE purpose = 'operator' ORDER BY channel, recipient"""
    ).fetchall()


@pytest.fixture
def operator_platform(
    database_url: str,
    mqtt_url: str,
    topic_prefix: str,
    tmp_path: Path,
    smtp_server: SmtpServer,
    webhook: WebhookReceiver,
) -> Iterator[Settings]:
    """Ingest with its rules step and the notify component, operators set in notify's settings."""
    from ingest.main import run as run_ingest
    from notify.main import run as run_notify

    notify = NotifyConfig(
        smtp_url=smtp_server.url,
        poll_interval_s=0.1,
        **_operator_config(operator_webhook_url=webhook.url),
    )
    settings = make_test_settings(database_url, mqtt_url, topic_prefix, tmp_path, notify=notify)
    with running_components(settings, run_ingest, run_notify) as running:
        yield running


@pytest.mark.slow
@pytest.mark.mqtt5
def test_a_leak_tells_every_operator_by_email_and_signed_webhook(
    operator_platform: Settings, world: World, smtp_server: SmtpServer, webhook: WebhookReceiver
) -> None:
    world.customer("ann")
    world.device("wm-1", "washing_machine", "Suds", "ann")
    reading = Reading(
        seq=1, ts=datetime.now(UTC), metrics={"leak_detected": True, "water_flow_lpm": 9.0}
    )
    topic = device_topic(operator_platform.mqtt_topic_prefix, "wm-1", Channel.TELEMETRY)
    _publish(operator_platform, [(topic, json_payload(reading))])

    def operators_mailed() -> list[Any]:
        return [m for m in smtp_server.sink.messages if m["To"] in OPERATORS]

    _wait_for(lambda: len(operators_mailed()) == 2 and len(webhook.received) == 1)
    mails = operators_mailed()
    assert sorted(m["To"] for m in mails) == sorted(OPERATORS)
    assert {m["Subject"] for m in mails} == {"Operator notice (critical): wm-1"}
    body = mails[0].get_content()
    assert body.startswith("Washing machine reports a leak\n")
    assert "Device: wm-1 (washing_machine)" in body and "Rule: washing_machine.leak" in body

    (call,) = webhook.received
    key = verify(SECRET, call.headers, call.body)
    assert call.headers["idempotency-key"] == key
    rows = _sent_operator_rows(world)
    assert [(r["channel"], r["recipient"], r["status"], r["customer_id"]) for r in rows] == [
        ("email", "oncall@example.test", "sent", None),
        ("email", "ops@example.test", "sent", None),
        ("webhook", webhook.url, "sent", None),
    ]
    assert key == rows[2]["key"]
    # The owner still gets the product's own message; operators are not in anyone's feed.
    assert [p["kind"] for p in world.feed("ann")] == ["washing_machine.leak"]


def _notice(world: World, dedup_key: str = "leak-1") -> None:
    """Write a notice as the rules step does: a row in its operator_notifications table."""
    rule = world.db.execute(
        "INSERT INTO rules (key, source, scope_model_id, spec) "
        "VALUES ('test.leak', 'api', 'washing_machine', '{}') "
        "ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key RETURNING id"
    ).fetchone()["id"]
    world.db.execute(
        """INSERT INTO operator_notifications (device_id, rule_id, severity, message,
               occurred_at, dedup_key)
           VALUES (%s, %s, 'warning', 'Leak sensor wet', %s, %s)
           ON CONFLICT (dedup_key) DO NOTHING""",
        (world.devices["wm-1"], rule, datetime(2026, 3, 2, 3, 0, tzinfo=UTC), dedup_key),
    )


def test_each_operator_gets_a_notice_once_and_a_failed_webhook_is_retried_with_its_id(
    world: World, smtp_server: SmtpServer, webhook: WebhookReceiver
) -> None:
    world.customer("ann")
    world.device("wm-1", "washing_machine", "Suds", "ann")
    _notice(world)
    _notice(world)  # the same edge again: rules keeps one notice per dedup key
    channels = real_channels(smtp_server)
    outbox = make_outbox(
        world.cipher, channels, **_operator_config(operator_webhook_url=webhook.url)
    )
    assert outbox.fan_out(world.db) == 1
    assert outbox.fan_out(world.db) == 0
    webhook.status = 503
    outbox.deliver_due(world.db)
    webhook.status = 200
    world.db.execute("UPDATE notifications SET next_attempt_at = now() WHERE status = 'pending'")
    deadline = time.monotonic() + 10
    while outbox.deliver_due(world.db) and time.monotonic() < deadline:
        pass
    assert sorted(m["To"] for m in smtp_server.sink.messages) == sorted(OPERATORS)
    failed, delivered = webhook.received
    assert (failed.status, delivered.status) == (503, 200)
    assert verify(SECRET, failed.headers, failed.body) == verify(
        SECRET, delivered.headers, delivered.body
    )
    assert [r["status"] for r in _sent_operator_rows(world)] == ["sent"] * 3
    assert world.db.execute("SELECT count(*) AS n FROM notify_operator_inbox").fetchone()["n"] == 0


def test_without_operators_or_channels_the_notice_stays_for_the_dashboard_only(
    world: World,
) -> None:
    world.customer("ann")
    world.device("wm-1", "washing_machine", "Suds", "ann")
    _notice(world, "no-operators")
    assert make_outbox(world.cipher, {ChannelName.EMAIL: RecordingChannel()}).fan_out(world.db)
    assert _sent_operator_rows(world) == []
    _notice(world, "no-smtp")
    mail_less = make_outbox(world.cipher, {}, operator_emails=OPERATORS)
    assert mail_less.fan_out(world.db) == 1
    rows = world.db.execute(
        "SELECT status, reason FROM notifications WHERE purpose = 'operator'"
    ).fetchall()
    assert rows == [{"status": "suppressed", "reason": "channel_not_configured"}] * 2
    assert world.db.execute("SELECT count(*) AS n FROM operator_notifications").fetchone()["n"] == 2


def test_operator_settings_refuse_an_unsigned_webhook_or_a_bad_address() -> None:
    with pytest.raises(ValidationError, match="operator_webhook_secret"):
        NotifyConfig(operator_webhook_url="https://alerts.example.com/hook")
    with pytest.raises(ValidationError, match="whsec_"):
        NotifyConfig(
            operator_webhook_url="https://alerts.example.com/hook",
            operator_webhook_secret=SecretStr("not base64 !"),
        )
    with pytest.raises(ValidationError, match="not an email address"):
        NotifyConfig(operator_emails=("ops at example",))
