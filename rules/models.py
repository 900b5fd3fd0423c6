"""Rule specs as validated data: conditions, actions, scope, and the alert/rule API schemas."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    StringConstraints,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from devices.protocol import METRIC_NAME_PATTERN
from rules.errors import InvalidRuleSpec

MetricName = Annotated[str, StringConstraints(pattern=METRIC_NAME_PATTERN)]
MomentKind = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")]
RuleKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")]
Severity = Literal["info", "warning", "critical"]
Scalar = bool | int | float | str

_DURATION = re.compile(
    r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?)\s*$"
)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> timedelta:
    """'15m', '2 hours', '30s', 90 (seconds) or a timedelta → a positive timedelta."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match["n"]) * _UNIT_SECONDS[match["unit"][0]]
    else:
        raise ValueError("expected a duration such as '15m', '2h', '30s' or seconds as a number")
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return timedelta(seconds=seconds)


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(lambda value: value.total_seconds(), return_type=float, when_used="json"),
]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- conditions


class ThresholdSpec(_Spec):
    """Numeric level with hysteresis: trigger past one level, clear past another."""

    metric: MetricName
    above: float | None = None
    below: float | None = None
    clear_below: float | None = None
    clear_above: float | None = None

    @model_validator(mode="after")
    def _one_direction(self) -> ThresholdSpec:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of 'above' or 'below'")
        if self.above is not None:
            if self.clear_above is not None:
                raise ValueError("'clear_above' goes with 'below'; with 'above' use 'clear_below'")
            if self.clear_below is not None and self.clear_below > self.above:
                raise ValueError("'clear_below' must not be greater than 'above'")
        if self.below is not None:
            if self.clear_below is not None:
                raise ValueError("'clear_below' goes with 'above'; with 'below' use 'clear_above'")
            if self.clear_above is not None and self.clear_above < self.below:
                raise ValueError("'clear_above' must not be less than 'below'")
        return self


class StateSpec(_Spec):
    """A metric equals a value (or one of several): booleans, enums, exact numbers."""

    metric: MetricName
    equals: Scalar | None = None
    not_equals: Scalar | None = None
    one_of: tuple[Scalar, ...] | None = None

    @model_validator(mode="after")
    def _one_test(self) -> StateSpec:
        given = [x for x in (self.equals, self.not_equals, self.one_of) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'equals', 'not_equals' or 'one_of'")
        return self


class AbsenceSpec(_Spec):
    """No reading (of one metric, or of anything) for a while, measured from the last one."""

    after: Duration
    metric: MetricName | None = None


class RateSpec(_Spec):
    """Rate of change of a metric per `per`, measured across `window`."""

    metric: MetricName
    window: Duration
    per: Duration = timedelta(hours=1)
    above: float | None = None
    below: float | None = None
    min_span: Duration | None = None

    @model_validator(mode="after")
    def _one_direction(self) -> RateSpec:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of 'above' or 'below'")
        if self.min_span is not None and self.min_span > self.window:
            raise ValueError("'min_span' must not be longer than 'window'")
        return self


class Circle(_Spec):
    """A circle on the earth's surface."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    radius_m: float = Field(gt=0)


class Home(_Spec):
    """A circle around the device's registered location (devices.latitude/longitude)."""

    radius_m: float = Field(gt=0)


class GeofenceSpec(_Spec):
    """Inside or outside a circle, a polygon, or the owner's home; enter/leave is the edge."""

    circle: Circle | None = None
    polygon: tuple[tuple[float, float], ...] | None = None
    home: Home | None = None
    when: Literal["inside", "outside"] = "inside"
    lat_metric: MetricName = "lat"
    lon_metric: MetricName = "lon"

    @field_validator("polygon")
    @classmethod
    def _polygon(
        cls, value: tuple[tuple[float, float], ...] | None
    ) -> tuple[tuple[float, float], ...] | None:
        if value is None:
            return value
        if len(value) < 3:
            raise ValueError("a polygon needs at least 3 [lat, lon] points")
        for lat, lon in value:
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise ValueError(f"point [{lat}, {lon}] is not a valid [lat, lon]")
        return value

    @model_validator(mode="after")
    def _one_shape(self) -> GeofenceSpec:
        if sum(x is not None for x in (self.circle, self.polygon, self.home)) != 1:
            raise ValueError("give exactly one of 'circle', 'polygon' or 'home'")
        return self


class AnomalySpec(_Spec):
    """Robust z-score (median/MAD) of a metric against the device's own recent readings."""

    metric: MetricName
    z: float = Field(default=3.5, gt=0)
    history: int = Field(default=60, ge=5, le=1000)
    min_history: int = Field(default=20, ge=3)
    direction: Literal["both", "high", "low"] = "both"
    # Values at or below this are neither scored nor learned (a unit that is off or idle),
    # so a morning switch-on is not an anomaly against a night of zeros.
    learn_above: float | None = None

    @model_validator(mode="after")
    def _history(self) -> AnomalySpec:
        if self.min_history > self.history:
            raise ValueError("'min_history' must not exceed 'history'")
        return self


class EventSpec(_Spec):
    """A device event by name, optionally with matching data fields."""

    name: MetricName
    data: dict[str, Scalar] = Field(default_factory=dict)


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class WindowSpec(_Spec):
    """Active between two local times (may cross midnight) on some weekdays, owner's time zone."""

    start: time
    end: time
    days: tuple[Weekday, ...] = _WEEKDAYS
    time_zone: str | None = None

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (KeyError, ValueError) as exc:
                raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> WindowSpec:
        if self.start == self.end:
            raise ValueError("'start' and 'end' must differ")
        if not self.days:
            raise ValueError("'days' must not be empty")
        return self


class DurationSpec(_Spec):
    """The inner condition has held continuously for `for` (a durable timer)."""

    for_: Duration = Field(alias="for")
    condition: Condition

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ThresholdCondition(_Spec):
    threshold: ThresholdSpec


class StateCondition(_Spec):
    state: StateSpec


class AbsenceCondition(_Spec):
    absence: AbsenceSpec


class RateCondition(_Spec):
    rate: RateSpec


class GeofenceCondition(_Spec):
    geofence: GeofenceSpec


class AnomalyCondition(_Spec):
    anomaly: AnomalySpec


class EventCondition(_Spec):
    event: EventSpec


class WindowCondition(_Spec):
    window: WindowSpec


class DurationCondition(_Spec):
    duration: DurationSpec


class AllCondition(_Spec):
    all: tuple[Condition, ...] = Field(min_length=1)


class AnyCondition(_Spec):
    any: tuple[Condition, ...] = Field(min_length=1)


class NotCondition(_Spec):
    not_: Condition = Field(alias="not")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


CONDITION_TYPES: dict[str, type[_Spec]] = {
    "threshold": ThresholdCondition,
    "state": StateCondition,
    "absence": AbsenceCondition,
    "rate": RateCondition,
    "geofence": GeofenceCondition,
    "anomaly": AnomalyCondition,
    "event": EventCondition,
    "window": WindowCondition,
    "duration": DurationCondition,
    "all": AllCondition,
    "any": AnyCondition,
    "not": NotCondition,
}


def _condition_tag(value: Any) -> str | None:
    """The condition type: the single key of a mapping (or the model's own type)."""
    if isinstance(value, dict):
        keys = list(value)
        return keys[0] if len(keys) == 1 and keys[0] in CONDITION_TYPES else None
    for tag, model in CONDITION_TYPES.items():
        if isinstance(value, model):
            return tag
    return None


Condition = Annotated[
    Annotated[ThresholdCondition, Tag("threshold")]
    | Annotated[StateCondition, Tag("state")]
    | Annotated[AbsenceCondition, Tag("absence")]
    | Annotated[RateCondition, Tag("rate")]
    | Annotated[GeofenceCondition, Tag("geofence")]
    | Annotated[AnomalyCondition, Tag("anomaly")]
    | Annotated[EventCondition, Tag("event")]
    | Annotated[WindowCondition, Tag("window")]
    | Annotated[DurationCondition, Tag("duration")]
    | Annotated[AllCondition, Tag("all")]
    | Annotated[AnyCondition, Tag("any")]
    | Annotated[NotCondition, Tag("not")],
    Discriminator(
        _condition_tag,
        custom_error_type="condition_type",
        custom_error_message=(
            "a condition is a mapping with exactly one key, one of: " + ", ".join(CONDITION_TYPES)
        ),
    ),
]

DurationSpec.model_rebuild()
AllCondition.model_rebuild()
AnyCondition.model_rebuild()
NotCondition.model_rebuild()

# ---------------------------------------------------------------- actions


class AlertAction(_Spec):
    """Open an alert when the rule triggers; clear it when the rule stops holding."""

    severity: Severity = "warning"
    auto_clear: bool = True


class MomentAction(_Spec):
    """Create a customer moment for notify/: facts are literals plus named metric values."""

    kind: MomentKind
    severity: Severity = "info"
    facts: dict[str, Scalar] = Field(default_factory=dict)
    facts_from: dict[str, str] = Field(default_factory=dict)


class OperatorNotice(_Spec):
    """Tell operators (a row in operator_notifications; the dashboard and notify read it)."""

    message: str = Field(min_length=1, max_length=500)


class CommandAction(_Spec):
    """Ask the device to do something (a command request through devices/)."""

    name: MetricName
    args: dict[str, Scalar] = Field(default_factory=dict)


class Actions(_Spec):
    """What happens when the rule starts holding."""

    alert: AlertAction | None = None
    moment: MomentAction | None = None
    notify_operators: OperatorNotice | None = None
    command: CommandAction | None = None

    @model_validator(mode="after")
    def _something(self) -> Actions:
        if not any((self.alert, self.moment, self.notify_operators, self.command)):
            raise ValueError("give at least one action: alert, moment, notify_operators, command")
        return self


# ---------------------------------------------------------------- rules


class Scope(_Spec):
    """Which devices a rule applies to: a product model, one device or one customer's devices."""

    model: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,39}$")
    device: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    customer: str | None = Field(default=None, description="customer public id (uuid)")

    @model_validator(mode="after")
    def _one(self) -> Scope:
        if sum(x is not None for x in (self.model, self.device, self.customer)) != 1:
            raise ValueError("give exactly one of 'model', 'device' or 'customer'")
        return self


class RuleSpec(_Spec):
    """One rule: when the condition starts to hold, run the actions."""

    key: RuleKey
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    scope: Scope
    when: Condition
    actions: Actions
    enabled: bool = True


class RulePack(_Spec):
    """The built-in rules for one product model."""

    model: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    rules: tuple[RuleSpec, ...]


def _loc(parts: tuple[int | str, ...]) -> str:
    """A field path without the union tags pydantic inserts ('when.all.0.threshold.above')."""
    out: list[str] = []
    for part in parts:
        text = str(part)
        if out and out[-1] == text:
            continue
        out.append(text)
    return ".".join(out) or "(root)"


def describe_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Pydantic errors as [{'path': ..., 'reason': ...}] with clean field paths.

    An error on a container whose items already have errors (e.g. "too short" after every
    item failed) says nothing new, so it is left out.
    """
    found = [
        (_loc(tuple(error["loc"])), error["msg"].removeprefix("Value error, "))
        for error in exc.errors(include_url=False)
    ]
    paths = [path for path, _ in found]
    return [
        {"path": path, "reason": reason}
        for path, reason in found
        if not any(other.startswith(path + ".") for other in paths)
    ]


def parse_rule_spec(data: Any) -> RuleSpec:
    """Validate raw data as a RuleSpec, or raise InvalidRuleSpec with path + reason per problem."""
    try:
        return RuleSpec.model_validate(data)
    except ValidationError as exc:
        raise InvalidRuleSpec(describe_errors(exc)) from None


# ---------------------------------------------------------------- records


class Rule(BaseModel):
    """A stored rule."""

    id: int
    key: str
    source: Literal["pack", "api"]
    spec: RuleSpec
    version: int
    created_at: datetime
    updated_at: datetime


class Alert(BaseModel):
    """An alert as operators see it."""

    id: int
    rule_id: int
    rule_key: str
    device_id: int
    device_uid: str
    severity: Severity
    status: Literal["active", "acknowledged", "cleared"]
    opened_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    cleared_at: datetime | None
    clear_reason: str | None
    facts: dict[str, Any]


class AlertHistoryEntry(BaseModel):
    """One change of an alert's status."""

    alert_id: int
    at: datetime
    from_status: str | None
    to_status: str
    actor: str
    note: str | None
