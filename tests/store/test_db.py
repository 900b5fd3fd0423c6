"""Connections carry the timeouts that keep a vanished database from hanging a worker."""

from __future__ import annotations

import socket

import pytest

from store.config import StoreConfig
from store.db import connect


def test_tcp_connections_probe_idle_peers_and_give_up_on_unacked_writes(database_url):
    if "host=/" in database_url or "@/" in database_url:
        pytest.skip("a unix-socket connection has no TCP timeouts")
    config = StoreConfig(
        tcp_keepalive_idle_s=7, tcp_keepalive_interval_s=3, tcp_user_timeout_ms=12_000
    )
    with connect(database_url, config) as conn:
        sock = socket.socket(fileno=conn.pgconn.socket)
        try:
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 7
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 3
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 12_000
        finally:
            sock.detach()  # the descriptor stays psycopg's
        assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}
