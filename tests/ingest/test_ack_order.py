"""PUBACKs leave in arrival order, and never for another connection's packet ids."""

from __future__ import annotations

from ingest.ack_order import AckSequencer


def test_acks_wait_for_every_earlier_message_and_stale_ones_are_dropped() -> None:
    sent: list[list[int]] = []
    acks = AckSequencer(sent.append)
    acks.new_connection()
    first = acks.connection
    for mid in (1, 2, 3, 4):
        acks.arrived(mid)
    acks.done(first, [3])  # lane B committed first
    assert sent == []
    acks.done(first, [1])
    assert sent == [[1]]
    acks.done(first, [2])
    assert sent == [[1], [2, 3]]
    assert acks.waiting == 1

    acks.new_connection()  # the broker resends 4, maybe with another packet id
    acks.done(first, [4])  # the old connection's commit: its packet id means nothing now
    assert sent == [[1], [2, 3]]
    acks.arrived(9)
    acks.arrived(4)
    acks.done(acks.connection, [4, 9])
    assert sent == [[1], [2, 3], [9, 4]]
    assert acks.waiting == 0
