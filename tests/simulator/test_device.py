"""Device sessions: seq order, offline buffering and replay, injected faults, commands."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import TypeAdapter, ValidationError

from devices.catalog import builtin_models
from devices.protocol import (
    CommandAck,
    CommandRequest,
    DesiredState,
    DeviceEvent,
    Reading,
    TelemetryBatch,
    json_payload,
)
from simulator.device import Outgoing, SimulatedDevice
from simulator.models import DeviceSpec, FaultSpec

START = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)
Telemetry = TypeAdapter(Reading | TelemetryBatch)


def _device(model: str = "refrigerator", uid: str = "dev-1") -> SimulatedDevice:
    spec = DeviceSpec(uid=uid, model=model, persona="family")
    return SimulatedDevice(spec, "kzt", START, seed=9)


def _fault(kind: str, at: str, duration: str | None = None, **params: object) -> FaultSpec:
    return FaultSpec.model_validate(
        {"device": "dev-1", "kind": kind, "at": at, "for": duration, "params": params}
    )


def _items(messages: list[Outgoing]) -> list[Reading | DeviceEvent]:
    """Every reading and event in the messages, in the order they were sent."""
    items: list[Reading | DeviceEvent] = []
    for message in messages:
        if message.kind == "telemetry":
            parsed = Telemetry.validate_json(message.payload)
            items += parsed.readings if isinstance(parsed, TelemetryBatch) else [parsed]
        elif message.kind == "event":
            items.append(DeviceEvent.model_validate_json(message.payload))
    return items


def _run(device: SimulatedDevice, hours: float, chunk: timedelta = timedelta(minutes=7)):
    sent: list[Outgoing] = []
    now = device.sim_time
    end = START + timedelta(hours=hours)
    while now < end:
        now = min(end, now + chunk)
        device.advance_to(now)
        sent += device.outgoing()
    return sent


def test_seq_increases_by_one_across_telemetry_and_events_in_send_order() -> None:
    device = _device()
    items = _items(_run(device, 12))
    assert [i.seq for i in items] == list(range(1, len(items) + 1))
    assert any(isinstance(i, DeviceEvent) for i in items)
    readings = [i for i in items if isinstance(i, Reading)]
    assert len(readings) == 12 * 12  # one every 5 minutes of device time
    times = [i.ts for i in items]
    assert times == sorted(times)


def test_grid_makes_output_independent_of_how_often_the_host_ticks() -> None:
    fine = [m.payload for m in _run(_device(), 6, chunk=timedelta(minutes=1))]
    coarse = _items(_run(_device(), 6, chunk=timedelta(hours=2)))
    assert _items([Outgoing("t", p, "telemetry") for p in fine if b'"metrics"' in p]) == [
        i for i in coarse if isinstance(i, Reading)
    ]


def test_offline_device_buffers_then_replays_with_original_times_and_seqs() -> None:
    device = _device()
    device.add_fault(_fault("offline", "2h", "3h"))
    sent: list[Outgoing] = []
    now = START
    while now < START + timedelta(hours=6):
        now += timedelta(minutes=10)
        device.advance_to(now)
        batch = device.outgoing()
        if START + timedelta(hours=2, minutes=10) <= now < START + timedelta(hours=5):
            assert batch == [] and device.offline
        sent += batch
    items = _items(sent)
    assert [i.seq for i in items] == list(range(1, len(items) + 1))  # nothing lost
    replay = [m for m in sent if m.readings > 1 and m.kind == "telemetry"]
    assert replay, "the backlog is replayed as telemetry batches"
    first = Telemetry.validate_json(replay[0].payload)
    assert isinstance(first, TelemetryBatch)
    assert first.readings[0].ts < START + timedelta(hours=3)  # stamped when measured


def test_clock_skew_shifts_device_time_then_recovers() -> None:
    device = _device()
    device.add_fault(_fault("clock_skew", "1h", "1h", offset="3d"))
    readings = [i for i in _items(_run(device, 3)) if isinstance(i, Reading)]
    skewed = [r for r in readings if r.ts > START + timedelta(days=1)]
    assert len(skewed) == 12
    assert readings[-1].ts == START + timedelta(hours=3)


def test_clock_reset_to_1970() -> None:
    device = _device()
    device.add_fault(_fault("clock_skew", "30m", "30m", epoch=True))
    readings = [i for i in _items(_run(device, 2)) if isinstance(i, Reading)]
    assert sum(r.ts.year == 1970 for r in readings) == 6


def test_stuck_sensor_repeats_one_value() -> None:
    device = _device()
    device.add_fault(_fault("stuck_sensor", "1h", "2h", metric="fridge_temp_c", value=4.25))
    readings = [i for i in _items(_run(device, 4)) if isinstance(i, Reading)]
    stuck = [
        r.metrics["fridge_temp_c"]
        for r in readings
        if START + timedelta(hours=1) < r.ts < START + timedelta(hours=3)
    ]
    assert stuck and set(stuck) == {4.25}
    assert readings[-1].metrics["fridge_temp_c"] != 4.25


def test_duplicate_burst_repeats_exact_payloads() -> None:
    device = _device()
    device.add_fault(_fault("duplicate_burst", "1h", copies=2))
    sent = _run(device, 2)
    duplicates = [m for m in sent if m.kind == "duplicate"]
    originals = {m.payload for m in sent if m.kind in ("telemetry", "event")}
    assert duplicates and all(m.payload in originals for m in duplicates)


def test_malformed_payloads_break_the_protocol_without_opening_a_seq_gap() -> None:
    device = _device()
    device.add_fault(_fault("malformed", "1h", count=6))
    sent = _run(device, 2)
    bad = [m for m in sent if m.kind == "malformed"]
    assert len(bad) == 6
    model = builtin_models()["refrigerator"]
    for message in bad:
        try:
            reading = Telemetry.validate_json(message.payload)
        except ValidationError:
            continue
        assert isinstance(reading, Reading) and model.check_metrics(reading.metrics)
    items = _items(sent)
    assert [i.seq for i in items] == list(range(1, len(items) + 1))


def test_unknown_fault_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="refrigerator has no fault 'leak'"):
        _device().add_fault(_fault("leak", "1h"))


def _command(
    device: SimulatedDevice,
    name: str,
    args: dict[str, object],
    cid: str = "c1",
    expires: timedelta = timedelta(hours=1),
) -> CommandAck:
    request = CommandRequest(
        command_id=cid, name=name, args=args, expires_at=device.sim_time + expires
    )
    device.inbox.put((f"kzt/v1/devices/{device.uid}/commands/{cid}", json_payload(request)))
    (answer,) = device.handle_inbox()
    assert answer.topic == f"kzt/v1/devices/{device.uid}/command-acks"
    return CommandAck.model_validate_json(answer.payload)


def test_commands_are_answered_and_applied() -> None:
    device = _device("ev")
    device.advance_to(START + timedelta(minutes=5))
    ack = _command(device, "set_charge_limit", {"limit_pct": 90})
    assert (ack.status, ack.command_id, ack.ts) == ("done", "c1", device.sim_time)
    assert device.behaviour.metrics()["charge_limit_pct"] == 90
    assert _command(device, "set_charge_limit", {"limit_pct": 20}, "c2").status == "rejected"
    assert _command(device, "fly", {}, "c3").detail == "unknown command fly"
    expired = _command(device, "lock", {}, "c4", expires=timedelta(minutes=-1))
    assert (expired.status, expired.detail) == ("rejected", "expired")
    assert _command(device, "set_charge_limit", {"limit_pct": 60}) == ack  # redelivery
    assert device.behaviour.metrics()["charge_limit_pct"] == 90


def test_desired_state_is_applied_in_version_order_and_bad_payloads_are_ignored() -> None:
    device = _device("ev")
    topic = f"kzt/v1/devices/{device.uid}/desired"
    device.inbox.put(
        (topic, json_payload(DesiredState(version=2, values={"charge_limit_pct": 70})))
    )
    device.inbox.put(
        (topic, json_payload(DesiredState(version=1, values={"charge_limit_pct": 95})))
    )
    device.inbox.put((topic, b"{not json"))
    device.inbox.put(
        (topic, json.dumps({"version": 3, "values": {"charge_limit_pct": 10}}).encode())
    )
    assert device.handle_inbox() == []
    assert device.behaviour.metrics()["charge_limit_pct"] == 70
