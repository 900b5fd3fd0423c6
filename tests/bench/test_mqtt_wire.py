"""The load generator's MQTT framing: packets split anywhere still come out whole."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.mqtt_wire import (
    PUBLISH,
    MqttWireError,
    PacketReader,
    puback_packets,
    publish_ids,
    publish_packet,
    remaining_length,
)


@pytest.mark.parametrize(
    ("length", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (268_435_455, b"\xff\xff\xff\x7f"),
    ],
)
def test_remaining_length_matches_the_spec_examples(length: int, encoded: bytes) -> None:
    assert remaining_length(length) == encoded  # MQTT 3.1.1 table 2.4


@given(
    st.lists(st.tuples(st.integers(1, 0xFFFF), st.binary(max_size=300)), min_size=1, max_size=40),
    st.lists(st.integers(1, 97), min_size=1, max_size=50),
)
def test_packets_split_at_any_boundary_come_out_whole(
    messages: list[tuple[int, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(publish_packet(b"a/b", pid, payload) for pid, payload in messages)
    stream += puback_packets([7, 8])
    reader, packets, pos, index = PacketReader(), [], 0, 0
    while pos < len(stream):
        step = cuts[index % len(cuts)]
        packets += reader.feed(stream[pos : pos + step])
        pos, index = pos + step, index + 1
    assert publish_ids(packets) == [pid for pid, _ in messages]
    bodies = [body for kind, body in packets if kind & 0xF0 == PUBLISH]
    assert [body[7:] for body in bodies] == [payload for _, payload in messages]
    assert [body for kind, body in packets if kind == 0x40] == [b"\x00\x07", b"\x00\x08"]


def test_a_remaining_length_of_five_bytes_is_refused() -> None:
    with pytest.raises(MqttWireError):
        PacketReader().feed(b"\x30\xff\xff\xff\xff\x01")
