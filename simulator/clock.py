"""Simulated time: device clocks running at a multiple of real time, never ahead of now."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


def utc_now() -> datetime:
    """The real current time, aware, in UTC."""
    return datetime.now(UTC)


def floor_to(moment: datetime, step: timedelta) -> datetime:
    """`moment` rounded down to a whole number of `step` since the epoch."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((moment - epoch) // step) * step


class SimClock:
    """Device time = start + elapsed real time × speed; None speed means as fast as possible.

    Device time never passes the real now, because ingest quarantines readings from the
    future: an accelerated run that started in the past catches up, then follows real time.
    """

    def __init__(
        self,
        start: datetime,
        speed: float | None,
        *,
        real: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utc_now,
        max_chunk: timedelta = timedelta(hours=2),
    ) -> None:
        if speed is not None and speed <= 0:
            raise ValueError("speed must be positive")
        self.start = start
        self.speed = speed
        self._real = real
        self._wall = wall
        self._real0 = real()
        self._max_chunk = max_chunk
        self._last = start

    def target(self) -> datetime:
        """How far devices should have lived by now."""
        if self.speed is None:
            proposed = self._last + self._max_chunk
        else:
            proposed = self.start + timedelta(seconds=(self._real() - self._real0) * self.speed)
        self._last = max(self._last, min(proposed, self._wall()))
        return self._last
