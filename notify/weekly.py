"""The weekly friend update: each product sums up its week to each person who shares it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog

from notify import repo
from notify.voice import Speaker, render_weekly
from store.encryption import EncryptionError, FieldCipher
from store.timeseries import SeriesQueryError, bucketed_series

log = structlog.get_logger(__name__)

WEEK = timedelta(days=7)
HOUR = timedelta(hours=1)
# Events worth counting in the summary, per product model.
COUNTED_EVENTS = {
    "refrigerator": ("door_opened", "door_openings"),
    "washing_machine": ("cycle_finished", "cycles"),
}


def weekly_usage(conn: repo.Conn, device_id: int, model_id: str, end: datetime) -> dict[str, float]:
    """Distance, energy, counted events and check-ins of one device over the week to `end`."""
    start = end - WEEK
    usage: dict[str, float] = {}
    metrics = ["odometer_km"] if model_id == "ev" else ["power_w"]
    try:
        series = bucketed_series(conn, device_id, metrics, start, end, HOUR)
    except SeriesQueryError:
        series = {}  # the device never reported these metrics: nothing to sum
    odometer = series.get("odometer_km", [])
    if odometer:
        usage["distance_km"] = max(b.max for b in odometer) - min(b.min for b in odometer)
    power = series.get("power_w", [])
    if power:
        # One-hour buckets: the mean draw of an hour, in W, is that hour's energy in Wh.
        usage["energy_kwh"] = sum(b.avg or 0.0 for b in power) / 1000
    if model_id in COUNTED_EVENTS:
        event, key = COUNTED_EVENTS[model_id]
        usage[key] = repo.count_events(conn, device_id, event, start, end)
    usage["readings"] = sum(b.count for buckets in series.values() for b in buckets)
    return usage


def post_weekly_updates(conn: repo.Conn, cipher: FieldCipher, now: datetime) -> int:
    """On each person's Sunday at their digest hour, post each shared product's week once."""
    posted = 0
    with conn.transaction():
        if not repo.try_weekly_lock(conn):
            return 0  # another worker is posting them
        for row in repo.weekly_candidates(conn, now, WEEK - timedelta(days=1)):
            usage = weekly_usage(conn, row["device_id"], row["model_id"], now)
            speaker = Speaker(
                row["language"],
                row["time_zone"],
                row["nickname"] or _voice_name(row["model_id"], row["language"]),
                _name(cipher, row["name_enc"]),
            )
            message = render_weekly(usage, speaker)
            repo.insert_feed_post(conn, _post(row, message, now))
            posted += 1
    if posted:
        log.info("notify.weekly_posted", posts=posted)
    return posted


def _post(row: dict[str, Any], message: Any, now: datetime) -> dict[str, Any]:
    return {
        "customer_id": row["customer_id"],
        "device_id": row["device_id"],
        "moment_id": None,
        "kind": "friend.weekly",
        "severity": "info",
        "language": row["language"],
        "title": message.title,
        "body": message.body,
        "created_at": now,
    }


def _name(cipher: FieldCipher, sealed: bytes | None) -> str | None:
    if not sealed:
        return None
    try:
        return cipher.open(bytes(sealed), repo.NAME_CONTEXT)
    except (EncryptionError, ValueError):
        return None


def _voice_name(model_id: str, language: str) -> str:
    from devices.catalog import builtin_models

    model = builtin_models().get(model_id)
    return model.voice.get("ja" if language == "ja" else "en", model_id) if model else model_id
