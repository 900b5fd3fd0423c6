"""The `scheduler` component: fires durable rule timers that are due, without new data."""

from __future__ import annotations

import threading

import psycopg
import structlog
from psycopg import Connection
from psycopg.rows import DictRow
from psycopg_pool import ConnectionPool

from app.settings import Settings
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
        if stats.evaluations < BATCH_LIMIT:
            return fired


def run(settings: Settings, stop: threading.Event, clock: Clock = utc_now) -> None:
    """Sweep due timers every `rules.scheduler_interval_s` until `stop` is set."""
    if settings.database_url is None:
        raise RuntimeError("the scheduler needs KIZUNA_DATABASE_URL")
    pool = open_pool(settings.database_url, settings.store, "scheduler")
    runner = RuleRunner(clock)
    log.info("scheduler.started", interval_s=settings.rules.scheduler_interval_s)
    try:
        while not stop.is_set():
            try:
                fired = sweep(pool, runner)
            except psycopg.OperationalError as exc:  # database away: keep trying, lose nothing
                log.warning("scheduler.database_error", error=str(exc))
                fired = 0
            if fired:
                log.info("scheduler.fired", timers=fired)
            stop.wait(settings.rules.scheduler_interval_s)
    finally:
        pool.close()
        log.info("scheduler.stopped")
