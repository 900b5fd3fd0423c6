"""Fleets on a real broker: protocol messages, commands, last will and replay, credentials."""

from __future__ import annotations

import contextlib
import getpass
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import TypeAdapter

from app.embedded import free_port, wait_for_port
from devices.protocol import (
    CommandAck,
    CommandRequest,
    DesiredState,
    DeviceEvent,
    DeviceStatus,
    Reading,
    TelemetryBatch,
    json_payload,
)
from simulator.clock import floor_to, utc_now
from simulator.errors import SimulatorError
from simulator.fleet import Fleet, FleetOptions
from simulator.models import DeviceSpec, FaultSpec
from simulator.provisioning import load_provisioning
from simulator.transport import MqttEndpoint, backoff_delay

Telemetry = TypeAdapter(Reading | TelemetryBatch)
MOSQUITTO = "/usr/sbin/mosquitto"


class Listener:
    """A plain MQTT client recording everything under a prefix."""

    def __init__(self, mqtt_url: str, prefix: str) -> None:
        endpoint = MqttEndpoint.from_url(mqtt_url)
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"listen-{prefix}")
        if endpoint.username:
            self.client.username_pw_set(endpoint.username, endpoint.password)
        self.client.on_message = self._record
        self.client.connect(endpoint.host, endpoint.port)
        self.client.subscribe(f"{prefix}/#", qos=1)
        self.client.loop_start()
        time.sleep(0.3)

    def _record(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((message.topic, bytes(message.payload), message.retain))

    def of(self, channel: str) -> list[tuple[str, bytes]]:
        """Messages whose topic ends with `channel`."""
        with self.lock:
            return [(t, p) for t, p, _ in self.messages if t.split("/")[4] == channel]

    def wait_for(self, predicate: Callable[[], object], timeout_s: float = 10.0) -> None:
        """Poll until predicate() holds."""
        deadline = time.monotonic() + timeout_s
        while not predicate():
            assert time.monotonic() < deadline, "timed out waiting for messages"
            time.sleep(0.05)

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def listener(mqtt_url: str, topic_prefix: str) -> Iterator[Listener]:
    """Records every message under this test's prefix."""
    listening = Listener(mqtt_url, topic_prefix)
    yield listening
    listening.close()


def _options(mqtt_url: str, prefix: str, **overrides: object) -> FleetOptions:
    values: dict[str, object] = {
        "mqtt_url": mqtt_url,
        "topic_prefix": prefix,
        "speed": None,
        "start": floor_to(utc_now() - timedelta(hours=8), timedelta(minutes=1)),
        "duration": timedelta(hours=6),
    }
    return FleetOptions(**(values | overrides))  # type: ignore[arg-type]


def _specs(prefix: str) -> list[DeviceSpec]:
    models = ("ev", "refrigerator", "washing_machine", "air_conditioner")
    return [DeviceSpec(uid=f"{prefix}-{m[:5]}", model=m, persona="family") for m in models]


def _seqs_by_device(listener: Listener) -> dict[str, list[int]]:
    seqs: dict[str, list[int]] = defaultdict(list)
    for topic, payload in listener.of("telemetry"):
        parsed = Telemetry.validate_json(payload)
        readings = parsed.readings if isinstance(parsed, TelemetryBatch) else [parsed]
        seqs[topic.split("/")[3]] += [r.seq for r in readings]
    for topic, payload in listener.of("events"):
        seqs[topic.split("/")[3]].append(DeviceEvent.model_validate_json(payload).seq)
    return seqs


def test_fleet_publishes_valid_messages_with_every_seq_once(
    mqtt_url: str, topic_prefix: str, listener: Listener
) -> None:
    specs = _specs(topic_prefix)
    stats = Fleet(specs, _options(mqtt_url, topic_prefix)).run(threading.Event())
    assert stats.readings == 4 * 6 * 12
    listener.wait_for(
        lambda: len(listener.of("telemetry")) + len(listener.of("events")) >= stats.messages - 8
    )
    seqs = _seqs_by_device(listener)
    assert set(seqs) == {s.uid for s in specs}
    for uid, numbers in seqs.items():
        assert sorted(numbers) == list(range(1, len(numbers) + 1)), uid
    listener.wait_for(lambda: len(listener.of("status")) >= 8)
    statuses = [DeviceStatus.model_validate_json(p).state for _, p in listener.of("status")]
    assert statuses.count("online") == 4 and statuses.count("offline") == 4  # hello, goodbye


def test_devices_answer_commands_and_follow_desired_state(
    mqtt_url: str, topic_prefix: str, listener: Listener
) -> None:
    car = DeviceSpec(uid=f"{topic_prefix}-car", model="ev")
    options = _options(
        mqtt_url,
        topic_prefix,
        speed=1800.0,
        start=floor_to(utc_now() - timedelta(hours=6), timedelta(minutes=1)),
        duration=None,
        interval=timedelta(minutes=1),
        tick_s=0.1,
    )
    fleet = Fleet([car], options)
    stop = threading.Event()
    runner = threading.Thread(target=fleet.run, args=(stop,), daemon=True)
    runner.start()
    try:
        listener.wait_for(lambda: listener.of("status"))
        base = f"{topic_prefix}/v1/devices/{car.uid}"
        request = CommandRequest(
            command_id="cmd-1",
            name="set_charge_limit",
            args={"limit_pct": 95},
            expires_at=utc_now() + timedelta(days=1),
        )
        listener.client.publish(f"{base}/commands/cmd-1", json_payload(request), qos=1)
        listener.wait_for(lambda: listener.of("command-acks"))
        ack = CommandAck.model_validate_json(listener.of("command-acks")[0][1])
        assert (ack.command_id, ack.status) == ("cmd-1", "done")
        desired = DesiredState(version=1, values={"charge_limit_pct": 60})
        listener.client.publish(f"{base}/desired", json_payload(desired), qos=1, retain=True)

        def limit_is_60() -> bool:
            latest = Telemetry.validate_json(listener.of("telemetry")[-1][1])
            reading = latest.readings[-1] if isinstance(latest, TelemetryBatch) else latest
            return reading.metrics["charge_limit_pct"] == 60

        listener.wait_for(lambda: listener.of("telemetry") and limit_is_60())
    finally:
        stop.set()
        runner.join(10)
        listener.client.publish(f"{topic_prefix}/v1/devices/{car.uid}/desired", b"", retain=True)


def test_offline_device_leaves_with_its_will_and_replays_what_it_measured(
    mqtt_url: str, topic_prefix: str, listener: Listener
) -> None:
    fridge = DeviceSpec(uid=f"{topic_prefix}-fridge", model="refrigerator")
    fault = FaultSpec.model_validate(
        {"device": fridge.uid, "kind": "offline", "at": "2h", "for": "3h"}
    )
    options = _options(mqtt_url, topic_prefix, speed=3600.0 * 6, tick_s=0.05)
    assert options.start is not None
    stats = Fleet([fridge], options, [fault]).run(threading.Event())
    listener.wait_for(
        lambda: sum(len(s) for s in _seqs_by_device(listener).values()) >= stats.readings
    )
    listener.wait_for(lambda: len(listener.of("status")) >= 4)
    states = [DeviceStatus.model_validate_json(p).state for _, p in listener.of("status")]
    assert states == ["online", "offline", "online", "offline"]  # hello, will, back, goodbye
    (numbers,) = _seqs_by_device(listener).values()
    assert sorted(numbers) == list(range(1, len(numbers) + 1))
    batches = [Telemetry.validate_json(p) for _, p in listener.of("telemetry")]
    readings = [r for b in batches for r in (b.readings if isinstance(b, TelemetryBatch) else [b])]
    went, back = options.start + timedelta(hours=2), options.start + timedelta(hours=5)
    assert len([r for r in readings if went < r.ts <= back]) == 3 * 12  # measured while away
    assert stats.connects == 2


@contextlib.contextmanager
def _broker_with_passwords(tmp_path: Path, users: dict[str, str]) -> Iterator[str]:
    passwords = tmp_path / "passwords"
    passwords.touch()
    for user, password in users.items():
        subprocess.run(["mosquitto_passwd", "-b", str(passwords), user, password], check=True)
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwords}\n"
        # as root, Mosquitto would switch to its own user, who cannot read pytest's tmp dir
        f"user {getpass.getuser()}\n"
    )
    process = subprocess.Popen([MOSQUITTO, "-c", str(config)], stderr=subprocess.DEVNULL)
    try:
        wait_for_port("127.0.0.1", port, 10)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(5)


def test_each_device_connects_with_its_own_provisioned_credential(
    tmp_path: Path, topic_prefix: str
) -> None:
    uid = f"{topic_prefix}-washer"
    provisioning = tmp_path / "devices.csv"
    provisioning.write_text(f"uid,password,model\n{uid},s3cret-{uid},washing_machine\n")
    loaded = load_provisioning(provisioning)
    with _broker_with_passwords(tmp_path, {uid: f"s3cret-{uid}", "watcher": "w"}) as url:
        listener = Listener(url.replace("//", "//watcher:w@"), topic_prefix)
        try:
            options = _options(url, topic_prefix, credentials=loaded.password)
            stats = Fleet(loaded.devices, options).run(threading.Event())
            listener.wait_for(lambda: len(listener.of("telemetry")) > 0)
            assert stats.readings == 6 * 12
        finally:
            listener.close()
        wrong = _options(url, topic_prefix, credentials=lambda _: "wrong", connect_timeout_s=5)
        with pytest.raises(
            SimulatorError, match=r"could not connect .* as .*-washer: Not authorized"
        ):
            Fleet(loaded.devices, wrong).run(threading.Event())


def test_reconnect_backoff_grows_with_jitter_and_a_cap() -> None:
    import random

    rng_a, rng_b = random.Random(1), random.Random(2)
    first = [backoff_delay(n, rng_a) for n in range(12)]
    assert first != [backoff_delay(n, rng_b) for n in range(12)]  # clients spread out
    assert 0.25 <= first[0] <= 0.75 and max(first) <= 45.0
    assert first[6] > first[0]


def _start_mosquitto(config: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([MOSQUITTO, "-c", str(config)], stderr=subprocess.DEVNULL)
    wait_for_port("127.0.0.1", port, 10)
    return process


def test_fleet_survives_a_broker_restart_without_losing_a_seq(
    tmp_path: Path, topic_prefix: str
) -> None:
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
        f"persistence_location {tmp_path}/\nuser {getpass.getuser()}\n"
    )
    url = f"mqtt://127.0.0.1:{port}"
    broker = _start_mosquitto(config, port)
    received: list[tuple[str, bytes]] = []
    watcher = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"watch-{topic_prefix}", clean_session=False
    )
    watcher.on_message = lambda c, u, m: received.append((m.topic, bytes(m.payload)))
    watcher.connect("127.0.0.1", port)
    watcher.subscribe(f"{topic_prefix}/+/devices/+/telemetry", qos=1)
    watcher.loop_start()
    specs = _specs(topic_prefix)[:2]
    options = _options(
        url,
        topic_prefix,
        speed=1200.0,
        tick_s=0.1,
        interval=timedelta(minutes=1),
        duration=timedelta(hours=2),
    )
    fleet = Fleet(specs, options)
    runner = threading.Thread(target=fleet.run, args=(threading.Event(),), daemon=True)

    def measured() -> set[tuple[str, object]]:
        seen: set[tuple[str, object]] = set()
        for topic, payload in list(received):
            parsed = Telemetry.validate_json(payload)
            batch = parsed.readings if isinstance(parsed, TelemetryBatch) else [parsed]
            seen |= {(topic.split("/")[3], r.ts) for r in batch}
        return seen

    try:
        runner.start()
        time.sleep(2.0)
        broker.terminate()  # saves its persistent sessions on the way out
        broker.wait(10)
        time.sleep(2.0)
        broker = _start_mosquitto(config, port)
        runner.join(60)
        assert not runner.is_alive()
        assert all(link.connects >= 2 for link in fleet.links)
        deadline = time.monotonic() + 15
        while len(measured()) < 2 * 120 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(measured()) == 2 * 120  # every minute of both devices, none lost
    finally:
        watcher.loop_stop()
        broker.terminate()
        broker.wait(10)


def test_a_fleet_split_over_processes_adds_up(mqtt_url: str, topic_prefix: str) -> None:
    from simulator.mix import mixed_fleet, parse_mix
    from simulator.processes import run_processes

    specs = mixed_fleet(12, parse_mix("refrigerator=1,ev=1"), seed=2, uid_prefix=topic_prefix)
    options = _options(mqtt_url, topic_prefix, duration=timedelta(hours=1), mode="shared")
    totals = run_processes(specs, options, 2)
    assert (totals["processes"], totals["devices"], totals["readings"]) == (2, 12, 12 * 12)
    assert totals["cpu_s"] > 0 and totals["sim_time"] is not None
