"""`kizuna bench notify`: telemetry published → post visible in the owner's feed, under load.

A scratch database gets the product models, the built-in rule packs, background fridges and
probe EVs. Ingest (with its rules step) and the notify component run as `kizuna serve` runs
them: each in its own process (or, with --in-process, as threads of this one, to compare).
The background telemetry is published from a process of its own too, so the measuring
process only publishes probes and watches the database.

Each probe EV publishes a `charge_complete` event. A watcher polls the database and records
when each probe's event row, moment row and feed post first become visible, so every stage
is measured on the same probe in the same run:

    publish ─▶ ingest received (ingest's clock) ─▶ event stored ─▶ moment ─▶ feed post visible

The probes run twice: on an idle pipeline (the reference) and under the background rate.
Moments inserted directly (as rules/ writes them) measure notify's own stage alone: one per
transaction, and in batches of many per transaction, as ingest commits them under load.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import secrets
import statistics
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import typer
from paho.mqtt.enums import CallbackAPIVersion

from app.logging import configure_logging
from app.services import running_services
from app.settings import Settings, load_settings
from devices.catalog_sync import sync_product_models
from devices.protocol import Channel, DeviceEvent, Reading, device_topic, json_payload
from rules.service import install_builtin_packs
from store.db import connect
from store.scratch import scratch_database

FEED_POLL_S = 0.002
READY_TIMEOUT_S = 60.0
BATCH_SPACING_S = 0.5  # between batches of moments: each is fanned out on its own
# fork: a spawned child would re-import the whole CLI; fork before any thread is started.
_CTX = mp.get_context("fork")
Component = Callable[[Settings, threading.Event], None]


def provision(url: str, fridges: int, evs: int) -> None:
    """Models, rule packs, one owner, background fridges and probe EVs."""
    with connect(url, autocommit=True) as conn:
        sync_product_models(conn)
        install_builtin_packs(conn)
        owner = conn.execute(
            "INSERT INTO customers (language, time_zone) VALUES ('ja', 'Asia/Tokyo') RETURNING id"
        ).fetchone()
        assert owner is not None
        devices = [(f"bg-{i}", "refrigerator") for i in range(fridges)]
        devices += [(f"probe-{i}", "ev") for i in range(evs)]
        with conn.cursor() as cur:
            cur.executemany(
                "WITH d AS (INSERT INTO devices (uid, serial, model_id) VALUES (%s, %s, %s) "
                "RETURNING id) INSERT INTO device_ownerships (device_id, customer_id, role) "
                "SELECT id, %s, 'owner' FROM d",
                [(uid, f"SN-{uid}", model, owner["id"]) for uid, model in devices],
            )


def _client(settings: Settings, name: str) -> mqtt.Client:
    parts = urlsplit(settings.mqtt_url or "")
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"{settings.mqtt_topic_prefix}-{name}"
    )
    if parts.username:
        client.username_pw_set(parts.username, parts.password or "")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.loop_start()
    return client


# ---------------------------------------------------------------- components and background


def _component_process(
    name: str, run: Component, settings: Settings, ready: Any, stop: Any
) -> None:
    """A forked child running one component until `stop` (a multiprocessing event) is set."""
    configure_logging(settings.log_level, settings.log_format)
    local_stop = threading.Event()
    worker = threading.Thread(target=run, args=(settings, local_stop), name=name, daemon=True)
    worker.start()
    if name == "ingest":
        _wait_until_ingest_subscribed()
    ready.set()
    stop.wait()
    local_stop.set()
    worker.join(15)


def _wait_until_ingest_subscribed() -> None:
    from ingest import health

    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        state = health.current()
        if state is not None and state.ok:
            return
        time.sleep(0.05)


class Components:
    """Ingest and notify, as processes (the production layout) or as threads of this one."""

    def __init__(self, settings: Settings, in_process: bool, ingest_processes: int = 1) -> None:
        from ingest.main import run as run_ingest
        from notify.main import run as run_notify

        self.runs: dict[str, Component] = {"ingest": run_ingest, "notify": run_notify}
        self.settings, self.in_process = settings, in_process
        self.ingest_processes = 1 if in_process else ingest_processes
        self.stop_threads = threading.Event()
        self.stop_processes = _CTX.Event()
        self.threads: list[threading.Thread] = []
        self.processes: list[Any] = []

    def start(self) -> None:
        """Start both components; return once ingest has subscribed."""
        if self.in_process:
            for name, run in self.runs.items():
                thread = threading.Thread(
                    target=run, args=(self.settings, self.stop_threads), name=name, daemon=True
                )
                thread.start()
                self.threads.append(thread)
            _wait_until_ingest_subscribed()
            return
        for name, run, settings in self._layout():
            ready = _CTX.Event()
            process = _CTX.Process(
                target=_component_process,
                args=(name, run, settings, ready, self.stop_processes),
                name=f"bench-{name}",
                daemon=True,
            )
            process.start()
            self.processes.append(process)
            if not ready.wait(READY_TIMEOUT_S):
                raise RuntimeError(f"{name} did not start in time")

    def _layout(self) -> list[tuple[str, Component, Settings]]:
        """(name, run, settings) per process: ingest as N partitions by device when N > 1."""
        count = self.ingest_processes
        layout = []
        for index in range(count):
            ingest = self.settings.ingest
            if count > 1:
                ingest = ingest.model_copy(
                    update={
                        "partition_count": count,
                        "partition_index": index,
                        "client_id": f"{ingest.client_id}-{index}",
                    }
                )
            settings = self.settings.model_copy(update={"ingest": ingest})
            layout.append(("ingest", self.runs["ingest"], settings))
        layout.append(("notify", self.runs["notify"], self.settings))
        return layout

    def stop(self) -> None:
        """Stop both components and wait for them."""
        self.stop_threads.set()
        self.stop_processes.set()
        for thread in self.threads:
            thread.join(15)
        for process in self.processes:
            process.join(20)
            if process.is_alive():
                process.terminate()


def _publish_background(
    settings: Settings, fridges: int, rate: int, go: Any, stop: Any, counters: Any
) -> None:
    """Normal fridge readings (no rule fires) at a target rate, counted in shared memory."""
    go.wait()
    if stop.is_set():
        return
    client = _client(settings, "background")
    prefix, seq, tick, published = settings.mqtt_topic_prefix, 10, 0.01, 0
    topics = [device_topic(prefix, f"bg-{i}", Channel.TELEMETRY) for i in range(fridges)]
    started = time.perf_counter()
    try:
        while not stop.is_set():
            due = int((time.perf_counter() - started) * rate)
            while published < due and not stop.is_set():
                index = published % fridges
                if index == 0:
                    seq += 1
                reading = Reading(
                    seq=seq,
                    ts=datetime.now(UTC),
                    metrics={"fridge_temp_c": 3.5, "door_open": False, "power_w": 90.0},
                )
                client.publish(topics[index], json_payload(reading), qos=1)
                published += 1
            counters[0], counters[1] = published, time.perf_counter() - started
            time.sleep(tick)
    finally:
        client.loop_stop()
        client.disconnect()


class Background:
    """The background telemetry publisher: a process forked early, publishing once told to."""

    def __init__(self, settings: Settings, fridges: int, rate: int) -> None:
        self.rate = rate
        self.go, self.stop_event = _CTX.Event(), _CTX.Event()
        # (messages published, seconds publishing), updated by the child at every tick.
        self.counters: Any = _CTX.Array("d", 2)
        self.process = _CTX.Process(
            target=_publish_background,
            args=(settings, fridges, rate, self.go, self.stop_event, self.counters),
            name="bench-background",
            daemon=True,
        )

    @property
    def published(self) -> int:
        """Messages published so far."""
        return int(self.counters[0])

    @property
    def elapsed_s(self) -> float:
        """Seconds spent publishing so far."""
        return float(self.counters[1])

    def fork(self) -> None:
        """Create the process now (before this process starts threads); it waits for start."""
        if self.rate:
            self.process.start()

    def start(self) -> None:
        """Start publishing."""
        self.go.set()

    def stop(self) -> None:
        """Stop publishing (once; later calls do nothing)."""
        if not self.rate or self.stop_event.is_set():
            return
        self.stop_event.set()
        self.go.set()
        self.process.join(20)
        if self.process.is_alive():
            self.process.terminate()


# ---------------------------------------------------------------- watching the database


class Watcher:
    """Polls the database; records when each probe's event, moment and post become visible.

    One statement per poll, so the three observations of one poll share a snapshot. Rows are
    looked up by the probes still awaited, never by an id cursor: ingest writes from several
    transactions at once, so a lower id may commit after a higher one. The times are this
    process's wall clock, as are the publish times of the probes.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.stored: dict[str, float] = {}  # uid → event row visible
        self.received: dict[str, float] = {}  # uid → ingest's received_at (its own clock)
        self.moment: dict[str, float] = {}
        self.posted: dict[str, float] = {}
        self.events: set[str] = set()  # probes whose event is awaited
        self.watched: set[str] = set()  # probes whose moment and post are awaited
        self.polls = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="bench-watcher", daemon=True)
        self.started = self.ended = 0.0

    def arm(self, uid: str, *, event: bool = True) -> None:
        """Watch this probe from now on (its event too, unless it has none)."""
        with self.lock:
            self.watched.add(uid)
            if event:
                self.events.add(uid)

    def _run(self) -> None:
        self.started = time.perf_counter()
        with connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                with self.lock:
                    events = sorted(self.events - set(self.stored))
                    moments = sorted(self.watched - set(self.moment))
                    posts = sorted(self.watched - set(self.posted))
                rows = conn.execute(
                    """SELECT 'event' AS what, d.uid,
                              extract(epoch FROM e.received_at)::float8 AS received
                       FROM devices d JOIN device_events e ON e.device_id = d.id
                       WHERE d.uid = ANY(%(events)s) AND e.event = 'charge_complete'
                       UNION ALL
                       SELECT 'moment', d.uid, NULL FROM devices d
                       JOIN moments m ON m.device_id = d.id
                       WHERE d.uid = ANY(%(moments)s) AND m.kind = 'ev.charge_complete'
                       UNION ALL
                       SELECT 'post', d.uid, NULL FROM devices d
                       JOIN feed_posts p ON p.device_id = d.id
                       WHERE d.uid = ANY(%(posts)s) AND p.kind = 'ev.charge_complete'""",
                    {"events": events, "moments": moments, "posts": posts},
                ).fetchall()
                now = time.time()
                self.polls += 1
                for row in rows:
                    uid = row["uid"]
                    if row["what"] == "event":
                        self.stored.setdefault(uid, now)
                        self.received.setdefault(uid, row["received"])
                    elif row["what"] == "moment":
                        self.moment.setdefault(uid, now)
                    else:
                        self.posted.setdefault(uid, now)
                time.sleep(FEED_POLL_S)
        self.ended = time.perf_counter()

    def poll_period_ms(self) -> float | None:
        """The measured mean time between two polls (the resolution of every number)."""
        if not self.polls or not self.ended:
            return None
        return round((self.ended - self.started) * 1000 / self.polls, 2)

    def wait_for_posts(self, uids: list[str], wait_s: float) -> None:
        """Until every probe's post is visible, or the wait is over."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and not set(uids) <= set(self.posted):
            time.sleep(0.05)


# ---------------------------------------------------------------- probes


def run_probes(
    settings: Settings, watcher: Watcher, uids: list[str], spacing_s: float, wait_s: float
) -> dict[str, Any]:
    """Publish one charge_complete per probe EV; end to end and every stage, per probe."""
    client = _client(settings, f"probe-{secrets.token_hex(2)}")
    sent: dict[str, float] = {}
    try:
        for uid in uids:
            watcher.arm(uid)
            event = DeviceEvent(seq=2, ts=datetime.now(UTC), event="charge_complete")
            topic = device_topic(settings.mqtt_topic_prefix, uid, Channel.EVENTS)
            sent[uid] = time.time()
            client.publish(topic, json_payload(event), qos=1)
            time.sleep(spacing_s)
        watcher.wait_for_posts(uids, wait_s)
    finally:
        client.loop_stop()
        client.disconnect()
    return {
        **_summary(_between(sent, watcher.posted), len(sent)),
        "stages": {
            "publish_to_stored": _percentiles(_between(sent, watcher.stored)),
            "publish_to_ingest_received": _percentiles(_between(sent, watcher.received)),
            "ingest_received_to_stored": _percentiles(
                _between(watcher.received, watcher.stored, sent)
            ),
            "stored_to_moment": _percentiles(_between(watcher.stored, watcher.moment, sent)),
            "moment_to_feed": _percentiles(_between(watcher.moment, watcher.posted, sent)),
        },
    }


def run_moment_probes(
    url: str, watcher: Watcher, groups: list[list[str]], spacing_s: float, wait_s: float
) -> dict[str, Any]:
    """The notify stage alone: moments committed as rules would → posts visible in the feed.

    Each group of probes is committed in one transaction, as ingest commits the moments of a
    batch; a group of one is a lone moment.
    """
    committed: dict[str, float] = {}
    for uid in (uid for group in groups for uid in group):
        watcher.arm(uid, event=False)
    with connect(url, autocommit=True) as conn:
        for group in groups:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(
                    """INSERT INTO moments (device_id, kind, severity, occurred_at, facts,
                                            dedup_key)
                       SELECT id, 'ev.charge_complete', 'info', now(), %s, %s
                       FROM devices WHERE uid = %s""",
                    [('{"soc_pct": 80, "range_km": 320}', f"bench-{uid}", uid) for uid in group],
                )
            now = time.time()  # after the commit returned: conservative
            committed.update(dict.fromkeys(group, now))
            time.sleep(spacing_s)
    watcher.wait_for_posts(list(committed), wait_s)
    result = _summary(_between(committed, watcher.posted), len(committed))
    return {**result, "moments_per_commit": len(groups[0]) if groups else 0}


def _groups(uids: list[str], size: int) -> list[list[str]]:
    return [uids[i : i + size] for i in range(0, len(uids), size)]


def _between(
    start: dict[str, float], end: dict[str, float], among: dict[str, float] | None = None
) -> list[float]:
    """Milliseconds from start to end for every probe seen at both (and in `among`)."""
    keys = set(start) & set(end) & set(start if among is None else among)
    return sorted((end[k] - start[k]) * 1000 for k in keys)


def _percentile(values: list[float], q: float) -> float:
    index = min(len(values) - 1, max(0, round(q * len(values)) - 1))
    return round(values[index], 1)


def _percentiles(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"probes": 0}
    return {
        "p50_ms": round(statistics.median(values), 1),
        "p99_ms": _percentile(values, 0.99),
        "probes": len(values),
    }


def _summary(latencies: list[float], expected: int) -> dict[str, Any]:
    if not latencies:
        return {"expected": expected, "delivered": 0}
    return {
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": _percentile(latencies, 0.99),
        "max_ms": round(latencies[-1], 1),
        "expected": expected,
        "delivered": len(latencies),
    }


# ---------------------------------------------------------------- setup helpers


def _prime_evs(settings: Settings, uids: list[str]) -> None:
    """Give each probe EV a charge level so its message carries real numbers."""
    client = _client(settings, "prime")
    try:
        for uid in uids:
            reading = Reading(
                seq=1, ts=datetime.now(UTC), metrics={"soc_pct": 80.0, "range_km": 320.0}
            )
            topic = device_topic(settings.mqtt_topic_prefix, uid, Channel.TELEMETRY)
            client.publish(topic, json_payload(reading), qos=1).wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()


def _wait_for_twins(url: str, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT count(*) AS n FROM device_twins WHERE last_seq IS NOT NULL")
            if (found := row.fetchone()) and found["n"] >= count:
                return
            time.sleep(0.1)
    raise RuntimeError("ingest did not store the priming readings in time")


def _warm_up_notify(url: str, watcher: Watcher, uid: str) -> None:
    """One moment through notify before measuring: it is running and its caches are warm."""
    result = run_moment_probes(url, watcher, [[uid]], 0, READY_TIMEOUT_S)
    if not result["delivered"]:
        raise RuntimeError("notify did not post the warm-up moment in time")


def _stored_background(url: str) -> int:
    with connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) AS n FROM telemetry t JOIN devices d ON d.id = t.device_id "
            "WHERE d.model_id = 'refrigerator'"
        ).fetchone()
    return int(row["n"]) if row else 0


def _ratio(loaded: dict[str, Any], reference: dict[str, Any], key: str) -> float | None:
    if key not in loaded or not reference.get(key):
        return None
    return round(loaded[key] / reference[key], 2)


# ---------------------------------------------------------------- fan-out alone


def measure_fan_out(
    url: str, settings: Settings, rounds: int, batch_moments: int
) -> dict[str, Any]:
    """Outbox.fan_out timed on its own (no ingest, no broker, no polling): lone moments and
    batches of `batch_moments`, each committed before the pass that fans it out."""
    from notify.main import build_outbox

    outbox = build_outbox(settings, {})
    uids = [f"probe-{i}" for i in range(max(batch_moments, 1))]
    results: dict[str, Any] = {}
    counter = 0
    with connect(url, autocommit=True) as conn, connect(url, autocommit=True) as writer:
        conn.execute("SET synchronous_commit = off")  # as the notify component does
        for label, size, count in (("lone", 1, rounds), ("batch", batch_moments, rounds // 10)):
            if size < 1 or count < 1:
                continue
            times = []
            for _ in range(count):
                with writer.transaction(), writer.cursor() as cur:
                    cur.executemany(
                        """INSERT INTO moments (device_id, kind, severity, occurred_at, facts,
                                                dedup_key)
                           SELECT id, 'ev.charge_complete', 'info', now(), %s, %s
                           FROM devices WHERE uid = %s""",
                        [
                            ('{"soc_pct": 80, "range_km": 320}', f"f{counter + i}", uids[i])
                            for i in range(size)
                        ],
                    )
                counter += size
                started = time.perf_counter()
                done = outbox.fan_out(conn)
                times.append((time.perf_counter() - started) * 1000)
                if done != size:
                    raise RuntimeError(f"fan-out took {done} moments, expected {size}")
            results[label] = {
                "moments_per_pass": size,
                "passes": count,
                "p50_ms": round(statistics.median(sorted(times)), 2),
                "p99_ms": _percentile(sorted(times), 0.99),
            }
    return results


# ---------------------------------------------------------------- the command


def notify(
    rate: Annotated[int, typer.Option(help="Background telemetry, messages per second.")] = 5000,
    fridges: Annotated[int, typer.Option(help="Background devices.")] = 1000,
    probes: Annotated[int, typer.Option(help="Probe EVs measured under load.")] = 200,
    moment_probes: Annotated[
        int, typer.Option(help="Moments written directly (notify stage alone), per phase.")
    ] = 100,
    reference_probes: Annotated[int, typer.Option(help="Probes on the idle pipeline.")] = 50,
    batch_moments: Annotated[
        int, typer.Option(help="Moments per transaction in the batch phase (0: skip it).")
    ] = 50,
    batches: Annotated[int, typer.Option(help="Batches of moments per phase.")] = 4,
    spacing_ms: Annotated[float, typer.Option(help="Time between probes.")] = 50,
    ingest_batch_wait_ms: Annotated[
        int | None, typer.Option(help="Override ingest's batch_max_wait_ms (default: settings).")
    ] = None,
    in_process: Annotated[
        bool,
        typer.Option(help="Run ingest and notify as threads of the benchmark (one GIL)."),
    ] = False,
    ingest_processes: Annotated[
        int, typer.Option(help="Ingest processes, partitioned by device when more than 1.")
    ] = 1,
    fan_out_only: Annotated[
        bool,
        typer.Option(help="Only time Outbox.fan_out (lone moments and batches), no pipeline."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
) -> None:
    """Latency from a published event to the post in the in-app feed, idle and under load."""
    base = load_settings()
    configure_logging(base.log_level, base.log_format)
    load_before = round(os.getloadavg()[0], 2)
    with running_services(base, migrate=False) as live:
        assert live.database_url is not None
        with scratch_database(live.database_url, "notify") as url:
            if fan_out_only:
                provision(url, fridges, max(batch_moments, 1))
                fan_out = measure_fan_out(url, live, 3 * moment_probes, batch_moments)
                report = {
                    "benchmark": "notify fan-out",
                    **fan_out,
                    "cpu_count": os.cpu_count(),
                    "load_avg_1m_before": load_before,
                    "load_avg_1m_after": round(os.getloadavg()[0], 2),
                }
                typer.echo(json.dumps(report, indent=None if as_json else 2))
                return
            prefix = f"kzbench{secrets.token_hex(3)}"
            ingest = live.ingest.model_copy(update={"client_id": f"ingest-{prefix}"})
            if ingest_batch_wait_ms is not None:
                ingest = ingest.model_copy(update={"batch_max_wait_ms": ingest_batch_wait_ms})
            settings = live.model_copy(
                update={"database_url": url, "mqtt_topic_prefix": prefix, "ingest": ingest}
            )
            uids = [f"probe-{i}" for i in range(probes + reference_probes)]
            first = len(uids)
            direct = [f"probe-{i}" for i in range(first, first + 2 * moment_probes + 1)]
            first += len(direct)
            batched = [f"probe-{i}" for i in range(first, first + 2 * batch_moments * batches)]
            half = batch_moments * batches
            provision(url, fridges, first + len(batched))
            # Every process is forked before any thread of this one starts.
            components = Components(settings, in_process, ingest_processes)
            background = Background(settings, fridges, rate)
            watcher = Watcher(url)
            try:
                background.fork()
                components.start()
                _prime_evs(settings, uids)
                _wait_for_twins(url, len(uids), READY_TIMEOUT_S)
                watcher.thread.start()
                _warm_up_notify(url, watcher, direct.pop())
                spacing = spacing_ms / 1000
                reference = run_probes(settings, watcher, uids[:reference_probes], spacing, 10)
                lone = [[uid] for uid in direct[:moment_probes]]
                stage_idle = run_moment_probes(url, watcher, lone, spacing, 10)
                batch_idle = run_moment_probes(
                    url, watcher, _groups(batched[:half], batch_moments), BATCH_SPACING_S, 10
                )
                background.start()
                if rate:
                    time.sleep(2.0)  # reach the steady rate before measuring
                loaded = run_probes(settings, watcher, uids[reference_probes:], spacing, 30)
                lone = [[uid] for uid in direct[moment_probes:]]
                stage_loaded = run_moment_probes(url, watcher, lone, spacing, 30)
                batch_loaded = run_moment_probes(
                    url, watcher, _groups(batched[half:], batch_moments), BATCH_SPACING_S, 30
                )
                load_during = round(os.getloadavg()[0], 2)
                background.stop()
            finally:
                watcher.stop.set()
                background.stop()
                components.stop()
                watcher.thread.join(5)
            stored = _stored_background(url)
    achieved = background.published / background.elapsed_s if background.elapsed_s else 0.0
    result = {
        "benchmark": "notify",
        **loaded,
        "reference_idle": reference,
        "notify_stage_idle": stage_idle,
        "notify_stage_loaded": stage_loaded,
        "notify_stage_batch_idle": batch_idle,
        "notify_stage_batch_loaded": batch_loaded,
        "p50_ratio_loaded_vs_idle": _ratio(loaded, reference, "p50_ms"),
        "p99_ratio_loaded_vs_idle": _ratio(loaded, reference, "p99_ms"),
        "background_target_msgs_per_s": rate,
        "background_published_msgs_per_s": round(achieved),
        "background_published": background.published,
        "background_stored": stored,
        "components": "threads of one process" if in_process else "one process each",
        "ingest_processes": 1 if in_process else ingest_processes,
        "ingest_batch_max_wait_ms": settings.ingest.batch_max_wait_ms,
        "watcher_poll_period_ms": watcher.poll_period_ms(),
        "cpu_count": os.cpu_count(),
        "load_avg_1m_before": load_before,
        "load_avg_1m_loaded": load_during,
    }
    typer.echo(json.dumps(result, indent=None if as_json else 2))
