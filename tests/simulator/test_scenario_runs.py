"""Built-in scenarios end to end: simulator → broker → ingest + rules → moments, scored 1.0."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence

import pytest

from app.settings import Settings
from simulator.models import DeviceSpec
from simulator.runner import run_scenario
from simulator.scenarios import builtin_scenarios, load_scenario
from store.db import connect
from tests.platform import running_components

pytestmark = pytest.mark.mqtt5  # the device-side test clients speak MQTT 5


def _register(database_url: str) -> Callable[[Sequence[DeviceSpec]], None]:
    """Register the scenario's devices with one owner in Tokyo, as the demo does."""

    def register(specs: Sequence[DeviceSpec]) -> None:
        with connect(database_url, autocommit=True) as conn:
            owner = conn.execute(
                "INSERT INTO customers (language, time_zone) VALUES ('ja', 'Asia/Tokyo') "
                "RETURNING id"
            ).fetchone()
            assert owner is not None
            for spec in specs:
                row = conn.execute(
                    "INSERT INTO devices (uid, serial, model_id, latitude, longitude) "
                    "VALUES (%s, %s, %s, %s, %s) RETURNING id",
                    (spec.uid, f"SN-{spec.uid}", spec.model, spec.home_lat, spec.home_lon),
                ).fetchone()
                assert row is not None
                conn.execute(
                    "INSERT INTO device_ownerships (device_id, customer_id, role) "
                    "VALUES (%s, %s, 'owner')",
                    (row["id"], owner["id"]),
                )

    return register


@pytest.fixture
def platform(settings: Settings) -> Iterator[Settings]:
    """Ingest (with its rules step) and the timer scheduler, as `kizuna serve` runs them."""
    from ingest.main import run as run_ingest
    from rules.main import run as run_scheduler

    with running_components(settings, run_ingest, run_scheduler) as running:
        yield running


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(builtin_scenarios()))
def test_builtin_scenario_scores_perfect_precision_and_recall(
    platform: Settings, name: str
) -> None:
    assert platform.database_url and platform.mqtt_url
    result = run_scenario(
        load_scenario(name),
        mqtt_url=platform.mqtt_url,
        topic_prefix=platform.mqtt_topic_prefix,
        database_url=platform.database_url,
        uid_prefix=f"{platform.mqtt_topic_prefix}-",
        register=_register(platform.database_url),
    )
    assert result.report is not None
    summary = result.report.as_dict()
    assert (result.report.precision, result.report.recall) == (1.0, 1.0), json.dumps(summary)
    assert result.stats.readings > 0
