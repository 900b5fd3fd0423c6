"""The fast metric check gives exactly the reasons of the per-spec reference, for any input."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from devices.catalog import ProductModel, builtin_models

MODELS = list(builtin_models().values())
VALUES = st.one_of(
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1000, 1000).map(round),
    st.sampled_from(["wash", "idle", "cool", "charging", "", "x"]),
)


def reference_problems(model: ProductModel, metrics: dict[str, Any]) -> list[str]:
    out = []
    for name, value in metrics.items():
        spec = model.metrics.get(name)
        if spec is None:
            out.append(f"{name}: unknown metric for {model.id}")
        elif reason := spec.problem(value):
            out.append(f"{name}: {reason}")
    return out


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(MODELS), st.data())
def test_fast_check_matches_the_reference(model: ProductModel, data: st.DataObject) -> None:
    names = [*model.metrics, "not_a_metric"]
    metrics = data.draw(st.dictionaries(st.sampled_from(names), VALUES, max_size=10))
    assert model.check_metrics(metrics) == reference_problems(model, metrics)


def test_hand_picked_cases() -> None:
    washer = builtin_models()["washing_machine"]
    assert washer.check_metrics({"phase": "wash", "remaining_min": 3, "drum_temp_c": 40.5}) == []
    assert washer.check_metrics(
        {"remaining_min": 2.5, "door_locked": 1, "phase": "boil", "power_w": float("inf")}
    ) == [
        "remaining_min: expected an integer",
        "door_locked: expected a boolean",
        "phase: expected one of idle, fill, wash, rinse, spin, done, paused",
        "power_w: expected a finite number",
    ]
    assert washer.check_metrics({"remaining_min": 601}) == ["remaining_min: above maximum 600"]
    assert washer.check_metrics({"remaining_min": 600.0}) == []
