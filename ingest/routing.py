"""Which ingest process and which writer lane handle a device: one stable hash for both.

Partitions split devices between processes (`crc32(uid) % partition_count`); lanes split a
partition's devices between its writers. Lanes use the hash's remaining digits, so with N
partitions and L lanes every process still spreads its devices over all L lanes (taking the
same `% L` would put all of a process's devices in one lane whenever L divides N).
"""

from __future__ import annotations

import zlib


def device_hash(device_uid: str) -> int:
    """A hash of a device uid that is the same in every process and after restarts."""
    return zlib.crc32(device_uid.encode("utf-8", "surrogateescape"))


def partition_of(device_uid: str, partition_count: int) -> int:
    """The ingest partition that stores a device."""
    return device_hash(device_uid) % partition_count


def lane_of(device_uid: str, lanes: int, partition_count: int) -> int:
    """The writer lane of a device within its partition."""
    return device_hash(device_uid) // partition_count % lanes
