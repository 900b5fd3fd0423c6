"""A TCP proxy for fault tests: forward, or blackhole (connections stay open, nothing passes).

A blackhole is the half-open failure: neither side sees a FIN or RST, so only the
application's own timeouts (MQTT keep-alive, database timeouts) can notice. `heal()` closes
the stuck connections and forwards new ones again.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

CHUNK = 65_536


class TcpProxy:
    """Listens on 127.0.0.1:<port> and forwards to `target` until told otherwise."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._blackholed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, name="tcp-proxy", daemon=True).start()

    def blackhole(self) -> None:
        """From now on nothing passes in either direction; connections stay open."""
        self._blackholed.set()

    def heal(self) -> None:
        """Drop the stuck connections (as a real peer would after its timeout) and forward."""
        with self._lock:
            stuck, self._sockets = self._sockets, []
        for sock in stuck:
            with contextlib.suppress(OSError):
                sock.close()
        self._blackholed.clear()

    def close(self) -> None:
        """Stop listening and close every connection."""
        self._closed = True
        self.heal()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._blackholed.is_set():
                with self._lock:
                    self._sockets.append(client)  # accepted, then silence
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                data = source.recv(CHUNK)
                if not data:
                    break
                if self._blackholed.is_set():
                    continue  # swallowed: the half-open peer never hears of it
                sink.sendall(data)
        if not self._blackholed.is_set():
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def tcp_proxy(target_host: str, target_port: int) -> Iterator[TcpProxy]:
    """A proxy for the duration of a test."""
    proxy = TcpProxy(target_host, target_port)
    try:
        yield proxy
    finally:
        proxy.close()
