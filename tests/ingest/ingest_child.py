"""An ingest process for kill -9 tests: settings from KIZUNA_* env, optional self-kill points.

KIZUNA_TEST_KILL=before_commit:N kills the process inside the N-th batch transaction (after
telemetry is written, before commit); after_commit:N kills it after the N-th commit, before
the messages are acknowledged. A file named by KIZUNA_TEST_READY is created once subscribed.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from app.settings import Settings
from ingest.mqtt import BrokerSession
from ingest.worker import IngestWorker


def main() -> None:
    """Run ingest until killed."""
    settings = Settings(_env_file=None)
    mode, _, count = os.environ.get("KIZUNA_TEST_KILL", "none:0").partition(":")
    batches = {"n": 0}

    def kill_at(point: str) -> None:
        if mode == point:
            batches["n"] += 1
            if batches["n"] >= int(count):
                os.kill(os.getpid(), signal.SIGKILL)

    assert settings.database_url and settings.mqtt_url
    worker = IngestWorker(
        settings.database_url,
        settings.mqtt_topic_prefix,
        settings.ingest,
        settings.store,
        steps=[lambda conn, batch: kill_at("before_commit")],
        after_commit=lambda result: kill_at("after_commit"),
    )
    session = BrokerSession(
        settings.mqtt_url,
        settings.mqtt_topic_prefix,
        settings.ingest,
        worker.submit,
        backlog=lambda: worker.pending,
    )
    session.start()
    Path(os.environ["KIZUNA_TEST_READY"]).touch()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    worker.run(session.ack, stop)
    session.stop()


if __name__ == "__main__":
    main()
