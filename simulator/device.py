"""One simulated device's session: sequence numbers, sampling, faults, offline buffer, commands.

The device runs on a fixed grid of device time (every `step` seconds, a reading every
`interval`), so what it says depends only on its seed and the times, never on how fast the
host runs. Messages are produced in `seq` order; the transport publishes them.
"""

from __future__ import annotations

import json
import queue
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from pydantic import ValidationError

from devices.protocol import (
    Channel,
    CommandAck,
    CommandRequest,
    DesiredState,
    DeviceEvent,
    DeviceStatus,
    Reading,
    TelemetryBatch,
    device_topic,
    json_payload,
)
from simulator.behaviour import BehaviourContext, make_behaviour
from simulator.models import SESSION_FAULTS, DeviceSpec, FaultSpec, parse_duration
from simulator.personas import persona

log = structlog.get_logger(__name__)

MAX_BATCH_READINGS = 200  # keeps a replayed batch well under broker message size limits
MAX_BUFFERED_ITEMS = 50_000  # about six months of 5-minute readings
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Outgoing:
    """One MQTT message a device wants to send."""

    topic: str
    payload: bytes
    kind: str  # telemetry, event, status, ack, duplicate, malformed
    retain: bool = False
    readings: int = 0


@dataclass
class ActiveFault:
    """A fault on this device with its resolved start and end in device time."""

    kind: str
    start: datetime
    end: datetime | None
    params: dict[str, Any] = field(default_factory=dict)
    started: bool = False
    ended: bool = False


class SimulatedDevice:
    """A device's life on the grid, turned into protocol messages."""

    def __init__(
        self,
        spec: DeviceSpec,
        prefix: str,
        start: datetime,
        *,
        seed: int,
        interval: timedelta = timedelta(minutes=5),
        step: timedelta = timedelta(minutes=1),
    ) -> None:
        self.spec = spec
        self.uid = spec.uid
        self.prefix = prefix
        self.start = start
        self.step = step
        self.interval_steps = max(1, round(interval / step))
        context = BehaviourContext(
            spec.uid, persona(spec.persona), seed, spec.home_lat, spec.home_lon
        )
        self.behaviour = make_behaviour(spec.model, context, start)
        self.sim_time = start
        self.steps_done = 0
        self.seq = 0
        self.pending: deque[Reading | DeviceEvent] = deque()
        self.extra: list[Outgoing] = []
        self.recent: deque[Outgoing] = deque(maxlen=20)
        self.faults: list[ActiveFault] = []
        self.offline = False
        self.skew: timedelta | None = None
        self.skew_to_epoch = False
        self.stuck: dict[str, Any] = {}
        self.dropped = 0
        self.inbox: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        self.answered: dict[str, Outgoing] = {}
        self.desired_version = -1

    def add_fault(self, fault: FaultSpec) -> None:
        """Schedule a fault relative to the run's start."""
        if fault.kind not in SESSION_FAULTS and fault.kind not in self.behaviour.faults:
            known = sorted(SESSION_FAULTS | self.behaviour.faults)
            raise ValueError(f"{self.spec.model} has no fault {fault.kind!r}; known: {known}")
        end = self.start + fault.at + fault.duration if fault.duration else None
        self.faults.append(ActiveFault(fault.kind, self.start + fault.at, end, dict(fault.params)))

    def topic(self, channel: Channel, *suffix: str) -> str:
        """One of this device's topics."""
        return device_topic(self.prefix, self.uid, channel, *suffix)

    def status(self, state: str) -> Outgoing:
        """The retained status message (also the last will when offline)."""
        message = DeviceStatus(
            state="online" if state == "online" else "offline",
            ts=self.sim_time,
            firmware=self.spec.firmware,
        )
        return Outgoing(self.topic(Channel.STATUS), json_payload(message), "status", retain=True)

    def advance_to(self, sim_now: datetime) -> None:
        """Live through every grid step up to `sim_now`."""
        while self.sim_time + self.step <= sim_now:
            now = self.sim_time + self.step
            self._update_faults(now)
            events = sorted(self.behaviour.step(now, self.step.total_seconds()), key=lambda e: e.ts)
            for event in events:
                self._queue(
                    DeviceEvent(
                        seq=self._next_seq(),
                        ts=self._device_ts(event.ts),
                        event=event.name,
                        data=event.data,
                    )
                )
            self.steps_done += 1
            self.sim_time = now
            if self.steps_done % self.interval_steps == 0:
                metrics = {**self.behaviour.metrics(), **self.stuck}
                self._queue(Reading(seq=self._next_seq(), ts=self._device_ts(now), metrics=metrics))

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def _device_ts(self, true_time: datetime) -> datetime:
        if self.skew_to_epoch:
            return EPOCH + (true_time - self.start)
        return true_time + (self.skew or timedelta(0))

    def _queue(self, item: Reading | DeviceEvent) -> None:
        self.pending.append(item)
        if len(self.pending) > MAX_BUFFERED_ITEMS:
            self.pending.popleft()
            self.dropped += 1

    def _update_faults(self, now: datetime) -> None:
        for fault in self.faults:
            if not fault.started and now >= fault.start:
                fault.started = True
                self._switch(fault, True)
            if fault.started and not fault.ended and fault.end is not None and now >= fault.end:
                fault.ended = True
                self._switch(fault, False)

    def _switch(self, fault: ActiveFault, active: bool) -> None:
        log.info("simulator.fault", device=self.uid, fault=fault.kind, active=active)
        params = fault.params
        if fault.kind == "offline":
            self.offline = active
        elif fault.kind == "stuck_sensor":
            metric = str(params["metric"])
            value = params.get("value", self.behaviour.metrics()[metric])
            self.stuck = (
                {**self.stuck, metric: value}
                if active
                else {k: v for k, v in self.stuck.items() if k != metric}
            )
        elif fault.kind == "clock_skew":
            self.skew_to_epoch = active and bool(params.get("epoch", False))
            offset = parse_duration(params.get("offset", "0s"))
            self.skew = offset if active and not self.skew_to_epoch else None
        elif fault.kind == "duplicate_burst" and active:
            copies = int(params.get("copies", 3))
            self.extra += [
                Outgoing(o.topic, o.payload, "duplicate")
                for _ in range(copies)
                for o in self.recent
            ]
        elif fault.kind == "malformed" and active:
            self.extra += self._malformed(int(params.get("count", 6)))
        else:
            self.behaviour.set_fault(fault.kind, params, active)

    def _malformed(self, count: int) -> list[Outgoing]:
        ts = self.sim_time.isoformat()
        seq = self.seq  # reuses the last good seq: a bad message must not open a gap
        bodies: list[bytes] = [
            b"\xff\xfe not json at all",
            json.dumps({"seq": seq, "ts": ts}).encode(),
            b'{"seq": %d, "ts": "%s", "metrics": {"x": NaN}}' % (seq, ts.encode()),
            json.dumps({"seq": seq, "ts": ts, "metrics": {"no_such_metric": 1}}).encode(),
            json.dumps({"seq": "seven", "ts": ts, "metrics": {}}).encode(),
            json.dumps({"seq": seq, "ts": "yesterday", "metrics": {}}).encode(),
        ]
        topic = self.topic(Channel.TELEMETRY)
        return [Outgoing(topic, bodies[i % len(bodies)], "malformed") for i in range(count)]

    def outgoing(self) -> list[Outgoing]:
        """Everything ready to publish, in seq order (nothing while the device is offline)."""
        if self.offline:
            return []
        out: list[Outgoing] = []
        batch: list[Reading] = []
        while self.pending:
            item = self.pending.popleft()
            if isinstance(item, Reading):
                batch.append(item)
                if len(batch) == MAX_BATCH_READINGS:
                    out.append(self._telemetry(batch))
                    batch = []
                continue
            if batch:
                out.append(self._telemetry(batch))
                batch = []
            out.append(Outgoing(self.topic(Channel.EVENTS), json_payload(item), "event"))
        if batch:
            out.append(self._telemetry(batch))
        out += self.extra
        self.extra = []
        self.recent.extend(o for o in out if o.kind in ("telemetry", "event"))
        return out

    def _telemetry(self, readings: list[Reading]) -> Outgoing:
        message = readings[0] if len(readings) == 1 else TelemetryBatch(readings=readings)
        topic = self.topic(Channel.TELEMETRY)
        return Outgoing(topic, json_payload(message), "telemetry", readings=len(readings))

    def handle_inbox(self) -> list[Outgoing]:
        """Answer commands and apply desired state that arrived since the last call."""
        answers: list[Outgoing] = []
        while True:
            try:
                channel, suffix, payload = self._next_inbound()
            except queue.Empty:
                return answers
            if channel == "commands":
                answer = self._command(suffix, payload)
                if answer is not None:
                    answers.append(answer)
            elif channel == "desired":
                self._desired(payload)

    def _next_inbound(self) -> tuple[str, str, bytes]:
        topic, payload = self.inbox.get_nowait()
        parts = topic.split("/")
        return parts[4], "/".join(parts[5:]), payload

    def _command(self, suffix: str, payload: bytes) -> Outgoing | None:
        try:
            request = CommandRequest.model_validate_json(payload)
        except ValidationError:
            log.warning("simulator.command_unreadable", device=self.uid)
            return None
        if request.command_id in self.answered:  # redelivered: answer the same again
            return self.answered[request.command_id]
        status, detail = self._decide(request, suffix)
        ack = CommandAck(
            command_id=request.command_id, status=status, ts=self.sim_time, detail=detail
        )
        answer = Outgoing(self.topic(Channel.COMMAND_ACKS), json_payload(ack), "ack")
        self.answered[request.command_id] = answer
        return answer

    def _decide(self, request: CommandRequest, suffix: str) -> tuple[Any, str | None]:
        spec = self.behaviour.spec.commands.get(request.name)
        if suffix != request.command_id:
            return "rejected", "command id does not match the topic"
        if request.expires_at < self.sim_time:
            return "rejected", "expired"
        if spec is None:
            return "rejected", f"unknown command {request.name}"
        for name, arg_spec in spec.args.items():
            problem = arg_spec.problem(request.args.get(name))
            if problem:
                return "rejected", f"{name}: {problem}"
        refusal = self.behaviour.command(request.name, dict(request.args), self.sim_time)
        return ("rejected", refusal) if refusal else ("done", None)

    def _desired(self, payload: bytes) -> None:
        if not payload:
            return  # a cleared retained message
        try:
            desired = DesiredState.model_validate_json(payload)
        except ValidationError:
            log.warning("simulator.desired_unreadable", device=self.uid)
            return
        if desired.version <= self.desired_version:
            return
        self.desired_version = desired.version
        specs = self.behaviour.spec.desired
        values = {
            k: v for k, v in desired.values.items() if k in specs and specs[k].problem(v) is None
        }
        self.behaviour.desire(values)
