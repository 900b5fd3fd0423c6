"""The telemetry writer: metric slots per product model, float8[] encoding, COPY with dedup.

One row per message: `vals[slot]` holds the metric that `telemetry_slots` assigned to that
slot (1-based). Booleans are 0/1, enums the code from `telemetry_enum_codes`; both tables
are append-only so every stored row stays decodable.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from devices.catalog import ProductModel

StoredKey = tuple[int, datetime, int]  # (device_id, ts, seq)


@dataclass(frozen=True, slots=True)
class MetricSlot:
    """Where one metric lives in the values array and how to turn it back into a value."""

    slot: int
    kind: str
    enum_values: tuple[str, ...] = ()  # code → value; a hole (unknown code) is ""

    def encode(self, value: Any) -> str:
        """The float8 literal for `value` (already validated against the product model)."""
        if self.kind == "enum":
            return str(self.enum_values.index(value))
        if self.kind == "boolean":
            return "1" if value else "0"
        return repr(float(value))

    def decode(self, stored: float) -> Any:
        """The value as the device sent it."""
        if self.kind == "boolean":
            return stored != 0
        if self.kind == "enum":
            code = int(stored)
            return self.enum_values[code] if 0 <= code < len(self.enum_values) else None
        if self.kind == "integer":
            return int(stored)
        return stored


@dataclass(frozen=True, slots=True)
class SlotMap:
    """The slot layout of one product model."""

    model_id: str
    slots: Mapping[str, MetricSlot]
    width: int = field(init=False)  # length of a full values array
    _codes: Mapping[str, Mapping[str, str]] = field(init=False, repr=False, compare=False)
    _cells: Mapping[str, tuple[int, bool, Mapping[str, str] | None]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "width", max((s.slot for s in self.slots.values()), default=0))
        codes = {
            name: {value: str(code) for code, value in enumerate(s.enum_values)}
            for name, s in self.slots.items()
            if s.kind == "enum"
        }
        object.__setattr__(self, "_codes", codes)
        # Per metric: array index, and the enum codes (None for booleans and numbers are told
        # apart by the flag). Ingest encodes every reading: no attribute lookups in the loop.
        cells = {
            name: (s.slot - 1, s.kind == "boolean", codes.get(name))
            for name, s in self.slots.items()
        }
        object.__setattr__(self, "_cells", cells)

    def encode(self, metrics: Mapping[str, Any]) -> str:
        """A PostgreSQL float8[] literal with each metric at its slot and NULL elsewhere."""
        out = ["NULL"] * self.width
        cells = self._cells
        for name, value in metrics.items():
            index, boolean, codes = cells[name]
            if codes is not None:
                out[index] = codes[value]
            elif boolean:
                out[index] = "1" if value else "0"
            else:
                out[index] = repr(float(value))
        return "{" + ",".join(out) + "}"

    def decode(self, vals: Sequence[float | None], only: Iterable[str] | None = None) -> dict:
        """The metrics of one stored row (those present), optionally only some of them."""
        names = self.slots if only is None else only
        out: dict[str, Any] = {}
        for name in names:
            slot = self.slots.get(name)
            if slot is None or slot.slot > len(vals):
                continue
            stored = vals[slot.slot - 1]
            if stored is not None and not math.isnan(stored):
                out[name] = slot.decode(stored)
        return out


def load_slots(conn: Connection[Any], model_id: str) -> SlotMap:
    """The slot layout recorded for a product model (possibly empty)."""
    rows = conn.execute(
        "SELECT metric, slot, kind FROM telemetry_slots WHERE model_id = %s", (model_id,)
    ).fetchall()
    codes = conn.execute(
        "SELECT metric, code, value FROM telemetry_enum_codes WHERE model_id = %s", (model_id,)
    ).fetchall()
    by_metric: dict[str, dict[int, str]] = {}
    for row in codes:
        metric, code, value = _cols(row, "metric", "code", "value")
        by_metric.setdefault(metric, {})[code] = value
    slots = {}
    for row in rows:
        metric, slot, kind = _cols(row, "metric", "slot", "kind")
        known = by_metric.get(metric, {})
        values = tuple(known.get(i, "") for i in range(max(known, default=-1) + 1))
        slots[metric] = MetricSlot(slot, kind, values)
    return SlotMap(model_id, slots)


def ensure_slots(conn: Connection[Any], model: ProductModel) -> SlotMap:
    """Give every metric (and enum value) of `model` a slot (and code); return the layout.

    Run in its own committed transaction before the slots are used: a cached layout must
    never point at rows that rolled back.
    """
    with conn.transaction():
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('telemetry_slots:' || %s))", (model.id,)
        )
        current = load_slots(conn, model.id)
        next_slot = current.width + 1
        for name, spec in model.metrics.items():
            if name not in current.slots:
                conn.execute(
                    "INSERT INTO telemetry_slots (model_id, metric, slot, kind) "
                    "VALUES (%s, %s, %s, %s)",
                    (model.id, name, next_slot, spec.type),
                )
                next_slot += 1
            known = current.slots[name].enum_values if name in current.slots else ()
            for value in spec.values or ():
                if value not in known:
                    known = (*known, value)
                    conn.execute(
                        "INSERT INTO telemetry_enum_codes (model_id, metric, code, value) "
                        "VALUES (%s, %s, %s, %s)",
                        (model.id, name, len(known) - 1, value),
                    )
        return load_slots(conn, model.id)


@dataclass(frozen=True, slots=True)
class TelemetryRow:
    """One message's values, ready for COPY."""

    device_id: int
    ts: datetime
    seq: int
    received_at: datetime
    vals: str  # float8[] literal from SlotMap.encode


@dataclass(frozen=True, slots=True)
class EventRow:
    """One device event, ready to insert."""

    device_id: int
    ts: datetime
    seq: int
    received_at: datetime
    event: str
    data: Mapping[str, Any]


_STAGING = "telemetry_incoming"


def copy_new_telemetry(conn: Connection[Any], rows: Sequence[TelemetryRow]) -> None:
    """COPY rows the caller knows are not stored yet straight into telemetry.

    The fast path: a duplicate here is a UniqueViolation that aborts the transaction, so the
    caller must be sure (ingest is: each seq is above the device's locked last seq).
    """
    if not rows:
        return
    with (
        conn.cursor() as cur,
        cur.copy("COPY telemetry (device_id, ts, seq, received_at, vals) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row((row.device_id, row.ts, row.seq, row.received_at, row.vals))


def insert_telemetry(conn: Connection[Any], rows: Sequence[TelemetryRow]) -> set[StoredKey]:
    """COPY rows in; return the keys actually stored (the rest were already there).

    Must run inside the caller's transaction. COPY goes to a session-local staging table
    (emptied at commit) because a duplicate would abort a direct COPY; the INSERT ... ON
    CONFLICT DO NOTHING from it then stores each (device, ts, seq) at most once.
    """
    if not rows:
        return set()
    conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {_STAGING} "
        "(device_id bigint, ts timestamptz, seq bigint, received_at timestamptz, vals float8[]) "
        "ON COMMIT DELETE ROWS"
    )
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY {_STAGING} (device_id, ts, seq, received_at, vals) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row((row.device_id, row.ts, row.seq, row.received_at, row.vals))
    stored = conn.execute(
        f"INSERT INTO telemetry (device_id, ts, seq, received_at, vals) "
        f"SELECT device_id, ts, seq, received_at, vals FROM {_STAGING} "
        "ON CONFLICT DO NOTHING RETURNING device_id, ts, seq"
    ).fetchall()
    return {_cols(r, "device_id", "ts", "seq") for r in stored}


def insert_events(conn: Connection[Any], rows: Sequence[EventRow]) -> set[StoredKey]:
    """Insert events; return the keys actually stored (redelivered ones are skipped)."""
    if not rows:
        return set()
    stored = conn.execute(
        """
        INSERT INTO device_events (device_id, ts, seq, received_at, event, data)
        SELECT * FROM unnest(%s::bigint[], %s::timestamptz[], %s::bigint[],
                             %s::timestamptz[], %s::text[], %s::jsonb[])
        ON CONFLICT DO NOTHING RETURNING device_id, ts, seq
        """,
        (
            [r.device_id for r in rows],
            [r.ts for r in rows],
            [r.seq for r in rows],
            [r.received_at for r in rows],
            [r.event for r in rows],
            [Jsonb(dict(r.data)) for r in rows],
        ),
    ).fetchall()
    return {_cols(r, "device_id", "ts", "seq") for r in stored}


def ensure_partitions(conn: Connection[Any], ahead_days: int, behind_days: int) -> int:
    """Create the telemetry partitions around today (a no-op on TimescaleDB)."""
    row = conn.execute(
        "SELECT telemetry_ensure_partitions(%s, %s) AS created", (ahead_days, behind_days)
    ).fetchone()
    return int(_cols(row, "created")[0]) if row else 0


def _cols(row: Any, *names: str) -> tuple[Any, ...]:
    """Columns of a row whatever the row factory (dict or tuple)."""
    if isinstance(row, Mapping):
        return tuple(row[n] for n in names)
    return tuple(row[: len(names)])
