"""The weekly friend update: usage summed from stored telemetry and events, posted once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from devices.catalog import builtin_models
from notify import service
from notify.models import Reaction, ReactionRequest
from notify.weekly import post_weekly_updates, weekly_usage
from store.telemetry import TelemetryRow, ensure_slots, insert_telemetry
from tests.notify.conftest import World

# Sunday 2026-03-08 20:00 in Tokyo (11:00 UTC); the default digest hour is 19.
SUNDAY_EVENING_TOKYO = datetime(2026, 3, 8, 11, 0, tzinfo=UTC)


def _telemetry(world: World, uid: str, model: str, series: list[tuple[datetime, dict]]) -> None:
    slots = ensure_slots(world.db, builtin_models()[model])
    rows = [
        TelemetryRow(world.devices[uid], ts, seq, ts, slots.encode(metrics))
        for seq, (ts, metrics) in enumerate(series, start=1)
    ]
    with world.db.transaction():
        insert_telemetry(world.db, rows)


def _home(world: World) -> None:
    world.customer("aiko", language="ja", name="愛子")
    world.device("ev-1", "ev", "ボルト", "aiko")
    world.device("fridge-1", "refrigerator", None, "aiko")
    week_start = SUNDAY_EVENING_TOKYO - timedelta(days=6)
    _telemetry(
        world,
        "ev-1",
        "ev",
        [
            (week_start, {"odometer_km": 12000.0}),
            (week_start + timedelta(days=2), {"odometer_km": 12150.5}),
            (week_start + timedelta(days=5), {"odometer_km": 12321.0}),
            (SUNDAY_EVENING_TOKYO - timedelta(days=9), {"odometer_km": 11000.0}),  # last week
        ],
    )
    # The fridge draws 100 W for 3 hours: 0.3 kWh.
    _telemetry(
        world,
        "fridge-1",
        "refrigerator",
        [
            (week_start + timedelta(hours=h, minutes=m), {"power_w": 100.0})
            for h in range(3)
            for m in (0, 30)
        ],
    )
    for index in range(4):
        world.db.execute(
            "INSERT INTO device_events (device_id, ts, seq, received_at, event, data) "
            "VALUES (%s, %s, %s, %s, 'door_opened', %s)",
            (
                world.devices["fridge-1"],
                week_start + timedelta(hours=index),
                100 + index,
                week_start,
                json.dumps({}),
            ),
        )


def test_weekly_usage_sums_distance_energy_and_events(world: World) -> None:
    _home(world)
    ev = weekly_usage(world.db, world.devices["ev-1"], "ev", SUNDAY_EVENING_TOKYO)
    assert ev == {"distance_km": 321.0, "readings": 3}
    fridge = weekly_usage(world.db, world.devices["fridge-1"], "refrigerator", SUNDAY_EVENING_TOKYO)
    assert fridge == {"energy_kwh": 0.3, "door_openings": 4, "readings": 6}


def test_weekly_updates_post_on_sunday_evening_once(world: World) -> None:
    _home(world)
    saturday = SUNDAY_EVENING_TOKYO - timedelta(days=1)
    assert post_weekly_updates(world.db, world.cipher, saturday) == 0
    sunday_noon = SUNDAY_EVENING_TOKYO - timedelta(hours=8)
    assert post_weekly_updates(world.db, world.cipher, sunday_noon) == 0
    assert post_weekly_updates(world.db, world.cipher, SUNDAY_EVENING_TOKYO) == 2
    assert post_weekly_updates(world.db, world.cipher, SUNDAY_EVENING_TOKYO) == 0
    posts = {p["title"]: p["body"] for p in world.feed("aiko")}
    assert posts["ボルトの1週間"] == (
        "愛子さん、ボルトです。今週は走行距離321 km、データ送信3回でした。また来週ね！"
    )
    assert posts["あなたの冷蔵庫の1週間"] == (
        "愛子さん、あなたの冷蔵庫です。今週は使用電力量0.3 kWh、ドアの開閉4回、"
        "データ送信6回でした。また来週ね！"
    )


def test_muting_a_weekly_update_stops_that_devices_weekly_posts(world: World) -> None:
    _home(world)
    assert post_weekly_updates(world.db, world.cipher, SUNDAY_EVENING_TOKYO) == 2
    ev_post = next(p for p in world.feed("aiko") if p["device_id"] == world.devices["ev-1"])
    mute = ReactionRequest(reaction=Reaction.MUTE)
    service.react(world.db, world.customers["aiko"], ev_post["id"], mute)
    next_sunday = SUNDAY_EVENING_TOKYO + timedelta(days=7)
    assert post_weekly_updates(world.db, world.cipher, next_sunday) == 1
    assert world.feed("aiko")[-1]["device_id"] == world.devices["fridge-1"]
