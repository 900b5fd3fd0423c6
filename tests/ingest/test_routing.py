"""Partitions and lanes split devices independently: no process leaves a lane idle."""

from __future__ import annotations

import pytest

from ingest.routing import lane_of, partition_of


@pytest.mark.parametrize(("partitions", "lanes"), [(1, 2), (2, 2), (4, 2), (3, 3), (2, 4)])
def test_every_partition_spreads_its_devices_over_every_lane(partitions: int, lanes: int) -> None:
    uids = [f"dev-{i}" for i in range(2000)]
    for partition in range(partitions):
        mine = [uid for uid in uids if partition_of(uid, partitions) == partition]
        counts = [0] * lanes
        for uid in mine:
            counts[lane_of(uid, lanes, partitions)] += 1
        assert min(counts) > 0.7 * len(mine) / lanes, counts  # roughly even, none idle


def test_a_device_always_maps_to_the_same_place() -> None:
    assert partition_of("washer-1", 4) == partition_of("washer-1", 4)
    assert lane_of("washer-1", 2, 4) == lane_of("washer-1", 2, 4)
