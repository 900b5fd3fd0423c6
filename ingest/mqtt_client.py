"""paho-mqtt tuned for one subscriber taking thousands of QoS 1 messages a second.

paho's client is built for generality, and three of its habits dominated ingest's profile
(about half of the ingest process's CPU at 3 900 msgs/s):

* it reads every packet with at least three `recv` calls (the first byte, each byte of the
  remaining length, then the body), and handles one packet per `select`;
* it decodes MQTT 5 properties into objects and matches the topic against every
  registered filter for each message, before our callback sees it;
* each `ack(mid)` queues one packet, writes a wake-up byte to a socket pair and sends the
  4-byte PUBACK with its own `send`.

`FastSubscriberClient` keeps paho for everything else (connect, session, keep-alive,
reconnects, subscribe, TLS, QoS 2) and changes only those paths: socket reads are buffered,
whole QoS 0/1 PUBLISH packets in the buffer are sliced into topic, packet id and payload and
handed to one sink without paho's per-packet reader, every other packet goes through paho as
before, and `ack_many` sends the PUBACKs of a whole committed batch as one write. These
overrides rely on paho internals (`_create_socket`, `_handle_publish`, `_packet_queue`,
`_in_packet`, `_last_bytes_received`), so the dependency is pinned to the minor versions
they were checked against and `tests/ingest/test_mqtt_client.py` exercises each path against
a real broker.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

READ_CHUNK = 256 * 1024
PAUSE_S = 0.005
PUBACK = 0x40
_PUBACK = struct.Struct("!BBH")

# topic (raw bytes), payload, packet id, qos, retain
PublishSink = Callable[[bytes, bytes, int, int, bool], None]


class BufferedSocket:
    """A connected socket whose reads come from a large in-memory chunk.

    paho asks for 1 byte, 1 byte, then n bytes per packet; this answers from one `recv` of up
    to 256 KiB. `pending()` tells paho's loop that bytes are waiting without a `select`.
    Every other attribute is the wrapped socket's.
    """

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._data = b""
        self._pos = 0

    def recv(self, bufsize: int) -> bytes:
        """Up to `bufsize` bytes: buffered ones first, else one large read of the socket."""
        if self._pos >= len(self._data):
            data = self._sock.recv(max(bufsize, READ_CHUNK))
            if len(data) <= bufsize:
                self._data, self._pos = b"", 0
                return bytes(data)
            self._data, self._pos = data, 0
        start = self._pos
        self._pos = min(start + bufsize, len(self._data))
        return self._data[start : self._pos]

    def take_publishes(self, deliver: Callable[[int, bytes], MQTTErrorCode]) -> int:
        """Hand every complete QoS 0/1 PUBLISH at the front of the buffer to `deliver`.

        Stops at the first packet of another kind (or QoS 2), at an incomplete packet, or
        when `deliver` returns an error; those are left for paho's own reader. Returns how
        many packets were delivered.
        """
        data, pos, end, count = self._data, self._pos, len(self._data), 0
        while pos + 2 <= end:
            header = data[pos]
            if header & 0xF0 != 0x30 or header & 0x06 == 0x06 or header & 0x06 == 0x04:
                break
            length, shift, index = 0, 0, pos + 1
            while index < end and shift <= 21:
                byte = data[index]
                index += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            else:
                break  # the remaining length itself is incomplete (or malformed: paho says)
            if data[index - 1] & 0x80 or index + length > end:
                break
            if deliver(header, data[index : index + length]) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
            pos = index + length
            count += 1
        self._pos = pos
        return count

    @property
    def buffered(self) -> int:
        """Bytes read from the socket and not yet handed out."""
        return len(self._data) - self._pos

    def pending(self) -> int:
        """Bytes readable without waiting (ours, plus a TLS socket's own)."""
        inner = getattr(self._sock, "pending", None)
        return self.buffered + (inner() if inner is not None else 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class FastSubscriberClient(mqtt.Client):
    """A paho client whose QoS 0/1 messages go to `publish_sink`, acked in bulk.

    `paused`, when set and true, stops reading from the socket (the loop still writes acks
    and keeps the connection): TCP flow control then holds the broker back. Ingest uses it
    as its own memory bound, because Mosquitto 2.0.11 was seen sending far more unacked
    messages than the MQTT 5 Receive Maximum once messages queued for the client.
    """

    publish_sink: PublishSink | None = None
    paused: Callable[[], bool] | None = None

    def _create_socket(self) -> Any:
        sock = super()._create_socket()
        if self._transport == "websockets":
            return sock
        return BufferedSocket(sock)

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """Handle every complete packet already read, not only one per `select`.

        Whole QoS 0/1 PUBLISH packets in the buffer go straight to the sink; anything else
        (and the first packet after each socket read) goes through paho's own reader.
        Nothing is read while `paused()` says so.
        """
        sock = self._sock
        if self.paused is not None and self.paused():
            time.sleep(PAUSE_S)  # select() says readable: do not spin while paused
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        if not isinstance(sock, BufferedSocket) or self.publish_sink is None:
            return super().loop_read(max_packets)
        self._take_buffered(sock)
        rc = super().loop_read(max_packets)  # one packet; reads the socket if the buffer ran dry
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._take_buffered(sock)
        # Back to paho's loop after at most one socket read: it writes the acks queued
        # meanwhile, and comes straight back while bytes are buffered (`pending()`).
        return rc

    def _take_buffered(self, sock: BufferedSocket) -> None:
        if self._in_packet["command"] == 0 and sock.take_publishes(self._deliver):
            with self._msgtime_mutex:
                self._last_bytes_received = time.monotonic()

    def _handle_publish(self) -> MQTTErrorCode:
        header = self._in_packet["command"]
        if self.publish_sink is None or header & 0x06 == 0x04:
            return super()._handle_publish()  # QoS 2 keeps paho's full handshake
        return self._deliver(header, bytes(self._in_packet["packet"]))

    def _deliver(self, header: int, packet: bytes) -> MQTTErrorCode:
        """Slice topic, packet id and payload out of a QoS 0/1 PUBLISH body; call the sink."""
        sink = self.publish_sink
        assert sink is not None
        qos = (header & 0x06) >> 1
        end = len(packet)
        if end < 2:
            return MQTTErrorCode.MQTT_ERR_PROTOCOL
        pos = 2 + ((packet[0] << 8) | packet[1])
        topic = packet[2:pos]
        mid = 0
        if qos:
            if pos + 2 > end:
                return MQTTErrorCode.MQTT_ERR_PROTOCOL
            mid = (packet[pos] << 8) | packet[pos + 1]
            pos += 2
        if self._protocol == mqtt.MQTTv5:
            length, shift = 0, 0
            while True:  # properties: skipped, ingest reads none of them
                if pos >= end or shift > 21:
                    return MQTTErrorCode.MQTT_ERR_PROTOCOL
                byte = packet[pos]
                pos += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            pos += length
        if pos > end:
            return MQTTErrorCode.MQTT_ERR_PROTOCOL
        sink(topic, packet[pos:], mid, qos, bool(header & 0x01))
        if qos == 1 and not self._manual_ack:
            return self._send_puback(mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def ack_many(self, mids: Iterable[int]) -> None:
        """Send the PUBACKs of many QoS 1 messages in one write, in the given order."""
        pack = _PUBACK.pack
        data = b"".join([pack(PUBACK, 2, mid) for mid in mids])
        if data:
            self._packet_queue(PUBACK, data, 0, 0)
