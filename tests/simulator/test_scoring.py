"""Scoring: precision and recall of the platform's alerts against a scenario's ground truth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from psycopg import Connection

from simulator.models import Expectation, Scoring
from simulator.scoring import ObservedMoment, fetch_moments, resolve, score

START = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)
EXPECTED = resolve(
    [
        Expectation(device="f1", kind="refrigerator.too_warm", after="2h", by="4h"),
        Expectation(device="w1", kind="washing_machine.leak", after="1h", by="1h10m"),
    ],
    START,
    {"f1": "sim-f1", "w1": "sim-w1"},
)


def _moment(device: str, kind: str, minutes: int, severity: str = "warning") -> ObservedMoment:
    return ObservedMoment(device, kind, severity, START + timedelta(minutes=minutes))


def test_every_expected_alert_and_nothing_else_scores_one() -> None:
    observed = [
        _moment("sim-f1", "refrigerator.too_warm", 150),
        _moment("sim-w1", "washing_machine.leak", 61, "critical"),
    ]
    report = score(EXPECTED, observed, Scoring())
    assert (report.precision, report.recall) == (1.0, 1.0)


def test_an_alert_on_the_wrong_device_or_time_costs_precision_and_recall() -> None:
    observed = [
        _moment("sim-f1", "refrigerator.too_warm", 150),
        _moment("sim-w1", "washing_machine.leak", 30, "critical"),  # before the leak began
        _moment("sim-f2", "refrigerator.too_warm", 150),  # the healthy fridge
    ]
    report = score(EXPECTED, observed, Scoring())
    assert report.precision == 1 / 3
    assert report.recall == 0.5
    assert [m.device for m in report.unexpected] == ["sim-w1", "sim-f2"]
    assert [e.kind for e in report.missed] == ["washing_machine.leak"]


def test_late_alert_is_a_miss_and_a_false_alarm() -> None:
    report = score(EXPECTED[:1], [_moment("sim-f1", "refrigerator.too_warm", 241)], Scoring())
    assert (report.precision, report.recall) == (0.0, 0.0)


def test_a_repeated_alert_for_an_expected_problem_is_still_correct() -> None:
    observed = [_moment("sim-f1", "refrigerator.too_warm", m) for m in (130, 200)]
    report = score(EXPECTED[:1], observed, Scoring())
    assert (report.precision, report.recall, len(report.matched)) == (1.0, 1.0, 2)


def test_informational_moments_are_not_alerts_unless_the_scenario_says_so() -> None:
    info = _moment("sim-w1", "washing_machine.cycle_finished", 20, "info")
    assert score([], [info], Scoring()).precision == 1.0
    strict = Scoring(kinds=("washing_machine.cycle_finished",))
    assert score([], [info], strict).precision == 0.0


def test_nothing_expected_and_nothing_raised_is_perfect() -> None:
    report = score([], [], Scoring())
    assert (report.precision, report.recall) == (1.0, 1.0)
    assert report.as_dict()["alerts"] == 0


def test_fetch_moments_reads_the_platform_moments_of_the_given_devices(db: Connection) -> None:
    db.execute("INSERT INTO product_models (id, spec) VALUES ('refrigerator', '{}')")
    for uid in ("sim-f1", "other"):
        db.execute(
            "INSERT INTO devices (uid, serial, model_id) VALUES (%s, %s, 'refrigerator')",
            (uid, f"S-{uid}"),
        )
    for uid, key in (("sim-f1", "a"), ("other", "b")):
        db.execute(
            "INSERT INTO moments (device_id, kind, severity, occurred_at, dedup_key) "
            "SELECT id, 'refrigerator.too_warm', 'warning', %s, %s FROM devices WHERE uid = %s",
            (START + timedelta(hours=3), key, uid),
        )
    moments = fetch_moments(db.info.dsn, ["sim-f1"])
    assert moments == [
        ObservedMoment("sim-f1", "refrigerator.too_warm", "warning", START + timedelta(hours=3))
    ]
