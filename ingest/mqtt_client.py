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
reconnects, subscribe, TLS) and changes only those paths: socket reads are buffered, every
complete packet in the buffer is handled before the next `select`, QoS 0/1 PUBLISH packets
go straight to one sink with the topic and payload sliced from the packet, and
`ack_many` sends the PUBACKs of a whole committed batch as one write. These overrides rely on
paho's internal methods (`_create_socket`, `_handle_publish`, `_packet_queue`), so the
dependency is pinned to the minor versions they were checked against and
`tests/ingest/test_mqtt_client.py` exercises each one against a real broker.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

READ_CHUNK = 256 * 1024
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
    """A paho client whose QoS 0/1 messages go to `publish_sink`, acked in bulk."""

    publish_sink: PublishSink | None = None

    def _create_socket(self) -> Any:
        sock = super()._create_socket()
        if self._transport == "websockets":
            return sock
        return BufferedSocket(sock)

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """Handle every complete packet already read, not only one per `select`."""
        rc = super().loop_read(max_packets)
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            sock = self._sock
            if not isinstance(sock, BufferedSocket) or not sock.buffered:
                break
            rc = super().loop_read(max_packets)
        return rc

    def _handle_publish(self) -> MQTTErrorCode:
        sink = self.publish_sink
        header = self._in_packet["command"]
        qos = (header & 0x06) >> 1
        if sink is None or qos == 2:
            return super()._handle_publish()  # QoS 2 keeps paho's full handshake
        packet = self._in_packet["packet"]
        end = len(packet)
        if end < 2:
            return MQTTErrorCode.MQTT_ERR_PROTOCOL
        pos = 2 + ((packet[0] << 8) | packet[1])
        topic = bytes(packet[2:pos])
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
        sink(topic, bytes(packet[pos:]), mid, qos, bool(header & 0x01))
        if qos == 1 and not self._manual_ack:
            return self._send_puback(mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def ack_many(self, mids: Iterable[int]) -> None:
        """Send the PUBACKs of many QoS 1 messages in one write, in the given order."""
        pack = _PUBACK.pack
        data = b"".join([pack(PUBACK, 2, mid) for mid in mids])
        if data:
            self._packet_queue(PUBACK, data, 0, 0)
