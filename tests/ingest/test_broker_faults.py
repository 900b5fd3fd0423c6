"""Broker faults: a restart of the broker is survived (reconnect, resubscribe, nothing lost)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.embedded import embedded_broker, free_port
from tests.conftest import make_test_settings
from tests.ingest.conftest import Device, RunningIngest, ago, register_devices, wait_until


def _url(broker: Any) -> str:
    return broker if isinstance(broker, str) else str(broker.url)


def test_broker_restart_reconnects_and_loses_nothing(database_url, topic_prefix, tmp_path: Path):
    port = free_port()
    state = tmp_path / "broker"
    uid, device_id = next(iter(register_devices(database_url, "washing_machine", 1).items()))
    with embedded_broker(state, port) as broker:
        url = _url(broker)
        settings = make_test_settings(database_url, url, topic_prefix, tmp_path)
        ingest = RunningIngest(settings)
        device = Device(url, topic_prefix, uid)
        for seq in range(1, 21):
            device.reading(seq, {"power_w": float(seq)}, ago(100 - seq))
        wait_until(lambda: ingest.worker.totals.readings_stored == 20)
        device.close()
    try:
        wait_until(lambda: not ingest.session.connected)
        with embedded_broker(state, port):
            wait_until(lambda: ingest.session.connected, timeout_s=30)
            device = Device(url, topic_prefix, uid)
            for seq in range(21, 41):
                device.reading(seq, {"power_w": float(seq)}, ago(100 - seq))
            wait_until(lambda: ingest.worker.totals.readings_stored == 40)
            device.close()
    finally:
        ingest.stop()
    from store.db import connect

    with connect(database_url, autocommit=True) as conn:
        row: Any = conn.execute(
            "SELECT count(*) AS n, count(DISTINCT seq) AS d FROM telemetry WHERE device_id = %s",
            (device_id,),
        ).fetchone()
        gaps: Any = conn.execute("SELECT count(*) AS n FROM ingest_seq_gaps").fetchone()
    assert (row["n"], row["d"], gaps["n"]) == (40, 40, 0)
