"""The product's voice as source text: one template per moment kind, translated via gettext.

Every string here is an English msgid; the catalogs in notify/locale translate them (msgctxt
is the moment kind, so the same English sentence may be worded differently per product).
Placeholders are filled with values already formatted for the reader's locale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Unit(StrEnum):
    """How a fact is formatted for the reader."""

    PERCENT = "percent"
    KILOMETER = "kilometer"
    KILOPASCAL = "kilopascal"
    CELSIUS = "celsius"
    MINUTES = "minutes"
    HOURS = "hours"
    WATTS = "watts"
    KILOWATT_HOURS = "kilowatt_hours"
    COUNT = "count"
    CLOCK_TIME = "clock_time"
    TIRE = "tire"


@dataclass(frozen=True)
class Template:
    """Title and body of one moment kind, and the facts (with units) the body needs."""

    kind: str
    title: str
    body: str
    facts: dict[str, Unit] = field(default_factory=dict)


# Shared pieces (msgctxt "common").
GREETING_WITH_NAME = "Hi {name}, it's {nickname}. "
GREETING = "Hi, it's {nickname}. "
FALLBACK_BODY = "{greeting}Something needs your attention; please take a look in the app."
ESCALATION_TITLE = "Still needs you: {title}"
DIGEST_TITLE = "Your friend update"
DIGEST_BODY = "Here is what your products wanted to tell you:\n{items}"
WEEKLY_TITLE = "{nickname}'s week"
WEEKLY_BODY = "{greeting}Here is my week: {summary}. See you next week!"
WEEKLY_QUIET = "a quiet week with nothing to report"
# Operator notices (rules' notify_operators action): for staff, not in a product's voice.
OPERATOR_TITLE = "Operator notice ({severity}): {device_uid}"
OPERATOR_BODY = (
    "{message}\n\nDevice: {device_uid} ({model_id})\nRule: {rule_key}\nAt: {occurred_at}"
)
WEEKLY_ITEMS = {
    "distance_km": "{value} driven",
    "energy_kwh": "{value} of energy",
    "door_openings": "door opened {value} times",
    "cycles": "{value} loads washed",
    "readings": "{value} check-ins",
}
WEEKLY_UNITS = {
    "distance_km": Unit.KILOMETER,
    "energy_kwh": Unit.KILOWATT_HOURS,
    "door_openings": Unit.COUNT,
    "cycles": Unit.COUNT,
    "readings": Unit.COUNT,
}
TIRES = {
    "front_left": "front left",
    "front_right": "front right",
    "rear_left": "rear left",
    "rear_right": "rear right",
}
COMMON_MESSAGES = (
    GREETING_WITH_NAME,
    GREETING,
    FALLBACK_BODY,
    ESCALATION_TITLE,
    DIGEST_TITLE,
    DIGEST_BODY,
    WEEKLY_TITLE,
    WEEKLY_BODY,
    WEEKLY_QUIET,
    OPERATOR_TITLE,
    OPERATOR_BODY,
    *WEEKLY_ITEMS.values(),
    *TIRES.values(),
)

_TEMPLATES = (
    Template(
        "ev.charge_complete",
        "{nickname} is charged",
        "{greeting}I'm charged to {soc_pct}, about {range_km} of range. Ready when you are!",
        {"soc_pct": Unit.PERCENT, "range_km": Unit.KILOMETER},
    ),
    Template(
        "ev.low_charge_before_commute",
        "{nickname} needs a charge for tomorrow",
        "{greeting}I'm at {soc_pct} ({range_km} of range) and you usually leave at "
        "{commute_time}. Plug me in tonight?",
        {"soc_pct": Unit.PERCENT, "range_km": Unit.KILOMETER, "commute_time": Unit.CLOCK_TIME},
    ),
    Template(
        "ev.not_plugged_in",
        "{nickname} isn't plugged in",
        "{greeting}It's getting late and I'm not plugged in. I'm at {soc_pct}; "
        "shall we charge overnight?",
        {"soc_pct": Unit.PERCENT},
    ),
    Template(
        "ev.tire_pressure_dropping",
        "{nickname}: tire pressure is dropping",
        "{greeting}My {tire} tire is down to {pressure_kpa} and losing {rate_kpa_per_h} an hour. "
        "Could you check it before the next drive?",
        {"tire": Unit.TIRE, "pressure_kpa": Unit.KILOPASCAL, "rate_kpa_per_h": Unit.KILOPASCAL},
    ),
    Template(
        "ev.left_unlocked",
        "{nickname} is unlocked",
        "{greeting}I've been unlocked for {unlocked_min}. Want to lock me from the app?",
        {"unlocked_min": Unit.MINUTES},
    ),
    Template(
        "ev.battery_health_decline",
        "{nickname}: battery health is declining",
        "{greeting}My battery health is down to {battery_health_pct}. "
        "Nothing urgent, but a check-up at the dealer would be a good idea.",
        {"battery_health_pct": Unit.PERCENT},
    ),
    Template(
        "refrigerator.door_left_open",
        "{nickname}: door left open",
        "{greeting}My door has been open for {open_min} and it's {fridge_temp_c} inside. "
        "Could you close it so everything stays cold?",
        {"open_min": Unit.MINUTES, "fridge_temp_c": Unit.CELSIUS},
    ),
    Template(
        "refrigerator.too_warm",
        "{nickname} is too warm",
        "{greeting}It's {fridge_temp_c} inside me and I've been too warm for {minutes}. "
        "Please check the door and the food; if it stays warm, call for service.",
        {"fridge_temp_c": Unit.CELSIUS, "minutes": Unit.MINUTES},
    ),
    Template(
        "refrigerator.filter_due",
        "{nickname}: time for a new filter",
        "{greeting}My water filter has been working for {filter_hours}. "
        "Time to swap in a fresh one.",
        {"filter_hours": Unit.HOURS},
    ),
    Template(
        "washing_machine.cycle_finished",
        "{nickname}: laundry is done",
        "{greeting}Your laundry is done! Hang it up soon so it doesn't get wrinkly.",
    ),
    Template(
        "washing_machine.leak",
        "{nickname}: water leak!",
        "{greeting}I've detected a water leak and paused my cycle! Please turn off the tap and "
        "check the floor around me right away.",
    ),
    Template(
        "washing_machine.drum_cleaning_due",
        "{nickname}: drum cleaning due",
        "{greeting}I've washed {cycles_since_drum_clean} loads since my last drum clean. "
        "Could you run a drum-cleaning cycle this week?",
        {"cycles_since_drum_clean": Unit.COUNT},
    ),
    Template(
        "air_conditioner.filter_cleaning_due",
        "{nickname}: filter cleaning due",
        "{greeting}I've run for {filter_hours} since my filter was cleaned. A quick rinse keeps me "
        "efficient and the air fresh.",
        {"filter_hours": Unit.HOURS},
    ),
    Template(
        "air_conditioner.unusual_power_draw",
        "{nickname}: unusual power draw",
        "{greeting}I'm drawing {power_w}, much more than my usual {typical_power_w}. Could you "
        "check my filter and that the windows are closed?",
        {"power_w": Unit.WATTS, "typical_power_w": Unit.WATTS},
    ),
)

TEMPLATES: dict[str, Template] = {t.kind: t for t in _TEMPLATES}
COMMON_CONTEXT = "common"
