"""Pure decisions: which preference applies, quiet hours, and what happens on each channel."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from notify.models import ChannelName, Delivery

# Moments about safety (water on the floor, food going off) whatever severity rules gave them.
SAFETY_CRITICAL_KINDS = frozenset({"washing_machine.leak", "refrigerator.too_warm"})
# Fallback order when a critical alert needs a second channel.
ESCALATION_ORDER = (ChannelName.EMAIL, ChannelName.WEBHOOK, ChannelName.CHAT, ChannelName.MQTT)


@dataclass(frozen=True)
class EffectivePreference:
    """What applies to one person, device and moment kind after merging their preferences."""

    channels: tuple[ChannelName, ...]
    delivery: Delivery


def _specificity(row: Mapping[str, Any]) -> int:
    return (row["device_id"] is not None) * 2 + (row["moment_kind"] is not None)


def resolve_preference(
    rows: Iterable[Mapping[str, Any]],
    device_id: int,
    kind: str,
    default_channels: tuple[ChannelName, ...],
) -> EffectivePreference:
    """Merge a person's preference rows: the most specific row wins, field by field."""
    matching = [
        row
        for row in rows
        if row["device_id"] in (None, device_id) and row["moment_kind"] in (None, kind)
    ]
    channels: tuple[ChannelName, ...] | None = None
    delivery: Delivery | None = None
    for row in sorted(matching, key=_specificity, reverse=True):
        if channels is None and row["channels"] is not None:
            channels = tuple(ChannelName(c) for c in row["channels"])
        if delivery is None and row["delivery"] is not None:
            delivery = Delivery(row["delivery"])
    return EffectivePreference(
        channels if channels is not None else default_channels,
        delivery or Delivery.INSTANT,
    )


def is_safety_critical(kind: str, severity: str) -> bool:
    """Whether a moment bypasses quiet hours, caps, digests and mutes, and may escalate."""
    return severity == "critical" or kind in SAFETY_CRITICAL_KINDS


def quiet_until(
    now: datetime, time_zone: str, start: time | None, end: time | None
) -> datetime | None:
    """The end of the person's quiet hours when `now` falls inside them, else None."""
    if start is None or end is None or start == end:
        return None
    local = now.astimezone(ZoneInfo(time_zone))
    clock = local.time().replace(tzinfo=None)
    inside = start <= clock < end if start < end else clock >= start or clock < end
    if not inside:
        return None
    end_day = local.date() if clock < end else local.date() + timedelta(days=1)
    return datetime.combine(end_day, end, tzinfo=local.tzinfo)


def local_midnight(now: datetime, time_zone: str) -> datetime:
    """The start of the person's current day, for the daily cap."""
    local = now.astimezone(ZoneInfo(time_zone))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def escalation_channel(
    preferred: ChannelName, already: Iterable[ChannelName], reachable: Iterable[ChannelName]
) -> ChannelName | None:
    """A second channel for an unacknowledged critical alert, one the person can be reached on."""
    used, can_reach = set(already), set(reachable)
    for channel in (preferred, *ESCALATION_ORDER):
        if channel not in used and channel in can_reach:
            return channel
    return None


def retry_delay_s(attempts: int, base_s: float, max_s: float, jitter: float) -> float:
    """Exponential backoff with jitter in [0, 1) so retries of many rows spread out."""
    return float(min(max_s, base_s * 2 ** max(attempts - 1, 0)) * (0.75 + jitter / 2))
