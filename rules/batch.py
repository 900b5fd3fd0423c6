"""A stored batch as rule inputs: per device in device-time order, as objects and as columns.

The per-device engine takes `Input` objects one at a time (`for_device`); the columnar path
takes NumPy columns over all inputs of the batch (`ts`, `fresh`, `column`). Both see the same
order: by device, then device time, then sequence number (readings before events on a tie).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ingest.records import AcceptedEvent, AcceptedReading, StoredBatch
from rules.conditions import Input
from rules.vector import BOOL, FLOAT, Bools, Floats, encode_value, needs_raw

_ABSENT = object()


@dataclass(frozen=True, slots=True)
class MetricColumn:
    """One metric over every input of a batch (see `rules.vector.encode_value`).

    `raw` maps input positions to values whose kind cannot be rebuilt from the number.
    """

    present: Bools
    kinds: NDArray[np.int8]
    numbers: Floats
    raw: dict[int, Any]


class BatchInputs:
    """Readings and events of a batch, sorted by (device, device time, seq)."""

    def __init__(self, batch: StoredBatch) -> None:
        sources: list[AcceptedReading | AcceptedEvent] = [*batch.readings, *batch.events]
        device = np.fromiter((s.device_id for s in sources), np.int64, len(sources))
        ts = np.fromiter((s.ts.timestamp() for s in sources), np.float64, len(sources))
        seq = np.fromiter((s.seq for s in sources), np.int64, len(sources))
        order = np.lexsort((seq, ts, device))  # stable: readings before events on a tie
        self._sources = [sources[i] for i in order]
        self.ts: Floats = ts[order]
        self.fresh: Bools = np.ones(len(order), dtype=bool)  # readings and events are data
        device_ids, self.starts, self.counts = np.unique(
            device[order], return_index=True, return_counts=True
        )
        self.device_array = device_ids
        self.device_ids: list[int] = device_ids.tolist()
        self._metrics: list[dict[str, Any]] = [
            s.metrics if isinstance(s, AcceptedReading) else {} for s in self._sources
        ]
        self._columns: dict[str, MetricColumn] = {}

    def __len__(self) -> int:
        return len(self._sources)

    def for_device(self, position: int) -> list[Input]:
        """The inputs of the device at `position` in `device_ids`, in order, as objects."""
        start = int(self.starts[position])
        stop = start + int(self.counts[position])
        return [
            _as_input(s, float(t))
            for s, t in zip(self._sources[start:stop], self.ts[start:stop], strict=True)
        ]

    def column(self, metric: str) -> MetricColumn:
        """One metric over every input (computed once per batch)."""
        column = self._columns.get(metric)
        if column is None:
            column = self._columns[metric] = _encode(
                [m.get(metric, _ABSENT) for m in self._metrics]
            )
        return column


def _as_input(source: AcceptedReading | AcceptedEvent, ts: float) -> Input:
    if isinstance(source, AcceptedReading):
        return Input("reading", ts, source.metrics)
    return Input("event", ts, {}, source.event, source.data)


def _encode(values: Sequence[Any]) -> MetricColumn:
    count = len(values)
    types = set(map(type, values))
    if types == {float} or types == {bool}:  # the common case: the metric in every reading
        return MetricColumn(
            np.ones(count, dtype=bool),
            np.full(count, FLOAT if float in types else BOOL, dtype=np.int8),
            np.asarray(values, dtype=np.float64),
            {},
        )
    present = np.fromiter((v is not _ABSENT for v in values), bool, count)
    kinds = np.zeros(count, dtype=np.int8)
    numbers = np.full(count, np.nan)
    raw: dict[int, Any] = {}
    for i in np.flatnonzero(present).tolist():
        kind, number = encode_value(values[i])
        kinds[i], numbers[i] = kind, number
        if needs_raw(kind):
            raw[i] = values[i]
    return MetricColumn(present, kinds, numbers, raw)
