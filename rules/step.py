"""The rules step that ingest runs inside its batch transaction (see ingest/records.py)."""

from __future__ import annotations

import structlog
from psycopg import Connection
from psycopg.rows import DictRow

from ingest.records import StoredBatch
from rules.runner import Clock, RuleRunner, utc_now

log = structlog.get_logger(__name__)


class RulesStep:
    """A BatchStep: evaluates rules on the batch, writing state and effects in its transaction."""

    def __init__(self, runner: RuleRunner | None = None) -> None:
        self.runner = runner or RuleRunner()

    def __call__(self, conn: Connection[DictRow], batch: StoredBatch) -> None:
        """Run every applicable rule on the batch; raises only what the database raises."""
        stats = self.runner.process_batch(conn, batch)
        if stats.triggers or stats.clears:
            log.debug(
                "rules.batch",
                inputs=stats.inputs,
                evaluations=stats.evaluations,
                triggers=stats.triggers,
                clears=stats.clears,
            )


def make_step(clock: Clock = utc_now) -> RulesStep:
    """The step the ingest composition root adds to its batch steps."""
    return RulesStep(RuleRunner(clock))
