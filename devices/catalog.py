"""Product models declared as data: what each kind of product measures, emits and accepts.

A product model is a YAML file (shipped ones live in devices/product_models/); adding a new
product type needs a new file, not new code. `ProductModel.check_metrics` validates readings
against the model and says precisely what is wrong.
"""

from __future__ import annotations

import math
import sys
from functools import cache, cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from devices.protocol import METRIC_NAME_PATTERN

ModelId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Name = Annotated[str, StringConstraints(pattern=METRIC_NAME_PATTERN)]


class ValueSpec(BaseModel):
    """Type, unit and valid range of one metric, command argument or desired value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["number", "integer", "boolean", "enum"]
    unit: str | None = None
    min: float | None = None
    max: float | None = None
    values: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ValueSpec:
        if self.type == "enum" and not self.values:
            raise ValueError("an enum needs a non-empty 'values' list")
        if self.type != "enum" and self.values is not None:
            raise ValueError("'values' is only for enums")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is greater than max")
        return self

    def problem(self, value: Any) -> str | None:
        """Why `value` does not fit this spec, or None when it does."""
        if self.type == "boolean":
            return None if isinstance(value, bool) else "expected a boolean"
        if self.type == "enum":
            if not isinstance(value, str) or value not in (self.values or ()):
                return f"expected one of {', '.join(self.values or ())}"
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"expected a {self.type}"
        if self.type == "integer" and not (isinstance(value, int) or float(value).is_integer()):
            return "expected an integer"
        if not math.isfinite(value):
            return "expected a finite number"
        if self.min is not None and value < self.min:
            return f"below minimum {self.min:g}"
        if self.max is not None and value > self.max:
            return f"above maximum {self.max:g}"
        return None


class CommandSpec(BaseModel):
    """A command a product accepts and its arguments."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    args: dict[Name, ValueSpec] = Field(default_factory=dict)


class ProductModel(BaseModel):
    """One kind of connected product."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: ModelId
    version: int = Field(default=1, ge=1)
    names: dict[Literal["en", "ja"], str]
    voice: dict[Literal["en", "ja"], str]
    rule_pack: str | None = None
    metrics: dict[Name, ValueSpec] = Field(min_length=1)
    events: tuple[Name, ...] = ()
    commands: dict[Name, CommandSpec] = Field(default_factory=dict)
    desired: dict[Name, ValueSpec] = Field(default_factory=dict)

    @cached_property
    def _metric_bounds(self) -> dict[str, tuple[str, float, float, frozenset[str]]]:
        """Per metric: type, inclusive bounds (finite), allowed enum values; for the fast check."""
        return {
            name: (
                spec.type,
                -sys.float_info.max if spec.min is None else spec.min,
                sys.float_info.max if spec.max is None else spec.max,
                frozenset(spec.values or ()),
            )
            for name, spec in self.metrics.items()
        }

    def check_metrics(self, metrics: dict[str, Any]) -> list[str]:
        """Every problem with a reading's metrics, as 'metric: reason' lines (empty = valid).

        Ingest calls this for every reading: values that plainly fit pass a few type and range
        tests; anything else gets the exact reason from `ValueSpec.problem`.
        """
        problems: list[str] = []
        bounds = self._metric_bounds
        for name, value in metrics.items():
            rule = bounds.get(name)
            if rule is None:
                problems.append(f"{name}: unknown metric for {self.id}")
                continue
            kind, low, high, allowed = rule
            value_type = type(value)
            if kind == "boolean":
                if value_type is bool:
                    continue
            elif kind == "enum":
                if value_type is str and value in allowed:
                    continue
            elif (
                (value_type is int or value_type is float)
                and low <= value <= high
                and (kind == "number" or value_type is int or value.is_integer())
            ):
                continue
            reason = self.metrics[name].problem(value)
            if reason:
                problems.append(f"{name}: {reason}")
        return problems


def load_model_file(path: Path) -> ProductModel:
    """Read and validate one product model file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return ProductModel.model_validate(data)


@cache
def builtin_models() -> dict[str, ProductModel]:
    """The product models shipped with Kizuna, by id."""
    folder = Path(str(resources.files("devices"))) / "product_models"
    models = [load_model_file(p) for p in sorted(folder.glob("*.yaml"))]
    return {m.id: m for m in models}
