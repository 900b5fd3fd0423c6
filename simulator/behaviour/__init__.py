"""Behaviour models of each product, by product model id."""

from __future__ import annotations

from datetime import datetime

from simulator.behaviour.air_conditioner import AirConditioner
from simulator.behaviour.base import Behaviour, BehaviourContext, EmittedEvent, MetricValues
from simulator.behaviour.ev import ElectricVehicle
from simulator.behaviour.refrigerator import Refrigerator
from simulator.behaviour.washing_machine import WashingMachine
from simulator.errors import UnknownModelError

BEHAVIOURS: dict[str, type[Behaviour]] = {
    cls.model_id: cls for cls in (ElectricVehicle, Refrigerator, WashingMachine, AirConditioner)
}

__all__ = ["BEHAVIOURS", "Behaviour", "BehaviourContext", "EmittedEvent", "MetricValues"]


def make_behaviour(model_id: str, context: BehaviourContext, start: datetime) -> Behaviour:
    """The behaviour model for a product model id."""
    try:
        cls = BEHAVIOURS[model_id]
    except KeyError:
        known = ", ".join(BEHAVIOURS)
        raise UnknownModelError(f"no behaviour for model {model_id!r}; known: {known}") from None
    return cls(context, start)
