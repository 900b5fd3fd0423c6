"""A fleet of simulated devices publishing to a broker: the loop, its options and its numbers.

`run_fleet` is what the demo and tests call; `Fleet` is the same thing with more control.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import paho.mqtt.client as mqtt
import structlog

from devices.protocol import Channel, device_topic
from simulator.clock import SimClock, floor_to, utc_now
from simulator.device import Outgoing, SimulatedDevice
from simulator.errors import SimulatorError
from simulator.households import DemoDevice
from simulator.models import DeviceSpec, FaultSpec
from simulator.transport import Link, MqttEndpoint, negotiate_protocol

log = structlog.get_logger(__name__)

Credentials = Callable[[str], str | None]
ConnectionMode = Literal["per-device", "shared"]
PER_DEVICE_LIMIT = 2000  # one thread per connection: beyond this use shared connections
MAX_OUTSTANDING_PER_LINK = 5000  # pause generating when the broker falls this far behind
CONNECT_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class FleetOptions:
    """How a fleet runs: where it publishes, how fast time goes and how it connects."""

    mqtt_url: str
    topic_prefix: str = "kizuna"
    speed: float | None = 1.0  # simulated seconds per real second; None = as fast as possible
    start: datetime | None = None  # device time at the start; default now
    duration: timedelta | None = None  # device time to simulate; None = until stopped
    interval: timedelta = timedelta(minutes=5)
    seed: int = 1
    mode: ConnectionMode = "per-device"
    connections: int = 4  # shared mode only
    credentials: Credentials | None = None
    tick_s: float = 0.5
    goodbye: bool = True  # publish an offline status for every device at the end
    connect_timeout_s: float = CONNECT_TIMEOUT_S


@dataclass
class FleetStats:
    """What a fleet has done so far."""

    devices: int = 0
    messages: int = 0
    readings: int = 0
    events: int = 0
    acks: int = 0
    duplicates: int = 0
    malformed: int = 0
    bytes: int = 0
    connects: int = 0
    connection_failures: int = 0
    outstanding: int = 0
    offline_devices: int = 0
    sim_time: datetime | None = None
    sim_start: datetime | None = None
    started: float = field(default_factory=time.monotonic)
    elapsed_s: float = 0.0

    def count(self, message: Outgoing) -> None:
        """Add one published message."""
        self.messages += 1
        self.bytes += len(message.payload)
        self.readings += message.readings
        self.events += message.kind == "event"
        self.acks += message.kind == "ack"
        self.duplicates += message.kind == "duplicate"
        self.malformed += message.kind == "malformed"

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly numbers."""
        rate = self.messages / self.elapsed_s if self.elapsed_s else 0.0
        return {
            "devices": self.devices,
            "messages": self.messages,
            "readings": self.readings,
            "events": self.events,
            "acks": self.acks,
            "duplicates": self.duplicates,
            "malformed": self.malformed,
            "bytes": self.bytes,
            "connects": self.connects,
            "connection_failures": self.connection_failures,
            "elapsed_s": round(self.elapsed_s, 2),
            "messages_per_s": round(rate, 1),
            "readings_per_s": round(self.readings / self.elapsed_s, 1) if self.elapsed_s else 0.0,
            "sim_time": self.sim_time.isoformat() if self.sim_time else None,
            "sim_start": self.sim_start.isoformat() if self.sim_start else None,
        }


class Fleet:
    """Devices on the grid, connections to the broker, and the loop that joins them."""

    def __init__(
        self,
        specs: Iterable[DeviceSpec | DemoDevice],
        options: FleetOptions,
        faults: Sequence[FaultSpec] = (),
    ) -> None:
        self.options = options
        self.start = options.start or floor_to(utc_now(), timedelta(minutes=1))
        self.end = self.start + options.duration if options.duration else None
        resolved = [s.spec if isinstance(s, DemoDevice) else s for s in specs]
        if not resolved:
            raise SimulatorError("a fleet needs at least one device")
        if options.mode == "per-device" and len(resolved) > PER_DEVICE_LIMIT:
            raise SimulatorError(
                f"per-device connections are limited to {PER_DEVICE_LIMIT} devices per process; "
                "use shared connections (--connections) or several processes"
            )
        self.devices = [
            SimulatedDevice(
                spec,
                options.topic_prefix,
                self.start,
                seed=_device_seed(options.seed, spec.uid),
                interval=options.interval,
            )
            for spec in resolved
        ]
        by_uid = {d.uid: d for d in self.devices}
        for fault in faults:
            if fault.device not in by_uid:
                raise SimulatorError(f"fault for unknown device {fault.device!r}")
            by_uid[fault.device].add_fault(fault)
        self.by_uid = by_uid
        self.endpoint = MqttEndpoint.from_url(options.mqtt_url)
        self.links: list[Link] = []
        self.protocol: mqtt.MQTTProtocolVersion = mqtt.MQTTv5
        self.link_of: dict[str, Link] = {}
        self.stats = FleetStats(devices=len(self.devices), sim_start=self.start)
        self._was_offline: set[str] = set()
        self._backlog: dict[str, list[Outgoing]] = {d.uid: [] for d in self.devices}

    def run(
        self, stop: threading.Event, progress: Callable[[FleetStats], None] | None = None
    ) -> FleetStats:
        """Publish until the duration is simulated or `stop` is set; return the totals."""
        self._connect()
        clock = SimClock(self.start, self.options.speed)
        try:
            while not stop.is_set():
                began = time.monotonic()
                target = clock.target()
                if self.end is not None:
                    target = min(target, self.end)
                if self._outstanding() < MAX_OUTSTANDING_PER_LINK * len(self.links):
                    self._tick(target)
                self._update_stats(target)
                if progress:
                    progress(self.stats)
                if self.end is not None and target >= self.end and not self._unsent():
                    break
                pause = self.options.tick_s - (time.monotonic() - began)
                if self.options.speed is not None or target >= utc_now() - timedelta(minutes=1):
                    stop.wait(max(0.0, pause))
                elif self._outstanding() >= MAX_OUTSTANDING_PER_LINK * len(self.links):
                    stop.wait(0.05)
            self._flush(timeout_s=30.0)
        finally:
            self._close()
            self._update_stats(self.devices[0].sim_time)
        return self.stats

    def _connect(self) -> None:
        options = self.options
        self.protocol = negotiate_protocol(
            self.endpoint, self.endpoint.username, self.endpoint.password
        )
        if options.mode == "per-device":
            for device in self.devices:
                link = self._device_link(device)
                self.links.append(link)
                self.link_of[device.uid] = link
        else:
            count = max(1, min(options.connections, len(self.devices)))
            groups: list[list[SimulatedDevice]] = [[] for _ in range(count)]
            for i, device in enumerate(self.devices):
                groups[i % count].append(device)
            for i, group in enumerate(groups):
                link = self._shared_link(i, group)
                self.links.append(link)
                for device in group:
                    self.link_of[device.uid] = link
        for link in self.links:
            link.start()
        self._wait_connected()

    def _device_link(self, device: SimulatedDevice) -> Link:
        credentials = self.options.credentials
        password = credentials(device.uid) if credentials else None
        link = Link(
            self.endpoint,
            device.uid,
            username=device.uid if credentials else self.endpoint.username,
            password=password if credentials else self.endpoint.password,
            will=device.status("offline"),
            subscriptions=[
                device.topic(Channel.COMMANDS, "+"),
                device.topic(Channel.DESIRED),
            ],
            on_message=lambda topic, payload: device.inbox.put((topic, payload)),
            on_connected=lambda: self._announce(link_devices=[device]),
            seed=self.options.seed,
            protocol=self.protocol,
        )
        return link

    def _shared_link(self, index: int, group: list[SimulatedDevice]) -> Link:
        prefix = self.options.topic_prefix
        local = {d.uid: d for d in group}

        def route(topic: str, payload: bytes) -> None:
            uid = topic.split("/")[3]
            if uid in local and not local[uid].offline:
                local[uid].inbox.put((topic, payload))

        subscriptions = []
        if len(group) <= 100:
            subscriptions = [d.topic(Channel.COMMANDS, "+") for d in group]
            subscriptions += [d.topic(Channel.DESIRED) for d in group]
        else:  # many devices: one wildcard, filtered locally
            subscriptions = [
                device_topic(prefix, "+", Channel.COMMANDS, "+"),
                device_topic(prefix, "+", Channel.DESIRED),
            ]
        return Link(
            self.endpoint,
            f"sim-{prefix}-{index}-{secrets.token_hex(3)}",
            username=self.endpoint.username,
            password=self.endpoint.password,
            will=None,
            subscriptions=subscriptions,
            on_message=route,
            on_connected=lambda: self._announce(link_devices=group),
            seed=self.options.seed,
            protocol=self.protocol,
        )

    def _announce(self, link_devices: list[SimulatedDevice]) -> None:
        """Publish a retained online status for each device that is not faulted offline."""
        for device in link_devices:
            if not device.offline:
                status = device.status("online")
                if self.link_of[device.uid].publish(status):
                    self.stats.count(status)

    def _wait_connected(self) -> None:
        """Wait for every link; fail fast and clearly when the broker refuses one."""
        deadline = time.monotonic() + self.options.connect_timeout_s
        for link in self.links:
            while not link.connected.wait(0.05):
                if link.refused or time.monotonic() > deadline:
                    reason = link.refused or "no answer"
                    self._close()
                    raise SimulatorError(
                        f"could not connect to {self.endpoint.host}:{self.endpoint.port} as "
                        f"{link.client_id}: {reason}"
                    )

    def _tick(self, target: datetime) -> None:
        for device in self.devices:
            device.advance_to(target)
            link = self.link_of[device.uid]
            self._follow_offline_fault(device, link)
            for answer in device.handle_inbox():
                if link.publish(answer):
                    self.stats.count(answer)
            backlog = self._backlog[device.uid]
            backlog += device.outgoing()
            sent = 0
            for message in backlog:
                if not link.publish(message):
                    break
                self.stats.count(message)
                sent += 1
            del backlog[:sent]

    def _follow_offline_fault(self, device: SimulatedDevice, link: Link) -> None:
        was = device.uid in self._was_offline
        if device.offline == was:
            return
        per_device = self.options.mode == "per-device"
        if device.offline:
            self._was_offline.add(device.uid)
            if per_device:
                link.drop()
            elif link.publish(device.status("offline")):
                self.stats.messages += 1
        else:
            self._was_offline.discard(device.uid)
            if per_device:
                link.resume()
                link.connected.wait(5.0)
            elif link.publish(device.status("online")):
                self.stats.messages += 1

    def _unsent(self) -> int:
        return sum(len(b) for b in self._backlog.values()) + sum(
            len(d.pending) for d in self.devices if not d.offline
        )

    def _outstanding(self) -> int:
        return sum(link.outstanding for link in self.links)

    def _flush(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for link in self.links:
            link.flush(max(0.1, deadline - time.monotonic()))

    def _close(self) -> None:
        for link in self.links:
            goodbye = None
            if self.options.goodbye and self.options.mode == "per-device":
                device = self.by_uid[link.client_id]
                goodbye = None if device.offline else device.status("offline")
            link.close(goodbye)  # shared links carry no per-device will: devices go quiet

    def _update_stats(self, target: datetime) -> None:
        self.stats.sim_time = target
        self.stats.elapsed_s = time.monotonic() - self.stats.started
        self.stats.outstanding = self._outstanding()
        self.stats.connects = sum(link.connects for link in self.links)
        self.stats.connection_failures = sum(link.failures for link in self.links)
        self.stats.offline_devices = sum(1 for d in self.devices if d.offline)


def _device_seed(seed: int, uid: str) -> int:
    """A per-device seed that does not depend on Python's hash randomisation."""
    value = seed * 1_000_003
    for byte in uid.encode():
        value = (value * 131 + byte) % (2**61 - 1)
    return value


def run_fleet(
    mqtt_url: str,
    topic_prefix: str,
    devices: Sequence[DeviceSpec | DemoDevice],
    *,
    speed: float | None = 60.0,
    stop: threading.Event,
    start: datetime | None = None,
    duration: timedelta | None = None,
    seed: int = 1,
    credentials: Credentials | None = None,
    interval: timedelta = timedelta(minutes=5),
    progress: Callable[[FleetStats], None] | None = None,
) -> FleetStats:
    """Run a fleet until `stop` is set (or `duration` is simulated); blocks the caller.

    For the demo: run it in a thread, e.g. `threading.Thread(target=run_fleet, kwargs=...)`.
    With `start` in the past and `speed` > 1 the fleet replays that history quickly, then
    continues in real time.
    """
    mode: ConnectionMode = "per-device" if len(devices) <= 200 else "shared"
    options = FleetOptions(
        mqtt_url=mqtt_url,
        topic_prefix=topic_prefix,
        speed=speed,
        start=start,
        duration=duration,
        seed=seed,
        credentials=credentials,
        interval=interval,
        mode=mode,
        connections=max(1, min(16, len(devices) // 500)),
    )
    return Fleet(devices, options).run(stop, progress)


def start_fleet_thread(**kwargs: object) -> tuple[threading.Thread, threading.Event]:
    """`run_fleet` in a daemon thread; returns the thread and the event that stops it."""
    stop = threading.Event()
    thread = threading.Thread(
        target=run_fleet, kwargs={**kwargs, "stop": stop}, name="kizuna-simulator", daemon=True
    )
    thread.start()
    return thread, stop
