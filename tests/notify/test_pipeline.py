"""End to end: an EV and a fridge publish over MQTT; ingest + rules + the notify component run as
`kizuna serve` runs them; the owner (Japanese) and a family member (English) get the messages
through the feed, real SMTP and a real webhook, each per their own preferences."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from app.settings import Settings
from devices.protocol import Channel, DeviceEvent, Reading, device_topic, json_payload
from notify import service
from notify.config import NotifyConfig
from notify.models import ChannelName, PreferenceUpdate, ProfileUpdate
from tests.conftest import make_test_settings
from tests.notify.conftest import SmtpServer, WebhookReceiver, World
from tests.platform import running_components

pytestmark = pytest.mark.mqtt5  # the device-side test clients speak MQTT 5


@pytest.fixture
def settings(
    database_url: str, mqtt_url: str, topic_prefix: str, tmp_path: Path, smtp_server: SmtpServer
) -> Settings:
    """Test settings, with notify pointed at the test SMTP server and allowed to call loopback."""
    notify = NotifyConfig(
        smtp_url=smtp_server.url, allow_private_webhooks=True, poll_interval_s=0.1, retry_base_s=0.1
    )
    return make_test_settings(database_url, mqtt_url, topic_prefix, tmp_path, notify=notify)


@pytest.fixture
def platform(settings: Settings) -> Iterator[Settings]:
    """Ingest (with its rules step) and the notify component, in threads."""
    from ingest.main import run as run_ingest
    from notify.main import run as run_notify

    with running_components(settings, run_ingest, run_notify) as running:
        yield running


def _publish(settings: Settings, messages: list[tuple[str, bytes]]) -> None:
    assert settings.mqtt_url is not None
    host, port = settings.mqtt_url.removeprefix("mqtt://").split(":")
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"{settings.mqtt_topic_prefix}-devices"
    )
    client.connect(host, int(port))
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()


def _wait_for(check: Any, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.mark.slow
def test_ev_and_fridge_speak_to_owner_and_family_through_feed_email_and_webhook(
    platform: Settings, world: World, smtp_server: SmtpServer, webhook: WebhookReceiver
) -> None:
    world.customer("aiko", language="ja", name="愛子", email="aiko@example.test")
    world.customer("ben", language="en", time_zone="Europe/London", name="Ben")
    world.device("ev-1", "ev", "ボルト", "aiko", "ben")
    world.device("fridge-1", "refrigerator", None, "aiko", "ben")
    aiko, ben = world.customers["aiko"], world.customers["ben"]
    service.set_preference(
        world.db, aiko, PreferenceUpdate(channels=[ChannelName.FEED, ChannelName.EMAIL])
    )
    service.set_preference(
        world.db, ben, PreferenceUpdate(channels=[ChannelName.FEED, ChannelName.WEBHOOK])
    )
    service.set_preference(
        world.db,
        ben,
        PreferenceUpdate(
            device_uid="fridge-1",
            moment_kind="refrigerator.filter_due",
            channels=[ChannelName.FEED],
        ),
    )
    service.update_profile(
        world.db,
        ben,
        ProfileUpdate(webhook_url=webhook.url),
        world.cipher,
        allow_private_webhooks=True,
    )

    now = datetime.now(UTC)
    prefix = platform.mqtt_topic_prefix
    _publish(
        platform,
        [
            (
                device_topic(prefix, "ev-1", Channel.TELEMETRY),
                json_payload(Reading(seq=1, ts=now, metrics={"soc_pct": 80.0, "range_km": 320.0})),
            ),
            (
                device_topic(prefix, "ev-1", Channel.EVENTS),
                json_payload(DeviceEvent(seq=2, ts=now, event="charge_complete")),
            ),
            (
                device_topic(prefix, "fridge-1", Channel.TELEMETRY),
                json_payload(Reading(seq=1, ts=now, metrics={"filter_hours": 4400.0})),
            ),
        ],
    )
    _wait_for(lambda: len(world.feed("aiko")) == 2 and len(world.feed("ben")) == 2)
    _wait_for(lambda: len(smtp_server.sink.messages) == 2 and len(webhook.calls) == 1)

    titles = {p["kind"]: p["title"] for p in world.feed("aiko")}
    assert titles == {
        "ev.charge_complete": "ボルトの充電が完了しました",
        "refrigerator.filter_due": "あなたの冷蔵庫：フィルター交換の時期です",
    }
    ben_posts = {p["kind"]: p["body"] for p in world.feed("ben")}
    assert ben_posts["ev.charge_complete"] == (
        "Hi Ben, it's ボルト. I'm charged to 80%, about 320 km of range. Ready when you are!"
    )
    assert ben_posts["refrigerator.filter_due"].startswith(
        "Hi Ben, it's your fridge. My water filter has been working for 4,400 hr."
    )
    subjects = sorted(m["Subject"] for m in smtp_server.sink.messages)
    assert subjects == ["あなたの冷蔵庫：フィルター交換の時期です", "ボルトの充電が完了しました"]
    assert {m["To"] for m in smtp_server.sink.messages} == {"aiko@example.test"}
    # Ben's fridge-filter preference keeps it to the feed; his webhook gets the EV only.
    assert [body["kind"] for _, body in webhook.calls] == ["ev.charge_complete"]
    _wait_for(
        lambda: (
            not world.db.execute("SELECT 1 FROM notifications WHERE status = 'pending'").fetchall()
        )
    )
