"""`kizuna simulate` from the command line, against the real broker."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import structlog
from typer.testing import CliRunner

from app.cli import app


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The command points structlog at stderr; give other tests their configuration back."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def test_simulate_runs_a_fleet_and_prints_its_numbers(mqtt_url: str, topic_prefix: str) -> None:
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--devices",
            "3",
            "--speed",
            "max",
            "--duration",
            "2h",
            "--mqtt-url",
            mqtt_url,
            "--topic-prefix",
            topic_prefix,
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    numbers = json.loads(result.stdout[result.stdout.index("{") :])
    assert (numbers["devices"], numbers["readings"]) == (3, 3 * 24)
    assert numbers["messages"] >= 6 and numbers["cpu_s"] > 0


def test_simulate_refuses_bad_options_clearly(mqtt_url: str) -> None:
    runner = CliRunner()
    bad_speed = runner.invoke(app, ["simulate", "--speed", "fast", "--mqtt-url", mqtt_url])
    assert bad_speed.exit_code == 2 and "or 'max'" in bad_speed.output
    bad_mix = runner.invoke(app, ["simulate", "--mix", "toaster=1", "--mqtt-url", mqtt_url])
    assert bad_mix.exit_code == 2 and "unknown product model 'toaster'" in bad_mix.output


def test_scenarios_and_demo_devices_are_listed() -> None:
    runner = CliRunner()
    listing = runner.invoke(app, ["simulate", "scenarios"])
    assert listing.exit_code == 0 and "washer_leak" in listing.output
    devices = runner.invoke(app, ["simulate", "devices", "--count", "4"])
    parsed = json.loads(devices.stdout)
    assert [d["uid"] for d in parsed][:1] == ["kz-ev-000001"] and len(parsed) == 4
