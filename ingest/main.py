"""Composition root of the ingest process: settings → database, broker, worker → run."""

from __future__ import annotations

import importlib
import threading

import structlog
from prometheus_client import start_http_server

from app.settings import Settings
from ingest import health
from ingest.mqtt import BrokerSession
from ingest.records import BatchStep
from ingest.worker import IngestWorker
from store.db import connect
from store.telemetry import ensure_partitions

log = structlog.get_logger(__name__)


def batch_steps() -> list[BatchStep]:
    """The later stages that run inside ingest's transaction (rules), when installed."""
    try:
        rules_step = importlib.import_module("rules.step")
    except ImportError:
        log.warning("ingest.no_rules_step")
        return []
    return [rules_step.make_step()]


def run(settings: Settings, stop: threading.Event) -> None:
    """Run ingest until `stop` is set."""
    if not settings.database_url or not settings.mqtt_url:
        raise ValueError("ingest needs database_url and mqtt_url (the demo fills them in)")
    config = settings.ingest
    health.publish(None)  # unknown until this worker is connected and subscribed
    with connect(settings.database_url, settings.store, autocommit=True) as conn:
        ensure_partitions(
            conn, settings.store.partitions_ahead_days, settings.store.partitions_behind_days
        )
    if config.metrics_port is not None:
        start_http_server(config.metrics_port, addr="127.0.0.1")
        log.info("ingest.metrics_listening", port=config.metrics_port)
    worker = IngestWorker(
        settings.database_url,
        settings.mqtt_topic_prefix,
        config,
        settings.store,
        steps=batch_steps(),
    )
    session = BrokerSession(
        settings.mqtt_url,
        settings.mqtt_topic_prefix,
        config,
        worker.submit,
        backlog=lambda: worker.pending,
    )
    session.start()
    reporter = threading.Thread(
        target=_report_health, args=(worker, session, stop), name="ingest-health", daemon=True
    )
    reporter.start()
    log.info("ingest.started", client_id=config.client_id, protocol=session.protocol)
    try:
        worker.run(session.ack, stop)
    finally:
        session.stop()
        worker.close()
        log.info("ingest.stopped", **_totals(worker))


def _report_health(worker: IngestWorker, session: BrokerSession, stop: threading.Event) -> None:
    while True:
        health.publish(
            health.IngestHealth(
                worker.database_ok,
                session.connected,
                session.protocol,
                worker.pending,
                worker.last_commit_at,
            )
        )
        if stop.wait(1.0):
            return


def _totals(worker: IngestWorker) -> dict[str, int]:
    totals = worker.totals
    return {
        "messages": totals.messages,
        "stored": totals.readings_stored,
        "duplicates": totals.duplicates,
        "dead_letters": sum(totals.dead_letters.values()),
    }
