"""`kizuna bench notify`: telemetry published → post visible in the owner's feed, under load.

A scratch database gets the product models, the built-in rule packs, background fridges and
probe EVs. Ingest (with its rules step) and the notify component run in this process as
`kizuna serve` runs them. Each probe EV publishes a `charge_complete` event; a reader polls
the feed and records when the post becomes visible. The probes run twice: on an idle
pipeline (the reference) and under the background telemetry rate.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import statistics
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import typer
from paho.mqtt.enums import CallbackAPIVersion

from app.services import running_services
from app.settings import Settings, load_settings
from devices.catalog_sync import sync_product_models
from devices.protocol import Channel, DeviceEvent, Reading, device_topic, json_payload
from rules.service import install_builtin_packs
from store.db import connect, url_with_database
from store.migrate import upgrade

FEED_POLL_S = 0.002


@contextlib.contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """A migrated database of this run's own, dropped afterwards."""
    name = f"kizuna_bench_notify_{secrets.token_hex(4)}"
    with connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = url_with_database(admin_url, name)
    try:
        upgrade(url)
        yield url
    finally:
        with connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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


class Background:
    """Publishes normal fridge readings (no rule fires) at a target rate, and counts them."""

    def __init__(self, settings: Settings, fridges: int, rate: int) -> None:
        self.settings, self.fridges, self.rate = settings, fridges, rate
        self.published = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="bench-background", daemon=True)
        self.elapsed_s = 0.0

    def _run(self) -> None:
        client = _client(self.settings, "background")
        prefix, seq, tick = self.settings.mqtt_topic_prefix, 10, 0.01
        topics = [device_topic(prefix, f"bg-{i}", Channel.TELEMETRY) for i in range(self.fridges)]
        started = time.perf_counter()
        try:
            while not self.stop.is_set():
                due = int((time.perf_counter() - started) * self.rate)
                while self.published < due and not self.stop.is_set():
                    index = self.published % self.fridges
                    if index == 0:
                        seq += 1
                    reading = Reading(
                        seq=seq,
                        ts=datetime.now(UTC),
                        metrics={"fridge_temp_c": 3.5, "door_open": False, "power_w": 90.0},
                    )
                    client.publish(topics[index], json_payload(reading), qos=1)
                    self.published += 1
                time.sleep(tick)
        finally:
            self.elapsed_s = time.perf_counter() - started
            client.loop_stop()
            client.disconnect()


class FeedWatcher:
    """Polls the feed and records when each probe's post first becomes visible."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="bench-feed", daemon=True)

    def _run(self) -> None:
        last = 0
        with connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                rows = conn.execute(
                    "SELECT p.id, d.uid FROM feed_posts p JOIN devices d ON d.id = p.device_id "
                    "WHERE p.id > %s ORDER BY p.id",
                    (last,),
                ).fetchall()
                now = time.time()
                for row in rows:
                    self.seen.setdefault(row["uid"], now)
                    last = max(last, row["id"])
                time.sleep(FEED_POLL_S)


def run_probes(
    settings: Settings, watcher: FeedWatcher, uids: list[str], spacing_s: float, wait_s: float
) -> dict[str, Any]:
    """Publish one charge_complete per probe EV; latency = visible in feed − publish."""
    client = _client(settings, f"probe-{secrets.token_hex(2)}")
    sent: dict[str, float] = {}
    try:
        for uid in uids:
            event = DeviceEvent(seq=2, ts=datetime.now(UTC), event="charge_complete")
            topic = device_topic(settings.mqtt_topic_prefix, uid, Channel.EVENTS)
            sent[uid] = time.time()
            client.publish(topic, json_payload(event), qos=1)
            time.sleep(spacing_s)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and not set(sent) <= set(watcher.seen):
            time.sleep(0.05)
    finally:
        client.loop_stop()
        client.disconnect()
    latencies = sorted((watcher.seen[u] - sent[u]) * 1000 for u in sent if u in watcher.seen)
    return {**_summary(latencies, len(sent)), "stages_p50_ms": _stages(watcher.url, sent)}


def _stages(url: str, sent: dict[str, float]) -> dict[str, float | None]:
    """Where the time goes: publish → ingest receives → moment committed → post written."""
    with connect(url, autocommit=True) as conn:
        rows = conn.execute(
            """SELECT d.uid, extract(epoch FROM e.received_at) AS received,
                      extract(epoch FROM m.created_at) AS moment,
                      extract(epoch FROM p.created_at) AS post
               FROM devices d
               JOIN device_events e ON e.device_id = d.id AND e.event = 'charge_complete'
               JOIN moments m ON m.device_id = d.id
               JOIN feed_posts p ON p.moment_id = m.id
               WHERE d.uid = ANY(%s)""",
            (list(sent),),
        ).fetchall()

    def median(values: list[float]) -> float | None:
        return round(statistics.median(values) * 1000, 1) if values else None

    return {
        "publish_to_ingest_received": median([float(r["received"]) - sent[r["uid"]] for r in rows]),
        "received_to_moment_tx": median([float(r["moment"] - r["received"]) for r in rows]),
        "moment_tx_to_feed_post_tx": median([float(r["post"] - r["moment"]) for r in rows]),
    }


def run_moment_probes(
    url: str, watcher: FeedWatcher, uids: list[str], spacing_s: float, wait_s: float
) -> dict[str, Any]:
    """The notify stage alone: a moment committed as rules would → post visible in the feed."""
    committed: dict[str, float] = {}
    with connect(url, autocommit=True) as conn:
        for uid in uids:
            conn.execute(
                """INSERT INTO moments (device_id, kind, severity, occurred_at, facts, dedup_key)
                   SELECT id, 'ev.charge_complete', 'info', now(), %s, %s
                   FROM devices WHERE uid = %s""",
                ('{"soc_pct": 80, "range_km": 320}', f"bench-{uid}", uid),
            )
            committed[uid] = time.time()  # after the commit returned: conservative
            time.sleep(spacing_s)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and not set(committed) <= set(watcher.seen):
        time.sleep(0.05)
    latencies = sorted(
        (watcher.seen[u] - committed[u]) * 1000 for u in committed if u in watcher.seen
    )
    return _summary(latencies, len(committed))


def _summary(latencies: list[float], expected: int) -> dict[str, Any]:
    if not latencies:
        return {"expected": expected, "delivered": 0}
    p99_index = min(len(latencies) - 1, max(0, round(0.99 * len(latencies)) - 1))
    return {
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(latencies[p99_index], 1),
        "max_ms": round(latencies[-1], 1),
        "expected": expected,
        "delivered": len(latencies),
    }


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


def _stored_background(url: str) -> int:
    with connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) AS n FROM telemetry t JOIN devices d ON d.id = t.device_id "
            "WHERE d.model_id = 'refrigerator'"
        ).fetchone()
    return int(row["n"]) if row else 0


def notify(
    rate: Annotated[int, typer.Option(help="Background telemetry, messages per second.")] = 5000,
    fridges: Annotated[int, typer.Option(help="Background devices.")] = 1000,
    probes: Annotated[int, typer.Option(help="Probe EVs measured under load.")] = 200,
    moment_probes: Annotated[
        int, typer.Option(help="Moments written directly (notify stage alone), per phase.")
    ] = 100,
    reference_probes: Annotated[int, typer.Option(help="Probes on the idle pipeline.")] = 50,
    spacing_ms: Annotated[float, typer.Option(help="Time between probes.")] = 50,
    ingest_batch_wait_ms: Annotated[
        int | None, typer.Option(help="Override ingest's batch_max_wait_ms (default: settings).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
) -> None:
    """Latency from a published event to the post in the in-app feed, idle and under load."""
    from ingest.main import run as run_ingest
    from notify.main import run as run_notify

    base = load_settings()
    with running_services(base, migrate=False) as live:
        assert live.database_url is not None
        with scratch_database(live.database_url) as url:
            prefix = f"kzbench{secrets.token_hex(3)}"
            ingest = live.ingest.model_copy(update={"client_id": f"ingest-{prefix}"})
            if ingest_batch_wait_ms is not None:
                ingest = ingest.model_copy(update={"batch_max_wait_ms": ingest_batch_wait_ms})
            settings = live.model_copy(
                update={
                    "database_url": url,
                    "mqtt_topic_prefix": prefix,
                    "ingest": ingest,
                }
            )
            provision(url, fridges, probes + reference_probes + 2 * moment_probes)
            stop = threading.Event()
            components = [
                threading.Thread(target=run, args=(settings, stop), daemon=True)
                for run in (run_ingest, run_notify)
            ]
            for thread in components:
                thread.start()
            watcher = FeedWatcher(url)
            try:
                time.sleep(1.5)  # ingest subscribes
                uids = [f"probe-{i}" for i in range(probes + reference_probes)]
                direct = [f"probe-{i}" for i in range(len(uids), len(uids) + 2 * moment_probes)]
                _prime_evs(settings, uids)
                _wait_for_twins(url, len(uids), 60)
                watcher.thread.start()
                spacing = spacing_ms / 1000
                reference = run_probes(settings, watcher, uids[:reference_probes], spacing, 10)
                stage_idle = run_moment_probes(url, watcher, direct[:moment_probes], spacing, 10)
                background = Background(settings, fridges, rate)
                if rate:
                    background.thread.start()
                    time.sleep(2.0)  # reach the steady rate before measuring
                loaded = run_probes(settings, watcher, uids[reference_probes:], spacing, 30)
                stage_loaded = run_moment_probes(url, watcher, direct[moment_probes:], spacing, 30)
                background.stop.set()
                if rate:
                    background.thread.join(10)
            finally:
                watcher.stop.set()
                stop.set()
                for thread in components:
                    thread.join(15)
            stored = _stored_background(url)
    achieved = background.published / background.elapsed_s if background.elapsed_s else 0.0
    result = {
        "benchmark": "notify",
        **loaded,
        "background_target_msgs_per_s": rate,
        "background_published_msgs_per_s": round(achieved),
        "background_published": background.published,
        "background_stored": stored,
        "reference_idle": reference,
        "notify_stage_loaded": stage_loaded,
        "notify_stage_idle": stage_idle,
        "p50_ratio_loaded_vs_idle": _ratio(loaded, reference, "p50_ms"),
        "p99_ratio_loaded_vs_idle": _ratio(loaded, reference, "p99_ms"),
        "ingest_batch_max_wait_ms": settings.ingest.batch_max_wait_ms,
        "feed_poll_interval_ms": FEED_POLL_S * 1000,
        "cpu_count": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    typer.echo(json.dumps(result, indent=None if as_json else 2))


def _ratio(loaded: dict[str, Any], reference: dict[str, Any], key: str) -> float | None:
    if key not in loaded or not reference.get(key):
        return None
    return round(loaded[key] / reference[key], 2)
