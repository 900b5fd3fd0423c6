"""Errors of the rules package.

RulesError
├── InvalidRuleSpec     a rule spec failed validation (problems: [{path, reason}]); permanent
├── RuleNotFound        no rule with that id or key
├── RuleConflict        a rule with that key already exists
├── AlertNotFound       no alert with that id
└── AlertTransitionError  the alert cannot move to the requested status (e.g. ack a cleared one)
"""

from __future__ import annotations


class RulesError(Exception):
    """Base of every error raised by rules/."""


class InvalidRuleSpec(RulesError):
    """A rule spec is not valid; `problems` lists each field path and reason."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        self.problems = problems
        summary = "; ".join(f"{p['path']}: {p['reason']}" for p in problems)
        super().__init__(f"invalid rule spec: {summary}")


class RuleNotFound(RulesError):
    """No rule with that id or key."""


class RuleConflict(RulesError):
    """A rule with that key already exists."""


class AlertNotFound(RulesError):
    """No alert with that id."""


class AlertTransitionError(RulesError):
    """The alert cannot move to the requested status."""
