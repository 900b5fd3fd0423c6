"""A minimal MQTT 3.1.1 client for load generation: pre-encoded packets, bulk socket I/O.

Why not paho here: the load generator shares the 2 cores with the broker, the database and
the ingest process it measures. paho spends tens of microseconds of Python per QoS 1 publish
(packet objects, a lock, a wake-up byte and one `send` per packet, a scan of its in-flight
window per PUBACK) and reads incoming packets with three `recv` calls each; a generator built
on it saturated a core at ~3 000 msgs/s and took the CPU ingest needed. This client does only
what a benchmark needs (CONNECT, QoS 1 PUBLISH with a bounded window, SUBSCRIBE, PUBACK in
bulk) and sends and reads many packets per system call. It is not a general MQTT client:
devices and services use paho-mqtt.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections.abc import Iterable

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK = 0x10, 0x20, 0x30, 0x40, 0x80, 0x90
PINGREQ, PINGRESP, DISCONNECT = 0xC0, 0xD0, 0xE0
MAX_PACKET_ID = 0xFFFF
KEEPALIVE_S = 60


class MqttWireError(RuntimeError):
    """The broker refused or broke the conversation."""


def remaining_length(length: int) -> bytes:
    """The MQTT variable-length encoding of a packet's remaining length."""
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | 0x80 if length else byte)
        if not length:
            return bytes(out)


def utf8_field(text: str | bytes) -> bytes:
    """A length-prefixed MQTT string."""
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(raw)) + raw


def connect_packet(
    client_id: str, username: str | None = None, password: str | None = None
) -> bytes:
    """CONNECT, MQTT 3.1.1, clean session."""
    flags = 0x02
    payload = utf8_field(client_id)
    if username is not None:
        flags |= 0x80
        payload += utf8_field(username)
        if password is not None:
            flags |= 0x40
            payload += utf8_field(password)
    body = utf8_field("MQTT") + bytes([4, flags]) + struct.pack("!H", KEEPALIVE_S) + payload
    return bytes([CONNECT]) + remaining_length(len(body)) + body


def publish_packet(topic: bytes, packet_id: int, payload: bytes) -> bytes:
    """PUBLISH with QoS 1 (`topic` already encoded)."""
    body_length = 2 + len(topic) + 2 + len(payload)
    return b"".join(
        (
            b"\x32",
            remaining_length(body_length),
            struct.pack("!H", len(topic)),
            topic,
            struct.pack("!H", packet_id),
            payload,
        )
    )


def subscribe_packet(packet_id: int, topic_filter: str, qos: int = 1) -> bytes:
    """SUBSCRIBE to one filter."""
    body = struct.pack("!H", packet_id) + utf8_field(topic_filter) + bytes([qos])
    return bytes([SUBSCRIBE | 0x02]) + remaining_length(len(body)) + body


def puback_packets(packet_ids: Iterable[int]) -> bytes:
    """PUBACKs for many packet ids in one buffer."""
    return b"".join(struct.pack("!BBH", PUBACK, 2, pid) for pid in packet_ids)


class PacketReader:
    """Splits a byte stream into (first byte, body) packets; keeps a partial tail."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Append received bytes; return every complete packet in them."""
        buffer = self._buffer
        buffer += data
        packets: list[tuple[int, bytes]] = []
        pos, end = 0, len(buffer)
        while end - pos >= 2:
            length, multiplier, index, complete = 0, 1, pos + 1, False
            while index < end and index - pos <= 4:
                byte = buffer[index]
                index += 1
                length += (byte & 0x7F) * multiplier
                multiplier *= 128
                if not byte & 0x80:
                    complete = True
                    break
            if not complete:
                if index - pos > 4:
                    raise MqttWireError("malformed remaining length")
                break
            if index + length > end:
                break
            packets.append((buffer[pos], bytes(buffer[index : index + length])))
            pos = index + length
        del buffer[:pos]
        return packets


class WireClient:
    """One blocking TCP connection speaking MQTT 3.1.1 (clean session)."""

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = PacketReader()
        self.sock.sendall(connect_packet(client_id, username, password))
        kind, body = self._next_packet(timeout_s)
        if kind & 0xF0 != CONNACK or len(body) != 2 or body[1] != 0:
            raise MqttWireError(f"connection refused: {kind:#x} {body!r}")
        self._pending: list[tuple[int, bytes]] = []
        self._last_ping = time.monotonic()

    def _next_packet(self, timeout_s: float) -> tuple[int, bytes]:
        deadline = time.monotonic() + timeout_s
        while True:
            packets = self.reader.feed(self._recv(max(0.01, deadline - time.monotonic())))
            if packets:
                first, *rest = packets
                self._pending = rest
                return first
            if time.monotonic() > deadline:
                raise MqttWireError("no answer from the broker")

    def _recv(self, timeout_s: float) -> bytes:
        self.sock.settimeout(timeout_s)
        try:
            data = self.sock.recv(1 << 18)
        except TimeoutError:
            return b""
        if not data:
            raise MqttWireError("the broker closed the connection")
        return data

    def receive(self, timeout_s: float) -> list[tuple[int, bytes]]:
        """Packets that arrived within `timeout_s` (0 = only what is already here)."""
        packets, self._pending = self._pending, []
        if not packets:
            try:
                if timeout_s == 0:
                    self.sock.setblocking(False)
                    data = self.sock.recv(1 << 18)
                    if not data:
                        raise MqttWireError("the broker closed the connection")
                else:
                    data = self._recv(timeout_s)
            except BlockingIOError:
                data = b""
            packets = self.reader.feed(data)
        self._keep_alive()
        return packets

    def _keep_alive(self) -> None:
        now = time.monotonic()
        if now - self._last_ping > KEEPALIVE_S / 2:
            self.sock.setblocking(True)
            self.sock.sendall(bytes([PINGREQ, 0]))
            self._last_ping = now

    def send(self, data: bytes) -> None:
        """Write a buffer of packets."""
        self.sock.setblocking(True)
        self.sock.sendall(data)

    def close(self) -> None:
        """DISCONNECT and close."""
        with contextlib.suppress(OSError):
            self.send(bytes([DISCONNECT, 0]))
        self.sock.close()


def count_pubacks(packets: list[tuple[int, bytes]]) -> int:
    """How many of `packets` are PUBACKs."""
    return sum(1 for kind, _ in packets if kind & 0xF0 == PUBACK)


def publish_ids(packets: list[tuple[int, bytes]]) -> list[int]:
    """The packet ids of the QoS 1 PUBLISHes among `packets` (to acknowledge them)."""
    ids = []
    for kind, body in packets:
        if kind & 0xF0 == PUBLISH and kind & 0x06:
            topic_length = (body[0] << 8) | body[1]
            ids.append((body[2 + topic_length] << 8) | body[3 + topic_length])
    return ids
