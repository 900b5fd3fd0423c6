"""Prometheus metrics of ingest (one set per process, on the default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from ingest.models import BatchResult

RECEIVED = Counter("kizuna_ingest_received_total", "MQTT messages received")
STORED = Counter("kizuna_ingest_readings_stored_total", "Telemetry readings stored")
EVENTS = Counter("kizuna_ingest_events_stored_total", "Device events stored")
DUPLICATES = Counter("kizuna_ingest_duplicates_total", "Readings/events already stored, dropped")
DEAD_LETTERS = Counter(
    "kizuna_ingest_dead_letters_total", "Messages dead-lettered, by reason", ["reason"]
)
QUARANTINED = Counter(
    "kizuna_ingest_quarantined_total", "Readings quarantined for clock skew, by reason", ["reason"]
)
GAPS = Counter("kizuna_ingest_seq_gaps_total", "Sequence gaps opened")
MISSING = Counter("kizuna_ingest_seq_missing_total", "Sequence numbers missing when gaps opened")
RETRIES = Counter("kizuna_ingest_batch_retries_total", "Batches retried after a database error")
BATCH_SIZE = Histogram(
    "kizuna_ingest_batch_messages",
    "Messages per committed batch",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000),
)
COMMIT_SECONDS = Histogram(
    "kizuna_ingest_commit_seconds",
    "Time to write and commit one batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LAG_SECONDS = Gauge(
    "kizuna_ingest_lag_seconds", "Receive → commit time of the oldest message of the last batch"
)
PENDING = Gauge("kizuna_ingest_pending_messages", "Messages received and not yet acknowledged")
DATABASE_UP = Gauge("kizuna_ingest_database_up", "1 when the last database call succeeded")
BROKER_UP = Gauge("kizuna_ingest_broker_connected", "1 while connected to the MQTT broker")


def record_batch(result: BatchResult, seconds: float, lag_s: float) -> None:
    """Count what one committed batch did."""
    STORED.inc(result.readings_stored)
    EVENTS.inc(result.events_stored)
    DUPLICATES.inc(result.duplicates)
    GAPS.inc(result.gaps_opened)
    MISSING.inc(result.seqs_missing)
    for reason, count in result.dead_letters.items():
        DEAD_LETTERS.labels(reason).inc(count)
    for reason, count in result.quarantined.items():
        QUARANTINED.labels(reason).inc(count)
    BATCH_SIZE.observe(result.messages)
    COMMIT_SECONDS.observe(seconds)
    LAG_SECONDS.set(lag_s)
