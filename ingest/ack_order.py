"""PUBACKs in the order the PUBLISH packets arrived, whatever order batches commit in.

MQTT (3.1.1 and 5, section 4.6) requires a client to acknowledge QoS 1 messages in the
order it received them, and some brokers (rumqttd) drop a client that does not. Ingest's
writer lanes commit devices independently, so a later message may commit first: its ack
waits until every earlier message is committed too.

Acks are also tied to the connection a message arrived on. After a reconnect the broker
resends what was not acknowledged, and packet ids of the old connection mean nothing (or
something else) on the new one, so acks for old-connection messages are dropped: the resent
copies are stored as counted duplicates, never acknowledged by mistake.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable


class AckSequencer:
    """Releases packet ids for acknowledgement in arrival order, per connection."""

    def __init__(self, send: Callable[[list[int]], None]) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._connection = 0
        self._arrived: deque[int] = deque()  # packet ids of QoS 1 messages, in arrival order
        self._done: set[int] = set()

    @property
    def connection(self) -> int:
        """The current connection's number (messages carry it)."""
        return self._connection

    def new_connection(self) -> None:
        """A (re)connect: forget the old connection's packet ids."""
        with self._lock:
            self._connection += 1
            self._arrived.clear()
            self._done.clear()

    def arrived(self, mid: int) -> None:
        """A QoS 1 message arrived on the current connection (call in arrival order)."""
        with self._lock:
            self._arrived.append(mid)

    def done(self, connection: int, mids: Iterable[int]) -> None:
        """These messages are committed: ack them and every earlier one that is committed."""
        with self._lock:
            if connection != self._connection:
                return  # the broker resends them on the new connection
            self._done.update(mids)
            ready = []
            arrived, finished = self._arrived, self._done
            while arrived and arrived[0] in finished:
                mid = arrived.popleft()
                finished.discard(mid)
                ready.append(mid)
            if ready:
                self._send(ready)  # under the lock: acks leave in order

    @property
    def waiting(self) -> int:
        """Messages received on this connection and not yet acknowledged."""
        return len(self._arrived)
