"""Fleets of a given size and product mix, for load runs (`kizuna simulate --mix`)."""

from __future__ import annotations

import numpy as np

from simulator.behaviour import BEHAVIOURS
from simulator.environment import HOME_AREAS
from simulator.errors import SimulatorError
from simulator.households import MODEL_CODES, PERSONA_ORDER
from simulator.models import DeviceSpec


def parse_mix(text: str) -> dict[str, float]:
    """'ev=2,refrigerator=1' → normalised weights per product model."""
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition("=")
        if name not in BEHAVIOURS:
            raise SimulatorError(
                f"unknown product model {name!r} in --mix; known: {', '.join(BEHAVIOURS)}"
            )
        try:
            weights[name] = float(weight or 1)
        except ValueError:
            raise SimulatorError(f"weight for {name} is not a number: {weight!r}") from None
        if weights[name] < 0:
            raise SimulatorError(f"weight for {name} is negative")
    total = sum(weights.values())
    if total <= 0:
        raise SimulatorError("--mix needs at least one product model with a positive weight")
    return {name: w / total for name, w in weights.items()}


def mixed_fleet(
    count: int, mix: dict[str, float], *, seed: int, uid_prefix: str = "sim"
) -> list[DeviceSpec]:
    """`count` devices in the given proportions (exact counts, largest remainders first)."""
    exact = {m: w * count for m, w in mix.items()}
    counts = {m: int(v) for m, v in exact.items()}
    for model in sorted(exact, key=lambda m: exact[m] - counts[m], reverse=True)[
        : count - sum(counts.values())
    ]:
        counts[model] += 1
    rng = np.random.default_rng([seed, 11])
    specs: list[DeviceSpec] = []
    for model, n in counts.items():
        for i in range(n):
            area = HOME_AREAS[int(rng.integers(len(HOME_AREAS)))]
            specs.append(
                DeviceSpec(
                    uid=f"{uid_prefix}-{MODEL_CODES[model].lower()}-{i:06d}",
                    model=model,
                    persona=PERSONA_ORDER[i % len(PERSONA_ORDER)],
                    home_lat=round(area[1] + float(rng.uniform(-0.01, 0.01)), 5),
                    home_lon=round(area[2] + float(rng.uniform(-0.01, 0.01)), 5),
                )
            )
    return specs
