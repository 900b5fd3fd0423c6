"""Time-series queries over telemetry for the API and dashboard: buckets and latest readings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from psycopg import Connection

from store.telemetry import SlotMap, load_slots

MAX_BUCKETS = 10_000
MAX_LATEST = 1_000
BUCKET_ORIGIN = datetime.fromisoformat("2000-01-01T00:00:00+00:00")


class SeriesQueryError(ValueError):
    """A time-series query that cannot be answered as asked (bad range, unknown metric)."""


@dataclass(frozen=True, slots=True)
class BucketStat:
    """One time bucket of one metric. Booleans: avg is the share of true; enums: last only."""

    bucket: datetime
    count: int
    min: Any
    avg: float | None
    max: Any
    last: Any


@dataclass(frozen=True, slots=True)
class StoredReading:
    """One stored telemetry message, decoded."""

    ts: datetime
    seq: int
    received_at: datetime
    metrics: dict[str, Any] = field(default_factory=dict)


def device_slots(conn: Connection[Any], device_id: int) -> SlotMap:
    """The slot layout of a device's product model; SeriesQueryError for an unknown device."""
    row: Any = conn.execute("SELECT model_id FROM devices WHERE id = %s", (device_id,)).fetchone()
    if row is None:
        raise SeriesQueryError(f"unknown device {device_id}")
    model_id = row["model_id"] if isinstance(row, dict) else row[0]
    return load_slots(conn, model_id)


def _check_range(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise SeriesQueryError("start and end need a time zone")
    if start >= end:
        raise SeriesQueryError("start must be before end")


def bucketed_series(
    conn: Connection[Any],
    device_id: int,
    metrics: Sequence[str],
    start: datetime,
    end: datetime,
    bucket: timedelta,
) -> dict[str, list[BucketStat]]:
    """min/avg/max/last per time bucket of each metric in [start, end), oldest first."""
    _check_range(start, end)
    if bucket <= timedelta(0):
        raise SeriesQueryError("bucket must be positive")
    if (end - start) / bucket > MAX_BUCKETS:
        raise SeriesQueryError(f"more than {MAX_BUCKETS} buckets; use a wider bucket")
    layout = device_slots(conn, device_id)
    unknown = [m for m in metrics if m not in layout.slots]
    if unknown:
        raise SeriesQueryError(f"unknown metric(s): {', '.join(sorted(unknown))[:200]}")
    if not metrics:
        return {}
    columns = []
    for i, name in enumerate(metrics):
        k = layout.slots[name].slot  # an integer from our own table: safe to inline
        columns.append(
            f"count(vals[{k}]) AS c{i}, min(vals[{k}]) AS lo{i}, avg(vals[{k}]) AS av{i}, "
            f"max(vals[{k}]) AS hi{i}, "
            f"(array_agg(vals[{k}] ORDER BY ts DESC) FILTER (WHERE vals[{k}] IS NOT NULL))[1]"
            f" AS la{i}"
        )
    rows: list[Any] = conn.execute(
        f"SELECT date_bin(%s, ts, %s) AS bucket, {', '.join(columns)} FROM telemetry "
        "WHERE device_id = %s AND ts >= %s AND ts < %s GROUP BY 1 ORDER BY 1",
        (bucket, BUCKET_ORIGIN, device_id, start, end),
    ).fetchall()
    series: dict[str, list[BucketStat]] = {name: [] for name in metrics}
    for row in rows:
        for i, name in enumerate(metrics):
            stat = _bucket_stat(layout, name, row, i)
            if stat is not None:
                series[name].append(stat)
    return series


def _bucket_stat(layout: SlotMap, name: str, row: dict[str, Any], i: int) -> BucketStat | None:
    count = row[f"c{i}"]
    if not count:
        return None
    slot = layout.slots[name]
    last = slot.decode(row[f"la{i}"])
    if slot.kind == "enum":
        return BucketStat(row["bucket"], count, None, None, None, last)
    avg = float(row[f"av{i}"])
    return BucketStat(
        row["bucket"], count, slot.decode(row[f"lo{i}"]), avg, slot.decode(row[f"hi{i}"]), last
    )


def latest_readings(
    conn: Connection[Any],
    device_id: int,
    limit: int = 100,
    metrics: Sequence[str] | None = None,
    before: datetime | None = None,
) -> list[StoredReading]:
    """The newest stored readings of a device (by device time), newest first."""
    if not 1 <= limit <= MAX_LATEST:
        raise SeriesQueryError(f"limit must be between 1 and {MAX_LATEST}")
    if before is not None and before.tzinfo is None:
        raise SeriesQueryError("before needs a time zone")
    layout = device_slots(conn, device_id)
    unknown = [m for m in metrics or () if m not in layout.slots]
    if unknown:
        raise SeriesQueryError(f"unknown metric(s): {', '.join(sorted(unknown))[:200]}")
    rows: list[Any] = conn.execute(
        "SELECT ts, seq, received_at, vals FROM telemetry "
        "WHERE device_id = %s AND (%s::timestamptz IS NULL OR ts < %s) "
        "ORDER BY ts DESC, seq DESC LIMIT %s",
        (device_id, before, before, limit),
    ).fetchall()
    return [
        StoredReading(r["ts"], r["seq"], r["received_at"], layout.decode(r["vals"], metrics))
        for r in rows
    ]
