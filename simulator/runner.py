"""Run a scenario against a live platform and score its alerts against the ground truth."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from simulator import scoring
from simulator.clock import utc_now
from simulator.fleet import Credentials, Fleet, FleetOptions, FleetStats
from simulator.models import DeviceSpec, FaultSpec, Scenario
from simulator.scenarios import scenario_start

log = structlog.get_logger(__name__)

Register = Callable[[Sequence[DeviceSpec]], None]
QUIET_S = 2.0  # the platform is settled when nothing changed for this long


@dataclass
class ScenarioResult:
    """What happened in one scenario run."""

    scenario: Scenario
    start: datetime
    uids: dict[str, str]  # scenario device name → uid used on the wire
    stats: FleetStats
    report: scoring.ScoreReport | None

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly summary."""
        return {
            "scenario": self.scenario.name,
            "start": self.start.isoformat(),
            "fleet": self.stats.as_dict(),
            "score": self.report.as_dict() if self.report else None,
        }


def scenario_devices(
    scenario: Scenario, uid_prefix: str
) -> tuple[list[DeviceSpec], list[FaultSpec]]:
    """The scenario's devices and faults with uids namespaced by `uid_prefix`."""
    specs = [d.model_copy(update={"uid": uid_prefix + d.uid}) for d in scenario.devices]
    faults = [f.model_copy(update={"device": uid_prefix + f.device}) for f in scenario.faults]
    return specs, faults


def run_scenario(
    scenario: Scenario,
    *,
    mqtt_url: str,
    topic_prefix: str,
    database_url: str | None = None,
    uid_prefix: str = "",
    register: Register | None = None,
    credentials: Credentials | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[FleetStats], None] | None = None,
    now: datetime | None = None,
) -> ScenarioResult:
    """Publish the scenario, wait for the platform to settle, then score (with a database)."""
    start = scenario_start(scenario, now or utc_now())
    specs, faults = scenario_devices(scenario, uid_prefix)
    if register is not None:
        register(specs)
    options = FleetOptions(
        mqtt_url=mqtt_url,
        topic_prefix=topic_prefix,
        speed=None if scenario.speed == "max" else float(scenario.speed),
        start=start,
        duration=scenario.duration,
        interval=scenario.interval,
        seed=scenario.seed,
        credentials=credentials,
        goodbye=False,  # the platform is judged on the scenario's faults, not on the end of it
    )
    fleet = Fleet(specs, options, faults)
    stats = fleet.run(stop or threading.Event(), progress)
    uids = {d.uid: uid_prefix + d.uid for d in scenario.devices}
    report = None
    if database_url is not None:
        total_seq = sum(d.seq for d in fleet.devices)
        _settle(database_url, list(uids.values()), total_seq, scenario.scoring.settle)
        observed = scoring.fetch_moments(database_url, list(uids.values()))
        expected = scoring.resolve(scenario.expect, start, uids)
        report = scoring.score(expected, observed, scenario.scoring)
        log.info("simulator.scenario_scored", scenario=scenario.name, **_numbers(report))
    return ScenarioResult(scenario, start, uids, stats, report)


def _numbers(report: scoring.ScoreReport) -> dict[str, float]:
    return {"precision": report.precision, "recall": report.recall}


def _settle(database_url: str, uids: list[str], total_seq: int, limit: timedelta) -> None:
    """Wait until the platform has stored everything sent and stopped creating moments."""
    deadline = time.monotonic() + limit.total_seconds()
    last: tuple[int, int] | None = None
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        current = scoring.fetch_progress(database_url, uids)
        if current != last:
            last, quiet_since = current, time.monotonic()
        elif current[0] >= total_seq and time.monotonic() - quiet_since >= QUIET_S:
            return
        time.sleep(0.5)
    log.warning("simulator.settle_timeout", stored_seq=last[0] if last else 0, sent_seq=total_seq)
