"""Scenario scoring: the one simulator module allowed to look at the platform's output.

It reads moments (what rules decided to tell) from the platform's database and compares
them with a scenario's ground truth. Everything else in simulator/ only speaks the MQTT
protocol, like a real device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from psycopg.rows import dict_row

from simulator.models import Expectation, Scoring


@dataclass(frozen=True)
class ObservedMoment:
    """A moment the platform created for a simulated device."""

    device: str
    kind: str
    severity: str
    occurred_at: datetime


@dataclass(frozen=True)
class ExpectedMoment:
    """Ground truth resolved to absolute device times."""

    device: str
    kind: str
    earliest: datetime
    latest: datetime

    def matches(self, moment: ObservedMoment) -> bool:
        """Same device and kind, at a time inside the expected window."""
        return (
            moment.device == self.device
            and moment.kind == self.kind
            and self.earliest <= moment.occurred_at <= self.latest
        )


@dataclass
class ScoreReport:
    """Precision and recall of the platform's alerts against the ground truth."""

    expected: list[ExpectedMoment]
    scored: list[ObservedMoment]
    matched: list[ObservedMoment] = field(default_factory=list)
    unexpected: list[ObservedMoment] = field(default_factory=list)
    missed: list[ExpectedMoment] = field(default_factory=list)

    @property
    def precision(self) -> float:
        """Share of the platform's alerts that the ground truth expected (1.0 when none)."""
        return len(self.matched) / len(self.scored) if self.scored else 1.0

    @property
    def recall(self) -> float:
        """Share of expected alerts the platform raised (1.0 when none were expected)."""
        if not self.expected:
            return 1.0
        return (len(self.expected) - len(self.missed)) / len(self.expected)

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly summary."""
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "expected": len(self.expected),
            "alerts": len(self.scored),
            "matched": len(self.matched),
            "unexpected": [_moment_dict(m) for m in self.unexpected],
            "missed": [
                {"device": e.device, "kind": e.kind, "by": e.latest.isoformat()}
                for e in self.missed
            ],
        }


def _moment_dict(moment: ObservedMoment) -> dict[str, str]:
    return {
        "device": moment.device,
        "kind": moment.kind,
        "severity": moment.severity,
        "occurred_at": moment.occurred_at.isoformat(),
    }


def resolve(
    expectations: Sequence[Expectation], start: datetime, uid_of: dict[str, str]
) -> list[ExpectedMoment]:
    """Expectations relative to the run's start, as absolute windows for real device uids."""
    return [
        ExpectedMoment(uid_of[e.device], e.kind, start + e.after, start + e.by)
        for e in expectations
    ]


def is_scored(moment: ObservedMoment, scoring: Scoring) -> bool:
    """Whether a moment counts as an alert for this scenario."""
    if scoring.kinds is not None:
        return moment.kind in scoring.kinds
    return moment.severity in scoring.severities


def score(
    expected: Sequence[ExpectedMoment], observed: Sequence[ObservedMoment], scoring: Scoring
) -> ScoreReport:
    """Match the platform's alerts to the ground truth.

    An alert is correct when some expectation matches it; an expectation is met when at least
    one alert matches it. A repeated alert for an expected problem is not counted against
    precision (it is still correct), but an alert at the wrong time or device is.
    """
    scored = [m for m in observed if is_scored(m, scoring)]
    report = ScoreReport(expected=list(expected), scored=scored)
    for moment in scored:
        if any(e.matches(moment) for e in expected):
            report.matched.append(moment)
        else:
            report.unexpected.append(moment)
    report.missed = [e for e in expected if not any(e.matches(m) for m in scored)]
    return report


def fetch_moments(database_url: str, uids: Sequence[str]) -> list[ObservedMoment]:
    """Every moment the platform recorded for these devices, oldest first."""
    query = """
        SELECT d.uid AS device, m.kind, m.severity, m.occurred_at
        FROM moments m JOIN devices d ON d.id = m.device_id
        WHERE d.uid = ANY(%s)
        ORDER BY m.occurred_at, m.id
    """
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        rows = conn.execute(query, (list(uids),)).fetchall()
    return [ObservedMoment(**row) for row in rows]


def fetch_progress(database_url: str, uids: Sequence[str]) -> tuple[int, int]:
    """(highest seq stored across these devices' twins summed, moments so far): settle signal."""
    query = """
        SELECT COALESCE(sum(t.last_seq), 0) AS seqs,
               (SELECT count(*) FROM moments m JOIN devices d2 ON d2.id = m.device_id
                WHERE d2.uid = ANY(%s)) AS moments
        FROM devices d LEFT JOIN device_twins t ON t.device_id = d.id
        WHERE d.uid = ANY(%s)
    """
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        row = conn.execute(query, (list(uids), list(uids))).fetchone()
    assert row is not None
    return int(row["seqs"]), int(row["moments"])
