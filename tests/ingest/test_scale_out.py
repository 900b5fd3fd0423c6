"""Two ingest workers: MQTT 5 shared subscriptions, and partitions with per-device affinity."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from ingest.records import StoredBatch
from tests.ingest.conftest import ago, register_devices, wait_until

pytestmark = pytest.mark.mqtt5  # the device-side test clients speak MQTT 5

PER_DEVICE = 100


def _publish(make_device, uids: list[str]) -> None:
    devices = [make_device(uid) for uid in uids]
    for seq in range(1, PER_DEVICE + 1):
        for device in devices:
            device.reading(seq, {"power_w": float(seq)}, ago(PER_DEVICE - seq + 1))


def _recorder(into: list[tuple[int, int]]):
    def step(conn: Any, batch: StoredBatch) -> None:
        into.extend((r.device_id, r.seq) for r in batch.readings)

    return step


def test_shared_subscription_spreads_load_and_stores_each_reading_once(
    settings, db, start_ingest, make_device
):
    devices = register_devices(settings.database_url, "washing_machine", 4)
    seen: list[list[tuple[int, int]]] = [[], []]
    workers = [
        start_ingest(
            steps=(_recorder(seen[i]),),
            shared_group="kizuna-ingest",
            client_id=f"{settings.ingest.client_id}-{i}",
            batch_max_messages=20,
        )
        for i in range(2)
    ]
    _publish(make_device, list(devices))
    total = PER_DEVICE * len(devices)
    wait_until(lambda: sum(w.worker.totals.readings_stored for w in workers) == total)
    assert all(w.worker.totals.readings_stored > 0 for w in workers), "one worker got nothing"
    assert sorted(seen[0] + seen[1]) == sorted(
        (d, s) for d in devices.values() for s in range(1, PER_DEVICE + 1)
    )
    # Round-robin interleaves a device across workers, yet the twin ends at the newest
    # reading by device time and every transient gap is closed by the late half.
    twins = db.execute("SELECT reported, last_seq FROM device_twins").fetchall()
    assert [t["last_seq"] for t in twins] == [PER_DEVICE] * len(devices)
    assert {t["reported"]["power_w"]["v"] for t in twins} == {float(PER_DEVICE)}
    wait_until(lambda: db.execute("SELECT count(*) AS n FROM ingest_seq_gaps").fetchone()["n"] == 0)


def test_partitions_keep_each_device_on_one_worker_in_order(
    settings, db, start_ingest, make_device
):
    devices = register_devices(settings.database_url, "washing_machine", 6)
    seen: list[list[tuple[int, int]]] = [[], []]
    workers = [
        start_ingest(
            steps=(_recorder(seen[i]),),
            partition_count=2,
            partition_index=i,
            client_id=f"{settings.ingest.client_id}-p{i}",
            batch_max_messages=20,
        )
        for i in range(2)
    ]
    _publish(make_device, list(devices))
    total = PER_DEVICE * len(devices)
    wait_until(lambda: sum(w.worker.totals.readings_stored for w in workers) == total)
    owners: dict[int, set[int]] = defaultdict(set)
    for index, records in enumerate(seen):
        per_device: dict[int, list[int]] = defaultdict(list)
        for device_id, seq in records:
            owners[device_id].add(index)
            per_device[device_id].append(seq)
        for seqs in per_device.values():
            assert seqs == sorted(seqs), "a device's readings reached the rules out of order"
    assert all(len(o) == 1 for o in owners.values()), "a device was split across workers"
    assert {i for o in owners.values() for i in o} == {0, 1}
    assert sum(w.worker.totals.duplicates for w in workers) == 0
    assert db.execute("SELECT count(*) AS n FROM ingest_seq_gaps").fetchone()["n"] == 0
