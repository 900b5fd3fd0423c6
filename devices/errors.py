"""Errors of the devices package.

DevicesError                  base of everything below
├── NotFound                  no such device/customer/command, or not visible to the caller
├── Conflict                  duplicate serial/uid/email, second owner, already shared
├── InvalidRequest            input that breaks a product model or a rule of the registry
│   └── ImportRejected        a CSV import with bad rows (nothing was imported)
└── BrokerError               the broker did not confirm a change (transient: retry)
    └── BrokerRefused         the broker answered with an error (permanent)
"""

from __future__ import annotations

from dataclasses import dataclass


class DevicesError(Exception):
    """Base of every error raised by the devices package."""


class NotFound(DevicesError):
    """The thing does not exist, or the caller may not know that it exists."""


class Conflict(DevicesError):
    """The change clashes with what is already registered."""


class InvalidRequest(DevicesError):
    """The request breaks a product model or a registry rule."""


@dataclass(frozen=True)
class RowProblem:
    """One bad row of an import: its line number in the file and why."""

    line: int
    reason: str


class ImportRejected(InvalidRequest):
    """A bulk import found bad rows; nothing was imported."""

    def __init__(self, problems: list[RowProblem], total_bad: int) -> None:
        super().__init__(f"{total_bad} bad row(s); nothing was imported")
        self.problems = problems
        self.total_bad = total_bad


class BrokerError(DevicesError):
    """The broker did not confirm a credential change in time (transient)."""


class BrokerRefused(BrokerError):
    """The broker answered a credential change with an error (permanent)."""
