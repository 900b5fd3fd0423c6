"""The ingest loop: collect a batch, store it in one transaction, then acknowledge it.

A message is acknowledged only after the transaction holding its effects committed. A
database that is down is retried with backoff (nothing acked, the broker keeps the rest);
a batch the database refuses is split until the one bad message is found and dead-lettered.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
import structlog

from ingest import metrics, repo
from ingest.config import IngestConfig
from ingest.decode import decode
from ingest.directory import DeviceDirectory
from ingest.models import BatchResult, DeadLetter, DeadLetterReason, Incoming, Parsed
from ingest.records import BatchStep
from ingest.routing import lane_of
from ingest.service import plan_batch, write_batch
from store.config import StoreConfig
from store.db import connect
from store.telemetry import ensure_partitions

log = structlog.get_logger(__name__)

TRANSIENT_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError)
Decoded = Parsed | DeadLetter


@dataclass(eq=False)
class WriterLane:
    """One database writer: its own inbox, connection and transactions.

    Devices are split over lanes by a hash of their uid, so a device's messages always go
    through the same lane, in order, and two lanes never lock the same twin.
    """

    index: int
    inbox: queue.SimpleQueue[Decoded] = field(default_factory=queue.SimpleQueue)
    conn: repo.Conn | None = None


class IngestWorker:
    """Turns received messages into committed batches; `submit` is the broker's sink.

    With several writer lanes, one lane's Python work overlaps another's database round
    trips (the GIL is released while psycopg waits), and the database gets one session per
    lane to work with.
    """

    def __init__(
        self,
        database_url: str,
        prefix: str,
        config: IngestConfig,
        store_config: StoreConfig,
        steps: Sequence[BatchStep] = (),
        after_commit: Callable[[BatchResult], None] | None = None,
    ) -> None:
        self._database_url = database_url
        self._prefix = prefix
        self._config = config
        self._store_config = store_config
        self._steps = tuple(steps)
        self._after_commit = after_commit
        self._lanes = [WriterLane(i) for i in range(config.writer_lanes)]
        self._totals_lock = threading.Lock()
        self._directory = DeviceDirectory(
            config.device_cache_ttl_s, config.unknown_device_cache_ttl_s
        )
        self._next_partition_check = 0.0
        self.totals = BatchResult()
        self.database_ok = False
        self.last_commit_at: datetime | None = None

    def submit(self, message: Incoming) -> None:
        """Decode one received message and queue it (called from the MQTT network thread).

        Decoding here overlaps it with the worker's database waits; it never raises, because
        an exception would stop the network thread.
        """
        try:
            decoded = decode(message, self._prefix, self._config)
        except Exception as exc:  # a bug in decoding must not stop receiving
            log.error("ingest.decode_failed", error=type(exc).__name__)
            decoded = DeadLetter(message, DeadLetterReason.PROCESSING_FAILED, "decoding failed")
        self._lane_of(decoded).inbox.put(decoded)

    def _lane_of(self, decoded: Decoded) -> WriterLane:
        lanes = self._lanes
        if len(lanes) == 1:
            return lanes[0]
        uid = decoded.uid if isinstance(decoded, Parsed) else decoded.device_uid
        if uid is None:
            return lanes[0]
        return lanes[lane_of(uid, len(lanes), self._config.partition_count)]

    @property
    def pending(self) -> int:
        """Messages received and not yet taken into a batch."""
        return sum(lane.inbox.qsize() for lane in self._lanes)

    def run(self, ack: Callable[[Sequence[Incoming]], None], stop: threading.Event) -> None:
        """Work until `stop` is set; `ack` acknowledges committed messages."""
        others = [
            threading.Thread(
                target=self._run_lane, args=(lane, ack, stop), name=f"ingest-lane-{lane.index}"
            )
            for lane in self._lanes[1:]
        ]
        for thread in others:
            thread.start()
        try:
            self._run_lane(self._lanes[0], ack, stop)
        finally:
            stop.set()  # one lane ending ends them all
            for thread in others:
                thread.join()
            self.close()

    def _run_lane(
        self, lane: WriterLane, ack: Callable[[Sequence[Incoming]], None], stop: threading.Event
    ) -> None:
        while not stop.is_set():
            if lane.index == 0:
                self._maintain_partitions(lane)
            batch = self._collect(lane, stop)
            metrics.PENDING.set(self.pending + len(batch))
            if batch and self._store(lane, batch, stop):
                ack([item.incoming for item in batch])

    def close(self) -> None:
        """Close the database connections."""
        for lane in self._lanes:
            if lane.conn is not None:
                lane.conn.close()
                lane.conn = None

    def _collect(self, lane: WriterLane, stop: threading.Event) -> list[Decoded]:
        inbox = lane.inbox
        try:
            batch = [inbox.get(timeout=0.2)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self._config.batch_max_wait_ms / 1000
        limit = self._config.batch_max_messages
        while len(batch) < limit and not stop.is_set():
            remaining = deadline - time.monotonic()
            try:
                batch.append(inbox.get(timeout=remaining) if remaining > 0 else inbox.get_nowait())
            except queue.Empty:
                break
        return batch

    def _store(self, lane: WriterLane, decoded: list[Decoded], stop: threading.Event) -> bool:
        """Commit `decoded`, retrying transient errors; False only when stopped first."""
        delay = 0.1
        while not stop.is_set():
            try:
                self._commit(lane, decoded)
                return True
            except TRANSIENT_ERRORS as exc:
                self._database_failed(lane, exc)
                metrics.RETRIES.inc()
                stop.wait(delay)
                delay = min(delay * 2, self._config.retry_max_backoff_s)
            except Exception as exc:  # refused by the database or a step: find the message
                if len(decoded) > 1:
                    half = len(decoded) // 2
                    return self._store(lane, decoded[:half], stop) and self._store(
                        lane, decoded[half:], stop
                    )
                if isinstance(decoded[0], DeadLetter):
                    # Even its dead-letter row failed: never ack unrecorded, keep retrying.
                    log.error("ingest.dead_letter_failed", error=type(exc).__name__)
                    stop.wait(self._config.retry_max_backoff_s)
                    continue
                decoded = [_refused(decoded[0], exc)]
        return False

    def _commit(self, lane: WriterLane, decoded: list[Decoded]) -> None:
        conn = self._connection(lane)
        uids = [d.uid for d in decoded if isinstance(d, Parsed)]
        devices = self._directory.resolve(conn, uids)
        plan = plan_batch(decoded, devices, self._config)
        started = time.perf_counter()
        try:
            with conn.transaction():
                result = write_batch(conn, plan, self._steps, self._config)
        except psycopg.errors.UniqueViolation:
            # The fast path met a row it did not expect (a twin edited by hand?): redo the
            # batch with every reading through the dedup path.
            log.warning("ingest.fast_path_conflict")
            with conn.transaction():
                result = write_batch(conn, plan, self._steps, self._config, fast=False)
        elapsed = time.perf_counter() - started
        now = datetime.now(UTC)
        oldest = min(d.incoming.received_at for d in decoded)
        metrics.record_batch(result, elapsed, (now - oldest).total_seconds())
        with self._totals_lock:
            self.totals.add(result)
            self.last_commit_at = now
        if self._after_commit is not None:
            self._after_commit(result)

    def _connection(self, lane: WriterLane) -> repo.Conn:
        if lane.conn is None or lane.conn.closed:
            lane.conn = connect(self._database_url, self._store_config, autocommit=True)
            self.database_ok = True
            metrics.DATABASE_UP.set(1)
            log.info("ingest.database_connected", lane=lane.index)
        conn: repo.Conn = lane.conn
        return conn

    def _database_failed(self, lane: WriterLane, exc: Exception) -> None:
        if self.database_ok:
            log.warning("ingest.database_unavailable", error=type(exc).__name__)
        self.database_ok = False
        metrics.DATABASE_UP.set(0)
        if lane.conn is not None and not lane.conn.closed:
            lane.conn.close()
        lane.conn = None

    def _maintain_partitions(self, lane: WriterLane) -> None:
        if time.monotonic() < self._next_partition_check:
            return
        try:
            created = ensure_partitions(
                self._connection(lane),
                self._store_config.partitions_ahead_days,
                self._store_config.partitions_behind_days,
            )
            self._next_partition_check = time.monotonic() + self._config.partition_check_interval_s
            if created:
                log.info("ingest.partitions_created", count=created)
        except psycopg.Error as exc:
            self._database_failed(lane, exc)
            self._next_partition_check = time.monotonic() + 5.0


def _refused(item: Parsed, exc: Exception) -> DeadLetter:
    """The dead letter for a single message the database (or a step) would not take."""
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate or "?"
        reason = DeadLetterReason.DATABASE_REJECTED
        detail = f"{type(exc).__name__} (SQLSTATE {state})"
    else:
        reason = DeadLetterReason.PROCESSING_FAILED
        detail = f"{type(exc).__name__} in a batch step"
    log.error("ingest.message_refused", reason=reason.value, detail=detail, device_uid=item.uid)
    return DeadLetter(item.incoming, reason, detail, item.uid)
