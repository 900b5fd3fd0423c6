"""`kizuna bench ingest`: sustained MQTT → PostgreSQL throughput, loss and publish→commit latency.

Phases, all in one run so the numbers share the machine's load: (1) the load generator's
own ceiling against a consumer that only acks, (2) ingest under a paced load for the set
duration, (3) a drain until everything acknowledged by the broker is stored (or a timeout).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import queue
import secrets
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

import typer

from bench.mqtt_wire import (
    MAX_PACKET_ID,
    SUBACK,
    WireClient,
    count_pubacks,
    puback_packets,
    publish_ids,
    publish_packet,
    subscribe_packet,
)
from ingest.config import IngestConfig
from store.scratch import scratch_database

METRICS_PER_MESSAGE = 8
# Unacked publishes per publisher before it waits for PUBACKs.
MAX_OUTSTANDING = 1000
PACE_S = 0.005
# fork: a spawned child re-imports the whole CLI (dash, fastapi...), which takes seconds on a
# busy machine and skews the start of every phase.
_CTX = mp.get_context("fork")
DRAIN_STALL_S = 30.0  # stop waiting for the drain after this long without progress


def _payload(seq: int, now: float) -> bytes:
    ts = datetime.fromtimestamp(now, UTC).isoformat()
    return (
        b'{"seq":%d,"ts":"%s","metrics":{"phase":"wash","remaining_min":%d,'
        b'"water_flow_lpm":%.2f,"drum_temp_c":%.1f,"leak_detected":false,"power_w":%.1f,'
        b'"cycles_since_drum_clean":%d,"door_locked":true}}'
        % (seq, ts.encode(), seq % 120, (seq % 50) / 3, 20 + seq % 40, 100 + seq % 900, seq % 60)
    )


def _wire_client(url: str, client_id: str) -> WireClient:
    parts = urlsplit(url)
    return WireClient(
        parts.hostname or "127.0.0.1",
        parts.port or 1883,
        client_id,
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
    )


def publisher_process(
    index: int,
    url: str,
    prefix: str,
    uids: list[str],
    rate: float,
    start: Any,
    duration_s: float,
    results: Any,
) -> None:
    """Publish QoS 1 readings round-robin over `uids` at `rate` msg/s (0 = as fast as it can).

    Connects, reports ready, then waits until the parent sets the shared start time. Counts
    a message as published when the broker's PUBACK for it arrived.
    """
    client = _wire_client(url, f"bench-pub-{prefix}-{index}")
    topics = [f"{prefix}/v1/devices/{uid}/telemetry".encode() for uid in uids]
    seqs = [0] * len(uids)
    sent = acked = packet_id = 0
    results.put({"ready": index})
    while start.value == 0 or time.time() < start.value:
        time.sleep(0.001)
    start_at = start.value
    end = start_at + duration_s
    while (now := time.time()) < end:
        target = int(rate * (now - start_at)) if rate else sent + MAX_OUTSTANDING
        room = min(target - sent, MAX_OUTSTANDING - (sent - acked))
        if room > 0:
            packets = []
            for _ in range(room):
                slot = sent % len(uids)
                seqs[slot] += 1
                packet_id = packet_id % MAX_PACKET_ID + 1
                packets.append(publish_packet(topics[slot], packet_id, _payload(seqs[slot], now)))
                sent += 1
            client.send(b"".join(packets))
        if room <= 0:
            time.sleep(PACE_S)  # wake at most every PACE_S: the generator's CPU is measured too
        acked += count_pubacks(client.receive(0))
    deadline = time.time() + 60
    while acked < sent and time.time() < deadline:
        acked += count_pubacks(client.receive(0.05))
    client.close()
    results.put({"publisher": index, "sent": sent, "acked": acked})


def null_consumer_process(
    url: str, prefix: str, ready: MpEvent, stop: MpEvent, results: Any
) -> None:
    """Subscribe with QoS 1, ack at once, count: what the generator and broker can do alone."""
    client = _wire_client(url, f"bench-null-{prefix}")
    client.send(subscribe_packet(1, f"{prefix}/v1/devices/+/telemetry"))
    received = 0
    subscribed = False
    while not stop.is_set():
        packets = client.receive(0.05)
        if not subscribed and any(kind & 0xF0 == SUBACK for kind, _ in packets):
            subscribed = True
            ready.set()
        ids = publish_ids(packets)
        if ids:
            received += len(ids)
            client.send(puback_packets(ids))
    client.close()
    results.put({"received": received})


def ingest_process(
    database_url: str,
    mqtt_url: str,
    prefix: str,
    overrides: dict[str, Any],
    with_rules: bool,
    ready: MpEvent,
    stop: MpEvent,
    results: Any,
) -> None:
    """Run the real ingest worker, recording publish→commit latency of every stored reading."""
    import numpy as np

    from app.logging import configure_logging
    from app.settings import Settings
    from ingest.main import batch_steps
    from ingest.mqtt import BrokerSession
    from ingest.records import StoredBatch
    from ingest.worker import IngestWorker

    configure_logging("warning")
    settings = Settings(
        _env_file=None,
        database_url=database_url,
        mqtt_url=mqtt_url,
        mqtt_topic_prefix=prefix,
        ingest=IngestConfig(**{"client_id": f"bench-ingest-{prefix}", **overrides}),
    )
    lane = threading.local()  # each writer lane commits its own batches
    latencies: list[float] = []
    commits: list[tuple[float, int]] = []

    def record(conn: Any, batch: StoredBatch) -> None:
        lane.in_batch = [r.ts.timestamp() for r in batch.readings]

    def committed(result: Any) -> None:
        now = time.time()
        in_batch = getattr(lane, "in_batch", [])
        latencies.extend(now - ts for ts in in_batch)
        commits.append((now, len(in_batch)))
        lane.in_batch = []

    assert settings.database_url and settings.mqtt_url
    steps = [record, *(batch_steps() if with_rules else [])]
    worker = IngestWorker(
        settings.database_url, prefix, settings.ingest, settings.store, steps, committed
    )
    session = BrokerSession(
        settings.mqtt_url, prefix, settings.ingest, worker.submit, lambda: worker.pending
    )
    session.start()
    halt = threading.Event()

    def relay_stop() -> None:
        stop.wait()
        halt.set()

    threading.Thread(target=relay_stop, daemon=True).start()
    ready.set()
    worker.run(session.ack, halt)
    session.stop()
    results.put(
        {
            "latencies_ms": (np.array(latencies, dtype=np.float32) * 1000).tobytes(),
            "commits": commits,
            "stored": worker.totals.readings_stored,
            "duplicates": worker.totals.duplicates,
            "dead_letters": sum(worker.totals.dead_letters.values()),
            "batches": len(commits),
        }
    )


def _run_publishers(
    url: str, prefix: str, uids: list[str], publishers: int, rate: float, duration_s: float
) -> tuple[list[Any], float, Any]:
    results = _CTX.Queue()
    start = _CTX.Value("d", 0.0)
    procs = [
        _CTX.Process(
            target=publisher_process,
            args=(
                i,
                url,
                prefix,
                uids[i::publishers],
                rate / publishers,
                start,
                duration_s,
                results,
            ),
        )
        for i in range(publishers)
    ]
    for proc in procs:
        proc.start()
    for _ in procs:
        results.get(timeout=120)  # every publisher is connected
    start.value = time.time() + 0.2
    return procs, start.value, results


def _collect(procs: list[Any], results: Any, timeout_s: float) -> list[dict[str, Any]]:
    out = []
    for _ in procs:
        with contextlib.suppress(queue.Empty):
            out.append(results.get(timeout=timeout_s))
    for proc in procs:
        proc.join(10)
    return out


def measure_ceiling(url: str, uids: list[str], publishers: int, seconds: float) -> float:
    """Messages per second the publishers and broker deliver to a consumer that only acks."""
    prefix = f"kzbn{secrets.token_hex(3)}"
    ready, stop, results = _CTX.Event(), _CTX.Event(), _CTX.Queue()
    consumer = _CTX.Process(target=null_consumer_process, args=(url, prefix, ready, stop, results))
    consumer.start()
    ready.wait(30)
    procs, _, pub_results = _run_publishers(url, prefix, uids, publishers, 0, seconds)
    _collect(procs, pub_results, seconds + 90)
    time.sleep(0.5)
    stop.set()
    received = results.get(timeout=30)["received"]
    consumer.join(10)
    return received / seconds


class _Components:
    """CPU seconds used so far by each part of the benchmark (percent of one core over time).

    PostgreSQL backends are looked up again at every reading: ingest opens its connections
    after the load starts, and a backend that appears counts all of its CPU time.
    """

    def __init__(self, groups: dict[str, list[Any]]) -> None:
        self.groups = groups
        self._postgres: dict[int, Any] = {}

    def cpu(self) -> dict[str, float]:
        import psutil

        for process in psutil.process_iter(["name"]):
            if (process.info["name"] or "").startswith("postgres"):
                self._postgres.setdefault(process.pid, process)
        used = {}
        for name, processes in {**self.groups, "postgres": list(self._postgres.values())}.items():
            total = 0.0
            for process in processes:
                with contextlib.suppress(Exception):  # a process that ended counts no more
                    times = process.cpu_times()
                    total += times.user + times.system
            used[name] = total
        return used


def _components(mqtt_url: str, ingests: list[Any], publishers: list[Any]) -> _Components:
    import psutil

    port = urlsplit(mqtt_url).port or 1883
    brokers = []
    for process in psutil.process_iter(["name"]):
        if (process.info["name"] or "") in ("mosquitto", "rumqttd"):
            with contextlib.suppress(Exception):
                if any(c.laddr.port == port for c in process.net_connections("tcp")):
                    brokers.append(process)
    return _Components(
        {
            "ingest": ingests,
            "publishers": [psutil.Process(p.pid) for p in publishers],
            "broker": brokers,
        }
    )


def _busy_seconds(times: Any) -> float:
    return float(
        times.user
        + times.system
        + getattr(times, "nice", 0.0)
        + getattr(times, "irq", 0.0)
        + getattr(times, "softirq", 0.0)
        + getattr(times, "steal", 0.0)
    )


def _register_devices(database_url: str, count: int) -> list[str]:
    from devices.catalog_sync import sync_product_models
    from store.db import connect

    with connect(database_url, autocommit=True) as conn:
        sync_product_models(conn)
        rows = conn.execute(
            "INSERT INTO devices (uid, serial, model_id) "
            "SELECT 'bench-' || g, 'SN-bench-' || g, 'washing_machine' "
            "FROM generate_series(1, %s) g RETURNING uid",
            (count,),
        ).fetchall()
    return [row["uid"] for row in rows]


def _install_rule_packs(database_url: str) -> dict[str, int]:
    """The built-in rule packs (the washer's among them), so the rules step has real work."""
    from rules.service import install_builtin_packs
    from store.db import connect

    with connect(database_url) as conn, conn.transaction():
        return install_builtin_packs(conn)


def _stored(database_url: str) -> tuple[int, int]:
    from store.db import connect

    with connect(database_url, autocommit=True) as conn:
        row: Any = conn.execute(
            "SELECT count(*) AS n, count(DISTINCT (device_id, seq)) AS d FROM telemetry"
        ).fetchone()
    return int(row["n"]), int(row["d"])


def run_ingest_bench(
    database_url: str,
    mqtt_url: str,
    *,
    duration_s: float = 60.0,
    rate: float = 10_000.0,
    publishers: int = 4,
    devices: int = 1000,
    ceiling_s: float = 10.0,
    with_rules: bool = False,
    overrides: dict[str, Any] | None = None,
    ingest_processes: int = 1,
) -> dict[str, Any]:
    """Measure the generator ceiling, then ingest under load; database_url is a migrated DB."""
    import psutil

    uids = _register_devices(database_url, devices)
    rules_installed = _install_rule_packs(database_url) if with_rules else {}
    ceiling = measure_ceiling(mqtt_url, uids, publishers, ceiling_s)
    prefix = f"kzbi{secrets.token_hex(3)}"
    stop, results = _CTX.Event(), _CTX.Queue()
    ingests = []
    for index in range(ingest_processes):
        config = {"session_expiry_s": 300, **(overrides or {})}
        if ingest_processes > 1:  # partitions: each device always in the same process
            config |= {
                "partition_count": ingest_processes,
                "partition_index": index,
                "client_id": f"bench-ingest-{prefix}-{index}",
            }
        ready = _CTX.Event()
        process = _CTX.Process(
            target=ingest_process,
            args=(database_url, mqtt_url, prefix, config, with_rules, ready, stop, results),
        )
        process.start()
        ingests.append((process, ready))
    for _, ready in ingests:
        ready.wait(60)
    watched = [psutil.Process(process.pid) for process, _ in ingests]
    procs, start_at, pub_results = _run_publishers(
        mqtt_url, prefix, uids, publishers, rate, duration_s
    )
    components = _components(mqtt_url, watched, procs)
    while time.time() < start_at:
        time.sleep(0.01)
    cpu_start, machine_start, rss_peak = components.cpu(), psutil.cpu_times(), 0
    while time.time() < start_at + duration_s:
        rss_peak = max(rss_peak, sum(p.memory_info().rss for p in watched))
        time.sleep(0.5)
    cpu_end, machine_end = components.cpu(), psutil.cpu_times()
    published = _collect(procs, pub_results, 120)
    acked = sum(p["acked"] for p in published)
    drain_started = last_progress = time.time()
    stored = _stored(database_url)[1]
    while stored < acked and time.time() < last_progress + DRAIN_STALL_S:
        rss_peak = max(rss_peak, sum(p.memory_info().rss for p in watched))
        time.sleep(0.5)
        now_stored = _stored(database_url)[1]
        if now_stored > stored:
            stored, last_progress = now_stored, time.time()
    drain_s = time.time() - drain_started
    stop.set()
    reports = [results.get(timeout=60) for _ in ingests]
    for process, _ in ingests:
        process.join(30)
    import numpy as np

    latencies = (
        np.concatenate([np.frombuffer(r["latencies_ms"], dtype=np.float32) for r in reports])
        if reports
        else np.zeros(0)
    )
    values = latencies if latencies.size else np.array([0.0])
    report = {
        "p50_ms": float(np.percentile(values, 50)),
        "p99_ms": float(np.percentile(values, 99)),
        "max_ms": float(values.max()),
        "commits": [c for r in reports for c in r["commits"]],
        "duplicates": sum(r["duplicates"] for r in reports),
        "dead_letters": sum(r["dead_letters"] for r in reports),
        "batches": sum(r["batches"] for r in reports),
    }
    cpu_pct = {
        name: round(100 * (cpu_end[name] - cpu_start.get(name, 0.0)) / duration_s, 1)
        for name in cpu_end
    }
    busy = _busy_seconds(machine_end) - _busy_seconds(machine_start)
    cpu_pct["whole_machine"] = round(100 * busy / duration_s, 1)
    total, distinct = _stored(database_url)
    in_window = sum(n for t, n in report["commits"] if start_at <= t <= start_at + duration_s)
    msgs_per_s = in_window / duration_s
    return {
        "benchmark": "ingest",
        "duration_s": duration_s,
        "target_msgs_per_s": rate,
        "publishers": publishers,
        "devices": devices,
        "metrics_per_message": METRICS_PER_MESSAGE,
        "qos": 1,
        "with_rules_step": with_rules,
        "rules_installed": rules_installed,
        "ingest_mqtt_protocol": config.get("mqtt_protocol", "5"),
        "msgs_per_s": round(msgs_per_s),
        "points_per_s": round(msgs_per_s * METRICS_PER_MESSAGE),
        "published": acked,
        "publish_attempted": sum(p["sent"] for p in published),
        "stored": distinct,
        "lost": acked - distinct,
        "duplicates_stored": total - distinct,
        "duplicates_dropped": report["duplicates"],
        "dead_letters": report["dead_letters"],
        "p50_ms": round(report["p50_ms"], 1),
        "p99_ms": round(report["p99_ms"], 1),
        "max_ms": round(report["max_ms"], 1),
        "batches": report["batches"],
        "drain_s": round(drain_s, 2),
        "drain_complete": distinct >= acked,
        "ingest_cpu_pct": cpu_pct["ingest"],
        "ingest_processes": ingest_processes,
        "writer_lanes_per_process": IngestConfig(**(overrides or {})).writer_lanes,
        "cpu_pct_during_load": cpu_pct,
        "ingest_rss_mb": round(rss_peak / 2**20, 1),
        "generator_ceiling_msgs_per_s": round(ceiling),
        "target_vs_ceiling": round(rate / ceiling, 2) if ceiling else None,
        "cpu_count": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


BROKER_CONFIG = """listener {port} 127.0.0.1
allow_anonymous true
persistence false
# Ingest acknowledges after commit: the broker's in-flight window toward it must be at least
# ingest's Receive Maximum, or the next batch cannot arrive while one commits (0 = the
# client's Receive Maximum decides).
max_inflight_messages 0
max_queued_messages 2000000
message_size_limit 262144
log_dest stderr
log_type error
"""


@contextlib.contextmanager
def _bench_broker(work: Path) -> Iterator[str]:
    """A Mosquitto of our own with limits chosen for a load test (docs/ingest.md)."""
    from app.embedded import embedded_broker, find_mosquitto, free_port, wait_for_port

    binary = find_mosquitto()
    if binary is None:  # no Mosquitto: the embedded fallback broker
        with embedded_broker(work / "broker") as broker:
            yield _url(broker)
        return
    port = free_port()
    config = work / "mosquitto-bench.conf"
    config.write_text(BROKER_CONFIG.format(port=port))
    process = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL)
    try:
        wait_for_port("127.0.0.1", port, 10)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


@contextlib.contextmanager
def _services(database_url: str | None, mqtt_url: str | None) -> Iterator[tuple[str, str]]:
    from app.embedded import embedded_postgres

    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kizuna-bench-")))
        admin = database_url or _url(stack.enter_context(embedded_postgres(work / "pg")))
        broker = mqtt_url or stack.enter_context(_bench_broker(work))
        yield stack.enter_context(scratch_database(admin, "ingest")), broker


def _url(service: Any) -> str:
    """The URL of an embedded service (a plain URL or an object carrying one)."""
    return service if isinstance(service, str) else str(service.url)


def ingest(
    duration: Annotated[float, typer.Option(help="Seconds of sustained load.")] = 60.0,
    rate: Annotated[float, typer.Option(help="Target messages per second in total.")] = 10_000.0,
    publishers: Annotated[int, typer.Option(help="Publisher processes.")] = 4,
    devices: Annotated[int, typer.Option(help="Simulated devices.")] = 1000,
    ceiling_seconds: Annotated[
        float, typer.Option(help="Seconds for the generator ceiling.")
    ] = 10.0,
    with_rules: Annotated[
        bool, typer.Option(help="Also run the rules step in each batch.")
    ] = False,
    ingest_protocol: Annotated[
        str, typer.Option(help="MQTT version ingest uses: 5 or 3.1.1.")
    ] = "5",
    ingest_processes: Annotated[
        int, typer.Option(help="Ingest processes (partitions by device when more than 1).")
    ] = 1,
    writer_lanes: Annotated[
        int, typer.Option(help="Database writer lanes in each ingest process.")
    ] = 2,
    database_url: Annotated[
        str | None,
        typer.Option(envvar="KIZUNA_DATABASE_URL", help="Server (a scratch DB is made)."),
    ] = None,
    mqtt_url: Annotated[
        str | None, typer.Option(help="Broker to use; default: start a Mosquitto of our own.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = True,
) -> None:
    """Sustained ingest load: throughput, loss, duplicates, publish→commit latency, CPU, RSS."""
    from app.logging import configure_logging

    configure_logging("warning")  # logs to stderr: stdout is the JSON result
    with _services(database_url, mqtt_url) as (db_url, broker_url):
        result = run_ingest_bench(
            db_url,
            broker_url,
            duration_s=duration,
            rate=rate,
            publishers=publishers,
            devices=devices,
            ceiling_s=ceiling_seconds,
            with_rules=with_rules,
            overrides={"mqtt_protocol": ingest_protocol, "writer_lanes": writer_lanes},
            ingest_processes=ingest_processes,
        )
    typer.echo(json.dumps(result, indent=2 if as_json else None))
