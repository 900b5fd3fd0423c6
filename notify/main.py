"""The `notify` component: fan-out (woken by LISTEN), housekeeping and delivery workers."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
import structlog

from app.settings import Settings
from notify.channels import ChannelRegistry, build_channels
from notify.outbox import Outbox
from notify.weekly import post_weekly_updates
from store.db import connect
from store.encryption import FieldCipher

log = structlog.get_logger(__name__)

WAKE_CHANNEL = "kizuna_notify"
DIGEST_EVERY_S = 60.0
RECONNECT_DELAY_S = 1.0


def build_outbox(settings: Settings, channels: ChannelRegistry | None = None) -> Outbox:
    """An Outbox wired from settings; `channels` replaces the real channels (tests, demos)."""
    cipher = FieldCipher.from_encoded(
        settings.data_encryption_key.get_secret_value(),
        [k.get_secret_value() for k in settings.data_encryption_old_keys],
    )
    return Outbox(settings.notify, cipher, channels or build_channels(settings))


def _database_url(settings: Settings) -> str:
    if not settings.database_url:
        raise RuntimeError("notify needs KIZUNA_DATABASE_URL (started by `kizuna serve`)")
    return settings.database_url


def fan_out_loop(settings: Settings, outbox: Outbox, stop: threading.Event) -> None:
    """Turn new moments into posts and outbox rows as soon as their transaction commits.

    The trigger on moments sends a notification at commit; LISTEN returns on it. Polling
    every `poll_interval_s` remains as the safety net: a wake-up lost to a dropped connection
    costs at most one interval, never a moment (the inbox row is durable).
    """
    url, wait_s = _database_url(settings), settings.notify.poll_interval_s
    while not stop.is_set():
        try:
            with connect(url, settings.store, autocommit=True) as conn:
                conn.execute(f"LISTEN {WAKE_CHANNEL}")
                # Fan-out commits need not wait for the WAL flush: they have no effect outside
                # their transaction, and after a crash the moments are back in the inbox.
                conn.execute("SET synchronous_commit = off")
                while not stop.is_set():
                    while outbox.fan_out(conn):
                        pass
                    # Returns on the first wake-up, or after the poll interval as a safety net.
                    # Notifications that arrived during the fan-out are kept by psycopg and
                    # return at once here: one extra, cheap pass rather than a missed moment.
                    for _ in conn.notifies(timeout=wait_s, stop_after=1):
                        pass
        except psycopg.Error as exc:
            log.warning("notify.fan_out_db_error", error=type(exc).__name__)
            stop.wait(RECONNECT_DELAY_S)


def housekeeping_loop(settings: Settings, outbox: Outbox, stop: threading.Event) -> None:
    """Daily friend updates and weekly summaries, on their own connection and thread, so a
    long weekly pass (it reads a week of telemetry) never delays the fan-out of a moment."""
    url = _database_url(settings)
    while not stop.is_set():
        try:
            with connect(url, settings.store, autocommit=True) as conn:
                while not stop.is_set():
                    outbox.send_digests(conn)
                    post_weekly_updates(conn, outbox.cipher, datetime.now(UTC))
                    stop.wait(DIGEST_EVERY_S)
        except psycopg.Error as exc:
            log.warning("notify.housekeeping_db_error", error=type(exc).__name__)
            stop.wait(RECONNECT_DELAY_S)


def delivery_loop(settings: Settings, outbox: Outbox, stop: threading.Event) -> None:
    """Deliver due outbox rows; several of these may run at once, in any number of processes."""
    url, wait_s = _database_url(settings), settings.notify.poll_interval_s
    while not stop.is_set():
        try:
            with connect(url, settings.store, autocommit=True) as conn:
                while not stop.is_set():
                    if not outbox.deliver_due(conn) and outbox.work_ready.wait(wait_s):
                        outbox.work_ready.clear()
        except psycopg.Error as exc:
            log.warning("notify.delivery_db_error", error=type(exc).__name__)
            stop.wait(RECONNECT_DELAY_S)


def start_threads(
    settings: Settings, outbox: Outbox, stop: threading.Event
) -> list[threading.Thread]:
    """Start the fan-out thread, the housekeeping thread and the delivery threads."""
    loops: list[tuple[str, Callable[..., None]]] = [
        ("notify-fan-out", fan_out_loop),
        ("notify-housekeeping", housekeeping_loop),
    ]
    loops += [
        (f"notify-delivery-{i}", delivery_loop) for i in range(settings.notify.delivery_workers)
    ]
    threads = [
        threading.Thread(target=loop, args=(settings, outbox, stop), name=name, daemon=True)
        for name, loop in loops
    ]
    for thread in threads:
        thread.start()
    return threads


def run(settings: Settings, stop: threading.Event) -> None:
    """Run the notify component until `stop` is set."""
    channels = build_channels(settings)
    outbox = build_outbox(settings, channels)
    log.info("notify.started", channels=sorted(channels))
    threads = start_threads(settings, outbox, stop)
    try:
        stop.wait()
    finally:
        for thread in threads:
            thread.join(timeout=10)
        for channel in channels.values():
            close = getattr(channel, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()
        log.info("notify.stopped")
