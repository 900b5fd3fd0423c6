"""Pure decisions: preference merging, quiet hours across midnight, escalation and backoff."""

from __future__ import annotations

from datetime import UTC, datetime, time

from notify.models import ChannelName, Delivery
from notify.policy import escalation_channel, quiet_until, resolve_preference, retry_delay_s

DEFAULTS = (ChannelName.FEED, ChannelName.MQTT)


def _pref(device: int | None, kind: str | None, channels=None, delivery=None) -> dict:
    return {"device_id": device, "moment_kind": kind, "channels": channels, "delivery": delivery}


def test_most_specific_preference_wins_field_by_field() -> None:
    rows = [
        _pref(None, None, ["feed", "email"], "instant"),
        _pref(7, None, None, "digest"),
        _pref(7, "ev.charge_complete", ["webhook"], None),
        _pref(8, None, None, "off"),
    ]
    got = resolve_preference(rows, 7, "ev.charge_complete", DEFAULTS)
    assert got.channels == (ChannelName.WEBHOOK,) and got.delivery is Delivery.DIGEST
    other_kind = resolve_preference(rows, 7, "ev.left_unlocked", DEFAULTS)
    assert other_kind.channels == (ChannelName.FEED, ChannelName.EMAIL)
    assert resolve_preference([], 7, "x.y", DEFAULTS).channels == DEFAULTS


def test_quiet_hours_across_midnight_in_the_persons_zone() -> None:
    start, end = time(22, 0), time(7, 0)
    # 14:30 UTC = 23:30 in Tokyo: quiet until 07:00 Tokyo the next morning (22:00 UTC).
    until = quiet_until(datetime(2026, 3, 1, 14, 30, tzinfo=UTC), "Asia/Tokyo", start, end)
    assert until is not None and until.astimezone(UTC) == datetime(2026, 3, 1, 22, 0, tzinfo=UTC)
    # 20:00 UTC = 05:00 Tokyo (next day): quiet until 07:00 the same local day.
    until = quiet_until(datetime(2026, 3, 1, 20, 0, tzinfo=UTC), "Asia/Tokyo", start, end)
    assert until is not None and until.astimezone(UTC) == datetime(2026, 3, 1, 22, 0, tzinfo=UTC)
    # 03:00 UTC = 12:00 Tokyo: not quiet.
    assert quiet_until(datetime(2026, 3, 1, 3, 0, tzinfo=UTC), "Asia/Tokyo", start, end) is None
    assert quiet_until(datetime(2026, 3, 1, 3, 0, tzinfo=UTC), "Asia/Tokyo", None, None) is None


def test_quiet_hours_within_one_day() -> None:
    until = quiet_until(datetime(2026, 3, 1, 13, 0, tzinfo=UTC), "UTC", time(12), time(14))
    assert until == datetime(2026, 3, 1, 14, 0, tzinfo=UTC)
    assert quiet_until(datetime(2026, 3, 1, 14, 0, tzinfo=UTC), "UTC", time(12), time(14)) is None


def test_escalation_picks_a_reachable_channel_not_already_used() -> None:
    reachable = {ChannelName.FEED, ChannelName.MQTT, ChannelName.WEBHOOK}
    assert escalation_channel(ChannelName.EMAIL, [ChannelName.FEED], reachable) == (
        ChannelName.WEBHOOK
    )
    assert escalation_channel(ChannelName.MQTT, [ChannelName.FEED], reachable) is ChannelName.MQTT
    used = [ChannelName.FEED, ChannelName.MQTT, ChannelName.WEBHOOK]
    assert escalation_channel(ChannelName.EMAIL, used, reachable) is None


def test_backoff_grows_and_is_capped() -> None:
    delays = [retry_delay_s(n, 2.0, 60.0, 0.5) for n in range(1, 8)]
    assert delays[:4] == [2.0, 4.0, 8.0, 16.0]
    assert delays[-1] == 60.0
    assert 1.5 <= retry_delay_s(1, 2.0, 60.0, 0.0) < retry_delay_s(1, 2.0, 60.0, 0.99) < 2.5


def test_leak_and_a_warm_fridge_are_safety_matters_whatever_their_severity() -> None:
    from notify.policy import is_safety_critical

    assert is_safety_critical("washing_machine.leak", "warning")
    assert is_safety_critical("refrigerator.too_warm", "warning")
    assert is_safety_critical("ev.anything", "critical")
    assert not is_safety_critical("ev.left_unlocked", "warning")
