"""Store stage: one batch of decoded messages → telemetry, twins, gaps, dead letters, steps.

`plan_batch` sorts messages into what to store, quarantine or dead-letter (no I/O);
`write_batch` writes the plan inside the caller's transaction and runs the batch steps.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from devices.protocol import CommandAck, DeviceEvent, DeviceStatus, Reading, utc_iso
from devices.uplink import apply_command_ack, apply_status
from ingest import repo
from ingest.config import IngestConfig
from ingest.decode import check_against_model
from ingest.errors import RejectedMessage
from ingest.models import (
    BatchResult,
    DeadLetter,
    DeadLetterReason,
    DeviceEntry,
    Incoming,
    Parsed,
    QuarantineReason,
)
from ingest.records import AcceptedEvent, AcceptedReading, BatchStep, StoredBatch
from store.telemetry import (
    EventRow,
    StoredKey,
    TelemetryRow,
    copy_new_telemetry,
    insert_events,
    insert_telemetry,
)

UNSET_CLOCK_BEFORE = datetime.fromisoformat("2001-01-01T00:00:00+00:00")


@dataclass(slots=True)
class BatchPlan:
    """Decoded messages sorted by what happens to them."""

    readings: list[tuple[DeviceEntry, Reading, Incoming]] = field(default_factory=list)
    events: list[tuple[DeviceEntry, DeviceEvent, Incoming]] = field(default_factory=list)
    statuses: list[tuple[DeviceEntry, DeviceStatus, Incoming]] = field(default_factory=list)
    acks: list[tuple[DeviceEntry, CommandAck, Incoming]] = field(default_factory=list)
    quarantine: list[tuple[DeviceEntry, Reading, Incoming, QuarantineReason]] = field(
        default_factory=list
    )
    dead: list[DeadLetter] = field(default_factory=list)
    messages: int = 0

    def device_ids(self) -> list[int]:
        """Every device this batch touches (their twins are locked)."""
        groups: Sequence[Sequence[tuple[Any, ...]]] = (
            self.readings,
            self.events,
            self.statuses,
            self.acks,
            self.quarantine,
        )
        return sorted({item[0].device_id for group in groups for item in group})


@dataclass(frozen=True, slots=True)
class ClockLimits:
    """How far device time may be from receive time before a reading is quarantined."""

    future: timedelta
    max_age: timedelta

    @classmethod
    def of(cls, config: IngestConfig) -> ClockLimits:
        """The limits configured for ingest."""
        return cls(timedelta(seconds=config.max_future_skew_s), timedelta(days=config.max_age_days))

    def problem(self, ts: datetime, received_at: datetime) -> QuarantineReason | None:
        """Why a device time cannot be trusted, or None."""
        if ts > received_at + self.future:
            return QuarantineReason.CLOCK_FUTURE
        if ts < UNSET_CLOCK_BEFORE:
            return QuarantineReason.CLOCK_UNSET  # 1970 epoch, 2000-01-01 RTC defaults
        if ts < received_at - self.max_age:
            return QuarantineReason.CLOCK_TOO_OLD
        return None


def plan_batch(
    decoded: Sequence[Parsed | DeadLetter],
    devices: Mapping[str, DeviceEntry | None],
    config: IngestConfig,
) -> BatchPlan:
    """Check each message against its device and sort it into the plan."""
    plan = BatchPlan(messages=len(decoded))
    limits = ClockLimits.of(config)
    for item in decoded:
        if isinstance(item, DeadLetter):
            plan.dead.append(item)
            continue
        entry = devices.get(item.uid)
        if entry is None:
            plan.dead.append(
                DeadLetter(
                    item.incoming, DeadLetterReason.UNKNOWN_DEVICE, "not registered", item.uid
                )
            )
            continue
        try:
            check_against_model(item, entry)
        except RejectedMessage as exc:
            plan.dead.append(DeadLetter(item.incoming, exc.reason, exc.detail, item.uid))
            continue
        _place(plan, item, entry, limits)
    return plan


def _place(plan: BatchPlan, item: Parsed, entry: DeviceEntry, limits: ClockLimits) -> None:
    body, incoming = item.body, item.incoming
    if isinstance(body, list):
        for reading in body:
            problem = limits.problem(reading.ts, incoming.received_at)
            if problem:
                plan.quarantine.append((entry, reading, incoming, problem))
            else:
                plan.readings.append((entry, reading, incoming))
    elif isinstance(body, DeviceEvent):
        plan.events.append((entry, body, incoming))
    elif isinstance(body, DeviceStatus):
        plan.statuses.append((entry, body, incoming))
    else:
        plan.acks.append((entry, body, incoming))


def write_batch(
    conn: repo.Conn,
    plan: BatchPlan,
    steps: Sequence[BatchStep],
    config: IngestConfig,
    fast: bool = True,
) -> BatchResult:
    """Write everything in the plan and run the steps; the caller owns the transaction.

    `fast=False` sends every reading through the dedup path (the retry after a surprise
    UniqueViolation on the fast path).
    """
    result = BatchResult(messages=plan.messages)
    twins = repo.lock_twins(conn, plan.device_ids()) if plan.device_ids() else {}
    stored_readings = _store_readings(conn, plan, twins, result, fast)
    stored_events = _store_events(conn, plan, result)
    _quarantine(conn, plan, result)
    _track_gaps(conn, plan, twins, stored_readings, stored_events, result)
    _update_twins(conn, plan, stored_readings)
    for entry, status, incoming in plan.statuses:
        apply_status(conn, entry.device_id, status, incoming.received_at)
        result.status_applied += 1
    for entry, ack, incoming in plan.acks:
        apply_command_ack(conn, entry.device_id, ack, incoming.received_at)
        result.command_acks_applied += 1
    _dead_letter(conn, plan.dead, config, result)
    if steps and (stored_readings or stored_events):
        batch = _stored_batch(stored_readings, stored_events)  # steps must not mutate it
        for step in steps:
            step(conn, batch)
    return result


def _store_readings(
    conn: repo.Conn,
    plan: BatchPlan,
    last_seqs: Mapping[int, int | None],
    result: BatchResult,
    fast: bool,
) -> list[tuple[DeviceEntry, Reading, Incoming]]:
    """Store new readings; the rest are counted as duplicates.

    A seq above the device's last seq (read under the twin lock) cannot be stored yet, so
    those rows are COPYed straight in; the others (redeliveries, late arrivals, a device that
    reset its counter) go through the staging table and ON CONFLICT DO NOTHING.
    """
    unique: dict[StoredKey, tuple[DeviceEntry, Reading, Incoming]] = {}
    for item in plan.readings:
        unique.setdefault((item[0].device_id, item[1].ts, item[1].seq), item)
    new_rows, maybe_rows = [], []
    new_keys: set[StoredKey] = set()
    seen_seqs: set[tuple[int, int]] = set()
    for key, (e, r, i) in unique.items():
        row = TelemetryRow(e.device_id, r.ts, r.seq, i.received_at, e.slots.encode(r.metrics))
        last = last_seqs.get(e.device_id)
        fresh = fast and (last is None or r.seq > last) and (e.device_id, r.seq) not in seen_seqs
        seen_seqs.add((e.device_id, r.seq))
        if fresh:
            new_rows.append(row)
            new_keys.add(key)
        else:
            maybe_rows.append(row)
    copy_new_telemetry(conn, new_rows)
    stored_keys = new_keys | insert_telemetry(conn, maybe_rows)
    stored = [item for key, item in unique.items() if key in stored_keys]
    result.readings_stored += len(stored)
    result.duplicates += len(plan.readings) - len(stored)
    return stored


def _store_events(
    conn: repo.Conn, plan: BatchPlan, result: BatchResult
) -> list[tuple[DeviceEntry, DeviceEvent, Incoming]]:
    unique: dict[StoredKey, tuple[DeviceEntry, DeviceEvent, Incoming]] = {}
    for item in plan.events:
        unique.setdefault((item[0].device_id, item[1].ts, item[1].seq), item)
    rows = [
        EventRow(e.device_id, ev.ts, ev.seq, i.received_at, ev.event, ev.data)
        for e, ev, i in unique.values()
    ]
    stored_keys = insert_events(conn, rows)
    stored = [item for key, item in unique.items() if key in stored_keys]
    result.events_stored += len(stored)
    result.duplicates += len(plan.events) - len(stored)
    return stored


def _quarantine(conn: repo.Conn, plan: BatchPlan, result: BatchResult) -> None:
    rows = []
    for entry, reading, incoming, reason in plan.quarantine:
        rows.append(
            (
                entry.device_id,
                reading.seq,
                reading.ts,
                incoming.received_at,
                reason.value,
                reading.model_dump(mode="json"),
            )
        )
        result.quarantined[reason.value] += 1
    repo.insert_quarantine(conn, rows)


def _track_gaps(
    conn: repo.Conn,
    plan: BatchPlan,
    last_seqs: Mapping[int, int | None],
    readings: Sequence[tuple[DeviceEntry, Reading, Incoming]],
    events: Sequence[tuple[DeviceEntry, DeviceEvent, Incoming]],
    result: BatchResult,
) -> None:
    """New gaps above each device's last seq; late arrivals shrink older gaps."""
    seen: dict[int, set[int]] = defaultdict(set)
    received_at: dict[int, datetime] = {}
    arrived = [(e.device_id, r.seq, i.received_at) for e, r, i in readings]
    arrived += [(e.device_id, ev.seq, i.received_at) for e, ev, i in events]
    # A quarantined reading arrived: its seq is not missing, just not trusted.
    arrived += [(e.device_id, r.seq, i.received_at) for e, r, i, _ in plan.quarantine]
    for device_id, seq, at in arrived:
        seen[device_id].add(seq)
        received_at[device_id] = at
    new_gaps, late = [], []
    for device_id, seqs in seen.items():
        last = last_seqs[device_id]
        ordered = sorted(seqs)
        previous = ordered[0] - 1 if last is None else last
        for seq in ordered:
            if last is not None and seq <= last:
                late.append((device_id, seq))
                continue
            if seq > previous + 1:
                new_gaps.append((device_id, previous + 1, seq - 1, received_at[device_id]))
                result.seqs_missing += seq - previous - 1
            previous = max(previous, seq)
    result.gaps_opened += len(new_gaps)
    repo.fill_gaps(conn, late)
    repo.insert_gaps(conn, new_gaps)


def _update_twins(
    conn: repo.Conn,
    plan: BatchPlan,
    stored: Sequence[tuple[DeviceEntry, Reading, Incoming]],
) -> None:
    """Newest value per metric by device time; last_seen/last_seq for every message seen."""
    by_device: dict[int, list[Reading]] = defaultdict(list)
    for entry, reading, _ in stored:
        by_device[entry.device_id].append(reading)
    last_seen: dict[int, datetime] = {}
    last_seq: dict[int, int] = {}
    arrived = [(e.device_id, r.seq, i.received_at) for e, r, i in plan.readings]
    arrived += [(e.device_id, ev.seq, i.received_at) for e, ev, i in plan.events]
    arrived += [(e.device_id, r.seq, i.received_at) for e, r, i, _ in plan.quarantine]
    for device_id, seq, at in arrived:
        if device_id not in last_seen or at > last_seen[device_id]:
            last_seen[device_id] = at
        if device_id not in last_seq or seq > last_seq[device_id]:
            last_seq[device_id] = seq
    updates = []
    for device_id, seen_at in last_seen.items():
        readings = by_device.get(device_id)
        update: dict[str, Any] = {
            "device_id": device_id,
            "reported": {},
            "oldest": None,
            "reported_at": None,
            "last_seen": seen_at.isoformat(),
            "last_seq": last_seq[device_id],
        }
        if readings:
            reported, oldest, newest = _newest_values(readings)
            update.update(reported=reported, oldest=oldest, reported_at=newest)
        updates.append(update)
    repo.update_twins(conn, updates)


def _newest_values(readings: list[Reading]) -> tuple[dict[str, dict[str, Any]], str, str]:
    """{metric: {"v", "t"}} of the newest reading (by device time) carrying each metric, and
    the earliest and latest of those times."""
    if len(readings) > 1:
        readings.sort(key=lambda r: r.ts)  # stable: equal times keep arrival order
    values: dict[str, Any] = {}
    source: dict[str, int] = {}
    for index, reading in enumerate(readings):
        # C-level dict updates: one pass per reading instead of one per metric.
        values.update(reading.metrics)
        source.update(dict.fromkeys(reading.metrics, index))
    newest = utc_iso(readings[-1].ts)
    used = set(source.values())
    if not used:  # readings without metrics: nothing to merge
        return {}, newest, newest
    times = {index: utc_iso(readings[index].ts) for index in used}
    reported = {name: {"v": value, "t": times[source[name]]} for name, value in values.items()}
    return reported, times[min(used)], newest


def _dead_letter(
    conn: repo.Conn, dead: Sequence[DeadLetter], config: IngestConfig, result: BatchResult
) -> None:
    rows = []
    for letter in dead:
        incoming = letter.incoming
        rows.append(
            (
                incoming.received_at,
                _printable(incoming.topic)[:512],
                letter.device_uid,
                letter.reason.value,
                _printable(letter.detail)[:1000],
                incoming.payload[: config.dead_letter_max_bytes],
                len(incoming.payload),
            )
        )
        result.dead_letters[letter.reason.value] += 1
    repo.insert_dead_letters(conn, rows)


def _printable(text: str) -> str:
    return text.replace("\x00", "\\u0000")


def _stored_batch(
    readings: Sequence[tuple[DeviceEntry, Reading, Incoming]],
    events: Sequence[tuple[DeviceEntry, DeviceEvent, Incoming]],
) -> StoredBatch:
    accepted = [
        AcceptedReading(e.device_id, e.uid, e.model.id, r.seq, r.ts, i.received_at, r.metrics)
        for e, r, i in readings
    ]
    accepted.sort(key=lambda a: (a.device_id, a.ts, a.seq))
    accepted_events = [
        AcceptedEvent(
            e.device_id, e.uid, e.model.id, ev.seq, ev.ts, i.received_at, ev.event, ev.data
        )
        for e, ev, i in events
    ]
    accepted_events.sort(key=lambda a: (a.device_id, a.ts, a.seq))
    return StoredBatch(accepted, accepted_events)


def dead_letter_only(incoming: Incoming, reason: DeadLetterReason, detail: str) -> BatchPlan:
    """A plan that only dead-letters one message (a message the database refused)."""
    return BatchPlan(dead=[DeadLetter(incoming, reason, detail)], messages=1)
