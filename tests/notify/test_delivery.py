"""Delivery to a real SMTP server, a real webhook receiver and the real MQTT broker, with faults."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from app.settings import Settings
from notify import service
from notify.channels.mqtt_push import MqttPushChannel
from notify.models import ChannelName, PreferenceUpdate, ProfileUpdate
from notify.outbox import Outbox
from store.db import connect
from tests.notify.conftest import (
    FakeClock,
    SmtpServer,
    WebhookReceiver,
    World,
    make_outbox,
    real_channels,
)

NOON_TOKYO = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
ALL_CHANNELS = [ChannelName.FEED, ChannelName.EMAIL, ChannelName.WEBHOOK]


def _people(world: World, webhook_url: str) -> None:
    world.customer("aiko", language="ja", name="愛子", email="aiko@example.test")
    world.customer(
        "ben", language="en", time_zone="Europe/London", name="Ben", email="ben@example.test"
    )
    world.device("ev-1", "ev", "Bolt", "aiko", "ben")
    world.device("fridge-1", "refrigerator", "Frosty", "aiko", "ben")
    for person in ("aiko", "ben"):
        cid = world.customers[person]
        service.set_preference(world.db, cid, PreferenceUpdate(channels=ALL_CHANNELS))
        service.update_profile(
            world.db,
            cid,
            ProfileUpdate(webhook_url=webhook_url),
            world.cipher,
            allow_private_webhooks=True,
        )


def _drain(outbox: Outbox, db: Any, until: Any, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        outbox.deliver_due(db)
        if until():
            return
        time.sleep(0.05)
    raise AssertionError("outbox did not settle in time")


def _pending(db: Any) -> int:
    return int(
        db.execute("SELECT count(*) AS n FROM notifications WHERE status = 'pending'").fetchone()[
            "n"
        ]
    )


def test_ev_and_fridge_reach_feed_email_and_webhook_in_each_language(
    world: World, smtp_server: SmtpServer, webhook: WebhookReceiver
) -> None:
    _people(world, webhook.url)
    outbox = make_outbox(world.cipher, real_channels(smtp_server), clock=FakeClock(NOON_TOKYO))
    world.moment("ev-1", "ev.charge_complete", {"soc_pct": 80, "range_km": 320})
    world.moment("fridge-1", "refrigerator.door_left_open", {"open_min": 3, "fridge_temp_c": 7})
    outbox.fan_out(world.db)
    _drain(outbox, world.db, lambda: _pending(world.db) == 0)

    mails = {(m["To"], m["Subject"]) for m in smtp_server.sink.messages}
    assert mails == {
        ("aiko@example.test", "Boltの充電が完了しました"),
        ("aiko@example.test", "Frosty：ドアが開いたままです"),
        ("ben@example.test", "Bolt is charged"),
        ("ben@example.test", "Frosty: door left open"),
    }
    ben_mail = next(m for m in smtp_server.sink.messages if m["Subject"] == "Bolt is charged")
    assert ben_mail.get_content().startswith("Hi Ben, it's Bolt. I'm charged to 80%, about 320 km")
    row = next(r for r in world.outbox("ben", "email") if r["kind"] == "ev.charge_complete")
    assert ben_mail["Message-ID"] == f"<kizuna-{row['id']}.{row['idempotency_key']}@kizuna.test>"

    hooks = {(body["kind"], body["language"]): (key, body) for key, body in webhook.calls}
    assert len(webhook.calls) == 4
    key, body = hooks[("refrigerator.door_left_open", "ja")]
    assert body["body"].startswith("愛子さん、Frostyです。ドアが3 分開いたままで")
    assert body["device_uid"] == "fridge-1" and "email" not in body
    assert key == str(
        next(
            r["idempotency_key"]
            for r in world.outbox("aiko", "webhook")
            if r["kind"] == "refrigerator.door_left_open"
        )
    )
    assert [p["kind"] for p in world.feed("aiko")] == [
        "ev.charge_complete",
        "refrigerator.door_left_open",
    ]


def test_receivers_down_then_back_lose_nothing_and_send_nothing_twice(
    world: World, smtp_server: SmtpServer, webhook: WebhookReceiver
) -> None:
    _people(world, webhook.url)
    smtp_server.stop()
    webhook.stop()
    outbox = make_outbox(
        world.cipher, real_channels(smtp_server), clock=FakeClock(NOON_TOKYO), cooldown_s=0
    )
    for index in range(5):
        world.moment(
            "ev-1",
            "ev.charge_complete",
            {"soc_pct": 80 + index, "range_km": 300},
            dedup_key=f"charge-{index}",
        )
    outbox.fan_out(world.db)
    for _ in range(3):  # several failed rounds while both receivers are down
        world.db.execute("UPDATE notifications SET next_attempt_at = now() WHERE status='pending'")
        outbox.deliver_due(world.db)
    rows = world.db.execute(
        "SELECT status, attempts, last_error FROM notifications WHERE channel <> 'feed'"
    ).fetchall()
    assert len(rows) == 20 and all(r["status"] == "pending" and r["attempts"] == 3 for r in rows)
    assert all(r["last_error"] for r in rows)

    smtp_server.start()
    webhook.status = 503  # back, but failing for a while
    webhook.start()
    world.db.execute("UPDATE notifications SET next_attempt_at = now() WHERE status='pending'")
    outbox.deliver_due(world.db)
    assert len(smtp_server.sink.messages) == 10 and webhook.calls == []
    webhook.status = 200
    _drain(outbox, world.db, lambda: _pending(world.db) == 0)

    assert len(webhook.calls) == 10 and len(set(webhook.keys())) == 10
    message_ids = [m["Message-ID"] for m in smtp_server.sink.messages]
    assert len(message_ids) == 10 and len(set(message_ids)) == 10
    assert (
        world.db.execute(
            "SELECT count(*) AS n FROM notifications WHERE status <> 'sent'"
        ).fetchone()["n"]
        == 0
    )


class WorkerKilled(BaseException):
    """Stands for the process dying (not an Exception: nothing in the worker catches it)."""


class DiesAfterDelivering:
    """Delivers through a real channel, then the worker dies before recording the result."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel

    def deliver(self, message: Any) -> None:
        self.channel.deliver(message)
        raise WorkerKilled


def test_a_worker_dying_after_delivery_resends_with_the_same_idempotency_key(
    world: World, smtp_server: SmtpServer, webhook: WebhookReceiver
) -> None:
    _people(world, webhook.url)
    world.moment("fridge-1", "refrigerator.filter_due", {"filter_hours": 4380})
    channels = real_channels(smtp_server)
    dying = make_outbox(
        world.cipher,
        {name: DiesAfterDelivering(c) for name, c in channels.items()},
        lease_s=60,
        batch_size=1,
    )
    dying.fan_out(world.db)
    for _ in range(4):  # 2 people x (email, webhook)
        with pytest.raises(WorkerKilled):
            dying.deliver_due(world.db)
    assert dying.deliver_due(world.db) == 0 and _pending(world.db) == 4  # all leased, none sent
    assert len(webhook.calls) == 2  # each row delivered once, then the crash
    # Time passes: the dead worker's leases run out and a healthy worker takes over.
    world.db.execute("UPDATE notifications SET lease_until = now() - interval '1 s'")
    _drain(make_outbox(world.cipher, channels), world.db, lambda: _pending(world.db) == 0)
    assert len(webhook.calls) == 4 and len(set(webhook.keys())) == 2  # same keys: dedupable
    message_ids = [m["Message-ID"] for m in smtp_server.sink.messages]
    assert len(message_ids) == 4 and len(set(message_ids)) == 2


def test_several_delivery_workers_deliver_each_notification_once(
    world: World, webhook: WebhookReceiver, database_url: str
) -> None:
    world.customer("ann", email=None)
    world.device("wm-1", "washing_machine", "Suds", "ann")
    cid = world.customers["ann"]
    service.set_preference(world.db, cid, PreferenceUpdate(channels=[ChannelName.WEBHOOK]))
    profile = ProfileUpdate(webhook_url=webhook.url, daily_cap=1000)
    service.update_profile(world.db, cid, profile, world.cipher, allow_private_webhooks=True)
    for index in range(40):
        world.moment("wm-1", "washing_machine.cycle_finished", {}, dedup_key=f"c{index}")
    outbox = make_outbox(world.cipher, real_channels_webhook_only(), cooldown_s=0, batch_size=3)
    while outbox.fan_out(world.db):
        pass

    def work() -> None:
        with connect(database_url, autocommit=True) as conn:
            while outbox.deliver_due(conn):
                pass

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(webhook.calls) == 40 and len(set(webhook.keys())) == 40
    assert _pending(world.db) == 0


def real_channels_webhook_only() -> dict[ChannelName, Any]:
    from notify.channels.webhook import WebhookChannel

    return {ChannelName.WEBHOOK: WebhookChannel(2, allow_private=True)}


def test_permanent_errors_fail_at_once_and_transient_ones_give_up_after_max_attempts(
    world: World, webhook: WebhookReceiver, smtp_server: SmtpServer
) -> None:
    _people(world, webhook.url)
    webhook.status = 410
    smtp_server.stop()
    outbox = make_outbox(world.cipher, real_channels(smtp_server), max_attempts=3)
    world.moment("ev-1", "ev.charge_complete", {"soc_pct": 80, "range_km": 320})
    outbox.fan_out(world.db)
    for _ in range(4):
        world.db.execute("UPDATE notifications SET next_attempt_at = now() WHERE status='pending'")
        outbox.deliver_due(world.db)
    hooks = world.outbox("aiko", "webhook")
    assert (hooks[0]["status"], hooks[0]["reason"], hooks[0]["attempts"]) == (
        "failed",
        "webhook answered 410",
        1,
    )
    mail = world.outbox("aiko", "email")[0]
    assert mail["status"] == "failed" and mail["attempts"] == 3
    assert mail["reason"].startswith("gave up after 3: smtp unavailable")


def test_webhook_urls_pointing_inside_are_refused(world: World) -> None:
    world.customer("ann")
    from notify.errors import PreferenceError

    for url in (
        "http://127.0.0.1:8080/x",
        "http://169.254.169.254/latest",
        "file:///etc/passwd",
        "http://user:pw@example.com/",
    ):
        with pytest.raises(PreferenceError):
            service.update_profile(
                world.db, world.customers["ann"], ProfileUpdate(webhook_url=url), world.cipher
            )


def test_mqtt_push_reaches_the_owners_app_topic(
    world: World, settings: Settings, mqtt_url: str, topic_prefix: str
) -> None:
    world.customer("ann", language="en", name="Ann")
    world.device("ev-1", "ev", "Bolt", "ann")
    public_id = world.db.execute("SELECT public_id::text AS p FROM customers").fetchone()["p"]
    received: list[dict[str, Any]] = []
    got = threading.Event()
    subscriber = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{topic_prefix}-app")
    subscribed = threading.Event()
    subscriber.on_subscribe = lambda *a: subscribed.set()

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        received.append(json.loads(message.payload))
        got.set()

    subscriber.on_message = on_message
    host, port = mqtt_url.removeprefix("mqtt://").split(":")
    subscriber.connect(host, int(port))
    subscriber.loop_start()
    try:
        subscriber.subscribe(f"{topic_prefix}/v1/owners/{public_id}/feed", qos=1)
        assert subscribed.wait(5)
        channel = MqttPushChannel(settings)
        outbox = make_outbox(world.cipher, {ChannelName.MQTT: channel})
        world.moment("ev-1", "ev.charge_complete", {"soc_pct": 80, "range_km": 320})
        outbox.fan_out(world.db)
        outbox.deliver_due(world.db)
        assert got.wait(5)
        channel.close()
    finally:
        subscriber.loop_stop()
        subscriber.disconnect()
    assert received[0]["title"] == "Bolt is charged" and received[0]["device_uid"] == "ev-1"
    assert world.outbox("ann", "mqtt")[0]["status"] == "sent"


def test_chat_services_are_reached_through_apprise_and_retried_when_down(
    world: World, webhook: WebhookReceiver
) -> None:
    from notify.channels.chat import ChatChannel

    world.customer("ann", language="en", name="Ann")
    world.device("ac-1", "air_conditioner", "Kaze", "ann")
    cid = world.customers["ann"]
    service.set_preference(world.db, cid, PreferenceUpdate(channels=[ChannelName.CHAT]))
    chat_url = f"json://127.0.0.1:{webhook.port}/hook"
    service.update_profile(world.db, cid, ProfileUpdate(chat_urls=[chat_url]), world.cipher)
    outbox = make_outbox(world.cipher, {ChannelName.CHAT: ChatChannel()})
    world.moment("ac-1", "air_conditioner.filter_cleaning_due", {"filter_hours": 500})
    outbox.fan_out(world.db)
    webhook.stop()
    outbox.deliver_due(world.db)
    row = world.outbox("ann", "chat")[0]
    assert (row["status"], row["attempts"]) == ("pending", 1) and row["last_error"]
    webhook.start()
    _drain(outbox, world.db, lambda: _pending(world.db) == 0)
    assert len(webhook.calls) == 1
    body = webhook.calls[0][1]
    assert body["title"] == "Kaze: filter cleaning due"
    assert body["message"].startswith("Hi Ann, it's Kaze. I've run for 500 hr")
