"""Fan-out: a moment becomes posts and outbox rows per person, honouring their preferences."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, time, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.pq import TransactionStatus

from notify import service
from notify.models import ChannelName, Delivery, PreferenceUpdate, ProfileUpdate
from store.db import connect
from tests.notify.conftest import FakeClock, RecordingChannel, World, make_outbox

EV_FACTS = {"soc_pct": 18, "range_km": 61, "commute_time": "07:40"}
# 03:00 UTC = 12:00 in Tokyo and London 03:00.
NOON_TOKYO = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)


def _family(world: World) -> None:
    world.customer("aiko", language="ja", name="愛子", email="aiko@example.test")
    world.customer("ben", language="en", time_zone="Europe/London", name="Ben")
    world.device("ev-1", "ev", "ボルト", "aiko", "ben")
    world.device("fridge-1", "refrigerator", None, "aiko")


def test_a_moment_is_queued_by_the_trigger_and_posted_to_each_person_in_their_language(
    world: World,
) -> None:
    _family(world)
    moment_id = world.moment("ev-1", "ev.low_charge_before_commute", EV_FACTS, "warning")
    assert world.db.execute("SELECT moment_id FROM notify_inbox").fetchall() == [
        {"moment_id": moment_id}
    ]
    outbox = make_outbox(world.cipher, clock=FakeClock(NOON_TOKYO))
    assert outbox.fan_out(world.db) == 1
    assert outbox.fan_out(world.db) == 0
    aiko, ben = world.feed("aiko"), world.feed("ben")
    assert aiko[0]["title"] == "ボルト：明日に向けて充電を"
    assert aiko[0]["body"].startswith("愛子さん、ボルトです。いまバッテリーが18%")
    assert ben[0]["body"].startswith("Hi Ben, it's ボルト. I'm at 18% (61 km of range)")
    # Default channels: the feed and a push to the app.
    assert {(r["channel"], r["status"]) for r in world.outbox("aiko")} == {
        ("feed", "sent"),
        ("mqtt", "pending"),
    }


def test_a_product_without_nickname_speaks_with_its_model_voice(world: World) -> None:
    _family(world)
    world.moment("fridge-1", "refrigerator.door_left_open", {"open_min": 3, "fridge_temp_c": 7.5})
    make_outbox(world.cipher).fan_out(world.db)
    post = world.feed("aiko")[0]
    assert post["title"] == "あなたの冷蔵庫：ドアが開いたままです"
    assert "ドアが3 分開いたままで、庫内は7.5°Cです" in post["body"]


def test_family_members_follow_their_own_preferences(world: World) -> None:
    _family(world)
    ben, ev = world.customers["ben"], world.devices["ev-1"]
    service.set_preference(
        world.db, ben, PreferenceUpdate(device_uid="ev-1", delivery=Delivery.OFF)
    )
    service.set_preference(
        world.db,
        world.customers["aiko"],
        PreferenceUpdate(channels=[ChannelName.FEED, ChannelName.EMAIL]),
    )
    world.moment("ev-1", "ev.charge_complete", {"soc_pct": 80, "range_km": 320})
    make_outbox(world.cipher, {ChannelName.EMAIL: RecordingChannel()}).fan_out(world.db)
    assert world.feed("ben") == []
    assert {(r["channel"], r["status"], r["reason"]) for r in world.outbox("ben")} == {
        ("feed", "suppressed", "muted"),
        ("mqtt", "suppressed", "muted"),
    }
    assert {(r["channel"], r["status"]) for r in world.outbox("aiko")} == {
        ("feed", "sent"),
        ("email", "pending"),
    }
    assert ev in {r["device_id"] for r in world.outbox("aiko")}


def test_a_muted_device_still_posts_a_critical_alert(world: World) -> None:
    world.customer("ann")
    world.device("wm-1", "washing_machine", "Suds", "ann")
    service.set_preference(
        world.db, world.customers["ann"], PreferenceUpdate(device_uid="wm-1", delivery=Delivery.OFF)
    )
    world.moment("wm-1", "washing_machine.leak", {"water_flow_lpm": 4.0}, "critical")
    make_outbox(world.cipher).fan_out(world.db)
    assert [p["title"] for p in world.feed("ann")] == ["Suds: water leak!"]


def test_quiet_hours_hold_interruptions_but_not_critical_ones(world: World) -> None:
    _family(world)
    aiko = world.customers["aiko"]
    service.update_profile(
        world.db, aiko, ProfileUpdate(quiet_start=time(22), quiet_end=time(7)), world.cipher
    )
    late = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)  # 23:30 in Tokyo
    world.moment("ev-1", "ev.not_plugged_in", {"soc_pct": 30, "range_km": 100})
    world.moment(
        "fridge-1", "refrigerator.too_warm", {"fridge_temp_c": 12, "minutes": 45}, "warning"
    )
    make_outbox(world.cipher, clock=FakeClock(late)).fan_out(world.db)
    push = {r["kind"]: r for r in world.outbox("aiko", "mqtt")}
    held = push["ev.not_plugged_in"]
    assert held["status"] == "pending" and held["reason"] == "quiet_hours"
    assert held["next_attempt_at"] == datetime(2026, 3, 2, 22, 0, tzinfo=UTC)  # 07:00 Tokyo
    assert push["refrigerator.too_warm"]["next_attempt_at"] == late
    assert len(world.feed("aiko")) == 2  # the feed is silent: it always gets the post


def test_cooldown_suppresses_repeats_per_device_and_kind(world: World) -> None:
    _family(world)
    clock = FakeClock(NOON_TOKYO)
    outbox = make_outbox(world.cipher, clock=clock, cooldown_s=3600)
    for minute in (0, 10, 70):
        clock.value = NOON_TOKYO + timedelta(minutes=minute)
        world.db.execute("SELECT 1")
        world.moment("ev-1", "ev.left_unlocked", {"unlocked_min": 10}, "warning")
        outbox.fan_out(world.db)
        # created_at is the database clock: move it with the test clock.
        world.db.execute(
            "UPDATE notifications SET created_at = %s WHERE created_at > %s",
            (clock.value, clock.value),
        )
    feed_rows = world.outbox("aiko", "feed")
    assert [(r["status"], r["reason"]) for r in feed_rows] == [
        ("sent", None),
        ("suppressed", "cooldown"),
        ("sent", None),
    ]


def test_daily_cap_stops_interruptions_but_not_critical_ones(world: World) -> None:
    world.customer("ann")
    world.device("ac-1", "air_conditioner", "Kaze", "ann")
    service.update_profile(
        world.db, world.customers["ann"], ProfileUpdate(daily_cap=2), world.cipher
    )
    outbox = make_outbox(world.cipher, cooldown_s=0)
    kinds = ["air_conditioner.filter_cleaning_due"] * 3
    for kind in kinds:
        world.moment("ac-1", kind, {"filter_hours": 500})
    world.moment(
        "ac-1",
        "air_conditioner.unusual_power_draw",
        {"power_w": 2000, "typical_power_w": 600},
        "critical",
    )
    outbox.fan_out(world.db)
    push = [(r["kind"], r["status"], r["reason"]) for r in world.outbox("ann", "mqtt")]
    assert push == [
        ("air_conditioner.filter_cleaning_due", "pending", None),
        ("air_conditioner.filter_cleaning_due", "pending", None),
        ("air_conditioner.filter_cleaning_due", "suppressed", "daily_cap"),
        ("air_conditioner.unusual_power_draw", "pending", None),
    ]


def test_digest_mode_bundles_minor_moments_into_a_daily_friend_update(world: World) -> None:
    _family(world)
    aiko = world.customers["aiko"]
    service.set_preference(
        world.db,
        aiko,
        PreferenceUpdate(channels=[ChannelName.FEED, ChannelName.EMAIL], delivery=Delivery.DIGEST),
    )
    service.update_profile(world.db, aiko, ProfileUpdate(digest_hour=19), world.cipher)
    clock = FakeClock(datetime(2026, 3, 2, 3, 0, tzinfo=UTC))  # 12:00 Tokyo
    outbox = make_outbox(world.cipher, clock=clock)
    world.moment("fridge-1", "refrigerator.filter_due", {"filter_hours": 4380})
    world.moment("ev-1", "ev.charge_complete", {"soc_pct": 80, "range_km": 320})
    world.moment(
        "ev-1",
        "ev.tire_pressure_dropping",
        {"tire": "front_left", "pressure_kpa": 180, "rate_kpa_per_h": -12},
        "critical",
    )
    outbox.fan_out(world.db)
    assert [p["kind"] for p in world.feed("aiko")] == ["ev.tire_pressure_dropping"]
    assert outbox.send_digests(world.db) == 0  # not 19:00 yet in Tokyo
    clock.value = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)  # 19:30 Tokyo
    assert outbox.send_digests(world.db) == 1
    assert outbox.send_digests(world.db) == 0
    digest = world.feed("aiko")[-1]
    assert digest["kind"] == "friend.digest" and digest["title"] == "今日のおしらせまとめ"
    assert (
        "• あなたの冷蔵庫：フィルター交換の時期です\n• ボルトの充電が完了しました" in digest["body"]
    )
    digest_mail = [r for r in world.outbox("aiko", "email") if r["purpose"] == "digest"]
    assert [(r["status"], r["title"]) for r in digest_mail] == [("pending", "今日のおしらせまとめ")]
    # Ben has no digest preference: he got the charge post at once.
    assert [p["kind"] for p in world.feed("ben")] == [
        "ev.charge_complete",
        "ev.tire_pressure_dropping",
    ]


def test_critical_alert_escalates_to_a_second_channel_unless_acknowledged(world: World) -> None:
    _family(world)
    email = RecordingChannel()
    clock = FakeClock(NOON_TOKYO)
    outbox = make_outbox(
        world.cipher, {ChannelName.EMAIL: email, ChannelName.MQTT: RecordingChannel()}, clock=clock
    )
    world.moment(
        "fridge-1", "refrigerator.too_warm", {"fridge_temp_c": 12, "minutes": 45}, "critical"
    )
    world.moment(
        "ev-1",
        "ev.tire_pressure_dropping",
        {"tire": "rear_right", "pressure_kpa": 150, "rate_kpa_per_h": -20},
        "critical",
    )
    outbox.fan_out(world.db)
    escalations = [r for r in world.outbox("aiko") if r["purpose"] == "escalation"]
    assert [(r["channel"], r["status"]) for r in escalations] == [("email", "pending")] * 2
    assert escalations[0]["title"].startswith("まだ対応が必要です：")
    # Aiko reads the tire post; nobody reads the fridge post. Time passes.
    tire_post = next(p for p in world.feed("aiko") if p["kind"] == "ev.tire_pressure_dropping")
    service.mark_read(world.db, world.customers["aiko"], tire_post["id"])
    world.db.execute("UPDATE notifications SET next_attempt_at = now() - interval '1 s'")
    while outbox.deliver_due(world.db):
        pass
    done = {
        r["kind"]: (r["status"], r["reason"])
        for r in world.outbox("aiko")
        if r["purpose"] == "escalation"
    }
    assert done == {
        "refrigerator.too_warm": ("sent", None),
        "ev.tire_pressure_dropping": ("suppressed", "acknowledged"),
    }
    assert [m.kind for m in email.delivered] == ["refrigerator.too_warm"]
    assert email.delivered[0].email == "aiko@example.test"


def test_several_fan_out_workers_post_each_moment_exactly_once(
    world: World, database_url: str
) -> None:
    _family(world)
    for index in range(60):
        world.moment(
            "ev-1", "ev.charge_complete", {"soc_pct": 80, "range_km": 300}, dedup_key=f"m{index}"
        )
    outbox = make_outbox(world.cipher, cooldown_s=0, batch_size=7)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with connect(database_url, autocommit=True) as conn:
                while outbox.fan_out(conn):
                    pass
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    posts: Any = world.db.execute(
        "SELECT customer_id, count(*) AS n, count(DISTINCT moment_id) AS d FROM feed_posts "
        "GROUP BY customer_id"
    ).fetchall()
    assert sorted((p["n"], p["d"]) for p in posts) == [(60, 60), (60, 60)]
    assert world.db.execute("SELECT count(*) AS n FROM notify_inbox").fetchone()["n"] == 0


def test_a_channel_the_deployment_lacks_is_suppressed_with_that_reason(world: World) -> None:
    _family(world)
    aiko = world.customers["aiko"]
    service.set_preference(
        world.db, aiko, PreferenceUpdate(channels=[ChannelName.FEED, ChannelName.EMAIL])
    )
    world.moment("fridge-1", "refrigerator.filter_due", {"filter_hours": 4380})
    make_outbox(world.cipher, {ChannelName.MQTT: RecordingChannel()}).fan_out(world.db)
    assert [(r["channel"], r["status"], r["reason"]) for r in world.outbox("aiko")] == [
        ("feed", "sent", None),
        ("email", "suppressed", "channel_not_configured"),
    ]


def test_escalation_is_not_sent_when_the_operator_acknowledged_the_alert(world: World) -> None:
    world.customer("ann", email="ann@example.test")
    device = world.device("wm-1", "washing_machine", "Suds", "ann")
    rule = world.db.execute(
        "INSERT INTO rules (key, source, scope_model_id, spec) "
        "VALUES ('test.leak', 'api', 'washing_machine', '{}') RETURNING id"
    ).fetchone()["id"]
    alert = world.db.execute(
        "INSERT INTO alerts (rule_id, device_id, severity, opened_at, dedup_key) "
        "VALUES (%s, %s, 'critical', now(), 'a1') RETURNING id",
        (rule, device),
    ).fetchone()["id"]
    world.db.execute(
        "INSERT INTO moments (device_id, kind, severity, occurred_at, facts, alert_id, dedup_key)"
        " VALUES (%s, 'washing_machine.leak', 'critical', now(), '{}', %s, 'm1')",
        (device, alert),
    )
    email = RecordingChannel()
    outbox = make_outbox(world.cipher, {ChannelName.EMAIL: email, ChannelName.MQTT: email})
    outbox.fan_out(world.db)
    world.db.execute(
        "UPDATE alerts SET status = 'acknowledged', acknowledged_at = now() WHERE id = %s",
        (alert,),
    )
    world.db.execute("UPDATE notifications SET next_attempt_at = now() - interval '1 s'")
    while outbox.deliver_due(world.db):
        pass
    rows = {
        r["purpose"]: (r["channel"], r["status"], r["reason"])
        for r in world.outbox("ann")
        if r["channel"] != "feed"
    }
    assert rows == {
        "moment": ("mqtt", "sent", None),
        "escalation": ("email", "suppressed", "acknowledged"),
    }
    assert [m.purpose for m in email.delivered] == ["moment"]


def test_a_failed_fan_out_writes_nothing_and_leaves_the_moment_for_the_next_pass(
    world: World,
) -> None:
    _family(world)
    moment = world.moment("ev-1", "ev.charge_complete", {"soc_pct": 80, "range_km": 320})
    outbox = make_outbox(world.cipher)
    world.db.execute(
        """CREATE FUNCTION test_refuse_posts() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN RAISE EXCEPTION 'feed unavailable'; END $$"""
    )
    world.db.execute(
        "CREATE TRIGGER test_refuse_posts BEFORE INSERT ON feed_posts "
        "FOR EACH ROW EXECUTE FUNCTION test_refuse_posts()"
    )
    try:
        with pytest.raises(psycopg.errors.RaiseException, match="feed unavailable"):
            outbox.fan_out(world.db)
        assert world.db.info.transaction_status == TransactionStatus.IDLE
        assert world.feed("aiko") == [] and world.outbox("aiko") == []
        assert world.db.execute("SELECT moment_id FROM notify_inbox").fetchall() == [
            {"moment_id": moment}
        ]
    finally:
        world.db.execute("DROP TRIGGER test_refuse_posts ON feed_posts")
        world.db.execute("DROP FUNCTION test_refuse_posts()")
    assert outbox.fan_out(world.db) == 1
    assert [p["moment_id"] for p in world.feed("aiko")] == [moment]
