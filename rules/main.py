"""The `scheduler` component: fires due rule timers without new data, sends the commands rules
asked for, and expires unanswered device commands."""

from __future__ import annotations

import threading

import psycopg
import structlog
from psycopg import Connection
from psycopg.rows import DictRow
from psycopg_pool import ConnectionPool

from app.broker_url import MqttEndpoint
from app.settings import Settings
from devices.commands import expire_commands
from devices.downlink import Downlink, MqttDownlink
from devices.errors import BrokerError
from rules.commands import dispatch_intents
from rules.runner import Clock, RuleRunner, utc_now
from store.db import open_pool

log = structlog.get_logger(__name__)

BATCH_LIMIT = 500


def sweep(pool: ConnectionPool[Connection[DictRow]], runner: RuleRunner) -> int:
    """Fire every due timer, one transaction per BATCH_LIMIT (SKIP LOCKED); how many fired."""
    fired = 0
    while True:
        with pool.connection() as conn, conn.transaction():
            stats = runner.fire_due(conn, BATCH_LIMIT)
        fired += stats.evaluations
        if not stats.claim_limit_reached:
            return fired


def housekeeping(
    pool: ConnectionPool[Connection[DictRow]], downlink: Downlink, prefix: str, clock: Clock
) -> None:
    """Send pending command intents, then expire device commands nobody answered."""
    with pool.connection() as conn:
        dispatch_intents(conn, downlink, prefix, clock())
    with pool.connection() as conn, conn.transaction():
        expire_commands(conn, clock())


def _open_downlink(settings: Settings) -> MqttDownlink:
    assert settings.mqtt_url is not None
    return MqttDownlink(MqttEndpoint.from_url(settings.mqtt_url)).open()


def run(settings: Settings, stop: threading.Event, clock: Clock = utc_now) -> None:
    """Sweep timers and commands every `rules.scheduler_interval_s` until `stop` is set."""
    if settings.database_url is None or settings.mqtt_url is None:
        raise RuntimeError("the scheduler needs KIZUNA_DATABASE_URL and KIZUNA_MQTT_URL")
    pool = open_pool(settings.database_url, settings.store, "scheduler")
    downlink = _open_downlink(settings)
    runner = RuleRunner(clock)
    log.info("scheduler.started", interval_s=settings.rules.scheduler_interval_s)
    try:
        while not stop.is_set():
            try:
                fired = sweep(pool, runner)
                housekeeping(pool, downlink, settings.mqtt_topic_prefix, clock)
            except (psycopg.OperationalError, BrokerError) as exc:  # keep trying, lose nothing
                log.warning("scheduler.transient_error", error_type=type(exc).__name__)
                fired = 0
            if fired:
                log.info("scheduler.fired", timers=fired)
            stop.wait(settings.rules.scheduler_interval_s)
    finally:
        downlink.close()
        pool.close()
        log.info("scheduler.stopped")
