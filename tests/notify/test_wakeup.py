"""The fan-out loop wakes at the commit of a moment (LISTEN/NOTIFY) and still polls as a net."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from app.settings import Settings
from notify.config import NotifyConfig
from notify.main import fan_out_loop
from store.db import connect
from tests.notify.conftest import World, make_outbox

CHARGED = {"soc_pct": 80, "range_km": 320}


@pytest.fixture
def run_fan_out(settings: Settings, world: World) -> Iterator[Any]:
    """Start the fan-out loop with a given poll interval; stopped when the test ends."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(poll_interval_s: float) -> None:
        config = NotifyConfig(poll_interval_s=poll_interval_s)
        loop_settings = settings.model_copy(update={"notify": config})
        outbox = make_outbox(world.cipher)
        thread = threading.Thread(
            target=fan_out_loop, args=(loop_settings, outbox, stop), daemon=True
        )
        thread.start()
        threads.append(thread)
        time.sleep(0.5)  # LISTEN is in place and the empty inbox has been drained

    yield start
    stop.set()
    for thread in threads:
        thread.join(5)


def _seconds_until_posted(world: World, person: str, timeout_s: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if world.feed(person):
            return time.monotonic() - started
        time.sleep(0.01)
    return None


def test_a_committed_moment_wakes_the_fan_out_long_before_the_next_poll(
    world: World, run_fan_out: Any
) -> None:
    world.customer("aiko", language="ja")
    world.device("ev-1", "ev", "Bolt", "aiko")
    run_fan_out(poll_interval_s=30)
    world.moment("ev-1", "ev.charge_complete", CHARGED)
    waited = _seconds_until_posted(world, "aiko", timeout_s=5)
    assert waited is not None and waited < 3, "the fan-out waited for its poll, not the commit"


def test_a_moment_whose_wake_up_was_missed_is_found_by_polling(
    world: World, run_fan_out: Any, database_url: str
) -> None:
    world.customer("aiko", language="ja")
    device = world.device("ev-1", "ev", "Bolt", "aiko")
    run_fan_out(poll_interval_s=0.3)
    with connect(database_url, autocommit=True) as conn, conn.transaction():
        # As if the notification were lost: the trigger (and so its pg_notify) does not run;
        # the inbox row is written by hand.
        conn.execute("SET LOCAL session_replication_role = replica")
        moment = conn.execute(
            """INSERT INTO moments (device_id, kind, severity, occurred_at, facts, dedup_key)
               VALUES (%s, 'ev.charge_complete', 'info', now(), '{}', 'no-wake') RETURNING id""",
            (device,),
        ).fetchone()
        assert moment is not None
        conn.execute("INSERT INTO notify_inbox (moment_id) VALUES (%s)", (moment["id"],))
    assert _seconds_until_posted(world, "aiko", timeout_s=5) is not None
    assert world.db.execute("SELECT count(*) AS n FROM notify_inbox").fetchone()["n"] == 0
