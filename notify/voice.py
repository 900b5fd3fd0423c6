"""The product's voice: a moment becomes a short first-person message in the reader's language."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from babel.dates import format_time
from babel.numbers import format_decimal
from babel.units import format_unit

from notify.catalogs import translations
from notify.templates import (
    COMMON_CONTEXT,
    DIGEST_BODY,
    DIGEST_TITLE,
    ESCALATION_TITLE,
    FALLBACK_BODY,
    GREETING,
    GREETING_WITH_NAME,
    OPERATOR_BODY,
    OPERATOR_TITLE,
    TEMPLATES,
    TIRES,
    WEEKLY_BODY,
    WEEKLY_ITEMS,
    WEEKLY_QUIET,
    WEEKLY_TITLE,
    WEEKLY_UNITS,
    Unit,
)

log = structlog.get_logger(__name__)

_CLDR_UNITS = {
    Unit.KILOMETER: "length-kilometer",
    Unit.KILOPASCAL: "pressure-kilopascal",
    Unit.CELSIUS: "temperature-celsius",
    Unit.MINUTES: "duration-minute",
    Unit.HOURS: "duration-hour",
    Unit.WATTS: "power-watt",
    Unit.KILOWATT_HOURS: "energy-kilowatt-hour",
}


@dataclass(frozen=True)
class Speaker:
    """Who is speaking (the product) and to whom, in which language and time zone."""

    language: str
    time_zone: str
    nickname: str
    reader_name: str | None = None


@dataclass(frozen=True)
class Message:
    """A rendered message: a short title and a first-person body."""

    title: str
    body: str


class _Voice:
    """Translation and locale formatting for one language."""

    def __init__(self, speaker: Speaker) -> None:
        self.speaker = speaker
        self.locale = "ja_JP" if speaker.language == "ja" else "en_US"
        self._catalog = translations(speaker.language if speaker.language == "ja" else "en")

    def text(self, context: str, msgid: str) -> str:
        return self._catalog.pgettext(context, msgid)

    def number(self, value: float) -> str:
        return format_decimal(value, format="#,##0.#", locale=self.locale)

    def fact(self, unit: Unit, value: Any) -> str:
        """A fact value formatted with its unit in the reader's locale."""
        if unit is Unit.TIRE:
            return self.text(COMMON_CONTEXT, TIRES[str(value)])
        if unit is Unit.CLOCK_TIME:
            return self.clock(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"expected a number, got {type(value).__name__}")
        if unit is Unit.PERCENT:
            return f"{self.number(round(value))}%"
        if unit is Unit.COUNT:
            return self.number(round(value))
        if unit is Unit.KILOPASCAL:
            value = abs(value)  # pressure changes are told as magnitudes ("losing 12 kPa")
        rounded = round(value) if abs(value) >= 10 else round(value, 1)
        return format_unit(rounded, _CLDR_UNITS[unit], length="short", locale=self.locale)

    def clock(self, value: Any) -> str:
        """A time of day: 'HH:MM' local text, or an ISO datetime shown in the reader's zone."""
        zone = ZoneInfo(self.speaker.time_zone)
        text = str(value)
        if len(text) <= 5 and ":" in text:
            hour, minute = (int(part) for part in text.split(":"))
            return format_time(time(hour, minute), format="short", locale=self.locale)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return format_time(moment, format="short", tzinfo=zone, locale=self.locale)

    def greeting(self) -> str:
        nickname = self.speaker.nickname
        if self.speaker.reader_name:
            template = self.text(COMMON_CONTEXT, GREETING_WITH_NAME)
            return template.format(name=self.speaker.reader_name, nickname=nickname)
        return self.text(COMMON_CONTEXT, GREETING).format(nickname=nickname)


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def render_moment(kind: str, facts: Mapping[str, Any], speaker: Speaker) -> Message:
    """The message a product posts about one moment; unknown kinds or bad facts fall back."""
    voice = _Voice(speaker)
    greeting = voice.greeting()
    template = TEMPLATES.get(kind)
    if template is None:
        log.warning("notify.voice.unknown_kind", kind=kind)
        body = voice.text(COMMON_CONTEXT, FALLBACK_BODY).format(greeting=greeting)
        return Message(_capitalized(speaker.nickname), body)
    title = _capitalized(voice.text(kind, template.title).format(nickname=speaker.nickname))
    try:
        values = {name: voice.fact(unit, facts[name]) for name, unit in template.facts.items()}
        body = voice.text(kind, template.body).format(greeting=greeting, **values)
    except (KeyError, TypeError, ValueError) as exc:
        # A moment with missing or malformed facts still reaches its reader, without numbers.
        log.warning("notify.voice.facts_unusable", kind=kind, error=type(exc).__name__)
        body = voice.text(COMMON_CONTEXT, FALLBACK_BODY).format(greeting=greeting)
    return Message(title, body)


def escalation_title(title: str, language: str) -> str:
    """The title of a reminder sent on a second channel for an unacknowledged alert."""
    catalog = translations("ja" if language == "ja" else "en")
    return catalog.pgettext(COMMON_CONTEXT, ESCALATION_TITLE).format(title=title)


def render_digest(titles: list[str], language: str) -> Message:
    """The daily friend update bundling minor moments."""
    catalog = translations("ja" if language == "ja" else "en")
    items = "\n".join(f"• {title}" for title in titles)
    return Message(
        catalog.pgettext(COMMON_CONTEXT, DIGEST_TITLE),
        catalog.pgettext(COMMON_CONTEXT, DIGEST_BODY).format(items=items),
    )


def render_weekly(usage: Mapping[str, float], speaker: Speaker) -> Message:
    """A product's weekly friend update summarizing its usage."""
    voice = _Voice(speaker)
    parts = [
        voice.text(COMMON_CONTEXT, WEEKLY_ITEMS[key]).format(
            value=voice.fact(WEEKLY_UNITS[key], value)
        )
        for key, value in usage.items()
        if key in WEEKLY_ITEMS and value
    ]
    separator = "、" if speaker.language == "ja" else ", "
    summary = separator.join(parts) or voice.text(COMMON_CONTEXT, WEEKLY_QUIET)
    title = voice.text(COMMON_CONTEXT, WEEKLY_TITLE).format(nickname=speaker.nickname)
    body = voice.text(COMMON_CONTEXT, WEEKLY_BODY).format(
        greeting=voice.greeting(), summary=summary
    )
    return Message(_capitalized(title), body)


def render_operator_notice(notice: Mapping[str, Any], language: str) -> Message:
    """An operator notice for staff: the rule's own message, then device, rule and time (UTC)."""
    catalog = translations("ja" if language == "ja" else "en")
    occurred: datetime = notice["occurred_at"]
    values = {
        "severity": notice["severity"],
        "device_uid": notice["device_uid"],
        "model_id": notice["model_id"],
        "rule_key": notice["rule_key"] or "-",
        "message": notice["message"],
        "occurred_at": occurred.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }
    return Message(
        catalog.pgettext(COMMON_CONTEXT, OPERATOR_TITLE).format(**values),
        catalog.pgettext(COMMON_CONTEXT, OPERATOR_BODY).format(**values),
    )
