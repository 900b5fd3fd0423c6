"""How fast the simulator publishes, next to a plain publisher on the same broker and machine.

A load generator easily becomes the bottleneck; so every fleet number comes with the
ceiling of a bare paho-mqtt QoS 1 publisher (same connections, same message size) measured
in the same run, and the ratio between them.
"""

from __future__ import annotations

import secrets
import threading
import time
from datetime import timedelta
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from simulator.clock import floor_to, utc_now
from simulator.fleet import Fleet, FleetOptions
from simulator.mix import mixed_fleet, parse_mix
from simulator.processes import cpu_seconds
from simulator.transport import MqttEndpoint

DEFAULT_MIX = "ev=1,refrigerator=1,washing_machine=1,air_conditioner=1"


def publish_ceiling(
    mqtt_url: str, prefix: str, *, messages: int, payload_bytes: int, connections: int
) -> dict[str, Any]:
    """Publish `messages` QoS 1 messages as fast as plain paho clients can; msgs/s and CPU."""
    endpoint = MqttEndpoint.from_url(mqtt_url)
    clients = []
    for i in range(connections):
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"ceiling-{prefix}-{i}")
        if endpoint.username:
            client.username_pw_set(endpoint.username, endpoint.password)
        client.max_inflight_messages_set(100)
        client.connect(endpoint.host, endpoint.port)
        client.loop_start()
        clients.append(client)
    payload = b"x" * payload_bytes
    cpu0, began = cpu_seconds(), time.monotonic()
    infos = [
        clients[n % connections].publish(f"{prefix}/ceiling/{n % 1000}", payload, qos=1)
        for n in range(messages)
    ]
    for info in infos[-connections:]:
        info.wait_for_publish(120)
    elapsed = time.monotonic() - began
    cpu = cpu_seconds() - cpu0
    for client in clients:
        client.disconnect()
        client.loop_stop()
    return {
        "messages": messages,
        "payload_bytes": payload_bytes,
        "connections": connections,
        "elapsed_s": round(elapsed, 2),
        "messages_per_s": round(messages / elapsed, 1),
        "cpu_s": round(cpu, 2),
    }


def fleet_bench(
    mqtt_url: str,
    *,
    devices: int,
    connections: int,
    speed: float,
    duration: timedelta,
    interval: timedelta,
    seed: int = 1,
    mix: str = DEFAULT_MIX,
) -> dict[str, Any]:
    """Run a fleet of `devices` (history ending now), then the reference; both with CPU."""
    prefix = f"bench{secrets.token_hex(3)}"
    specs = mixed_fleet(devices, parse_mix(mix), seed=seed)
    options = FleetOptions(
        mqtt_url=mqtt_url,
        topic_prefix=prefix,
        speed=speed,
        start=floor_to(utc_now() - duration, timedelta(minutes=1)),
        duration=duration,
        interval=interval,
        seed=seed,
        mode="shared",
        connections=connections,
        goodbye=False,
    )
    cpu0 = cpu_seconds()
    stats = Fleet(specs, options).run(threading.Event())
    fleet: dict[str, Any] = stats.as_dict() | {"cpu_s": round(cpu_seconds() - cpu0, 2)}
    fleet["cpu_pct_of_one_core"] = round(100 * fleet["cpu_s"] / stats.elapsed_s, 1)
    fleet["realtime_factor"] = round(duration.total_seconds() / speed / stats.elapsed_s, 3)
    size = max(1, stats.bytes // max(1, stats.messages))
    reference = publish_ceiling(
        mqtt_url,
        prefix,
        messages=min(stats.messages, 50_000),
        payload_bytes=size,
        connections=connections,
    )
    return {
        "fleet": fleet,
        "reference_plain_publisher": reference,
        "fleet_msgs_per_s_vs_reference": round(
            fleet["messages_per_s"] / reference["messages_per_s"], 3
        ),
    }
