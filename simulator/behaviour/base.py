"""What every product behaviour model provides, and the helpers they share."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any, ClassVar

import numpy as np

from devices.catalog import ProductModel, builtin_models
from simulator.environment import TOKYO, is_day_off
from simulator.personas import Persona

MetricValues = dict[str, bool | int | float | str]


@dataclass(frozen=True)
class EmittedEvent:
    """A discrete thing that happened on the device at a device time."""

    ts: datetime
    name: str
    data: MetricValues = field(default_factory=dict)


@dataclass(frozen=True)
class BehaviourContext:
    """Who owns the device and where it lives; `seed` makes its life reproducible."""

    uid: str
    persona: Persona
    seed: int
    home_lat: float
    home_lon: float


class Behaviour(ABC):
    """A product's physics and its owner's habits, advanced in fixed steps of device time."""

    model_id: ClassVar[str]
    faults: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, context: BehaviourContext, start: datetime) -> None:
        self.context = context
        self.persona = context.persona
        self.rng = np.random.default_rng([context.seed, 1])
        self.active_faults: dict[str, dict[str, Any]] = {}
        self._day: date | None = None
        self._day_plan: dict[str, float] = {}
        self.spec: ProductModel = builtin_models()[self.model_id]

    @abstractmethod
    def step(self, now: datetime, dt_s: float) -> list[EmittedEvent]:
        """Advance the state by `dt_s` seconds ending at `now`; return what happened."""

    @abstractmethod
    def raw_metrics(self) -> MetricValues:
        """The current value of every metric (before rounding and range clamping)."""

    def metrics(self) -> MetricValues:
        """Every metric of the product model, rounded and inside its declared range."""
        return conform(self.spec, self.raw_metrics())

    def command(self, name: str, args: dict[str, Any], now: datetime) -> str | None:
        """Carry out a command; return why it was refused, or None when done."""
        return f"command {name} is not supported"

    def desire(self, values: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Apply desired state values the product model declares."""

    def set_fault(self, kind: str, params: dict[str, Any], active: bool) -> None:
        """Start or end a fault of this product (a leak, a broken compressor)."""
        if active:
            self.active_faults[kind] = params
        else:
            self.active_faults.pop(kind, None)

    def plan(self, now: datetime) -> dict[str, float]:
        """Today's jittered schedule (local hours), drawn once per day from a per-day seed."""
        local = now.astimezone(TOKYO)
        if local.date() != self._day:
            self._day = local.date()
            day_rng = np.random.default_rng([self.context.seed, 2, self._day.toordinal()])
            self._day_plan = self.daily_plan(self._day, day_rng)
        return self._day_plan

    def daily_plan(self, day: date, day_rng: np.random.Generator) -> dict[str, float]:
        """Hours at which today's habits happen; products override this."""
        return {}


def local_hour(moment: datetime) -> float:
    """Hours since local midnight in Tokyo."""
    local = moment.astimezone(TOKYO)
    return local.hour + local.minute / 60 + local.second / 3600


def day_off(moment: datetime) -> bool:
    """Whether the local day is a weekend or holiday."""
    return is_day_off(moment.astimezone(TOKYO).date())


def crossed(hour: float | None, now: datetime, dt_s: float) -> bool:
    """Whether local `hour` fell inside the step (now - dt, now]."""
    if hour is None:
        return False
    end = local_hour(now)
    start = end - dt_s / 3600
    return start < hour <= end or start < hour - 24 <= end


def time_within(now: datetime, dt_s: float, fraction: float) -> datetime:
    """A moment inside the step ending at `now`, `fraction` of the way through it."""
    return now - timedelta(seconds=dt_s * (1 - fraction))


def relax(value: float, target: float, dt_s: float, tau_s: float) -> float:
    """First-order approach of `value` towards `target` with time constant `tau_s`."""
    return target + (value - target) * math.exp(-dt_s / tau_s)


@cache
def _bounds(model_id: str) -> dict[str, tuple[str, float, float]]:
    """Per numeric metric: (type, min, max), looked up once per product model."""
    bounds: dict[str, tuple[str, float, float]] = {}
    for name, spec in builtin_models()[model_id].metrics.items():
        if spec.type in ("number", "integer"):
            low = -math.inf if spec.min is None else spec.min
            high = math.inf if spec.max is None else spec.max
            bounds[name] = (spec.type, low, high)
    return bounds


def conform(model: ProductModel, metrics: MetricValues) -> MetricValues:
    """Round numbers and keep them in the model's declared range, so readings stay valid."""
    bounds = _bounds(model.id)
    out: MetricValues = {}
    for name, value in metrics.items():
        bound = bounds.get(name)
        if bound is None or isinstance(value, bool):
            out[name] = value
            continue
        kind, low, high = bound
        number = min(high, max(low, float(value)))
        out[name] = round(number) if kind == "integer" else round(number, 2)
    return out
