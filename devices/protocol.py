"""The MQTT protocol contract between devices and Kizuna (v1), documented in docs/protocol.md.

This module is the only part of the platform the simulator may import: topic names and the
shape of every payload. It has no I/O.

Topics (`{prefix}` defaults to `kizuna`):

    {prefix}/v1/devices/{uid}/telemetry            device → platform, QoS 1
    {prefix}/v1/devices/{uid}/events               device → platform, QoS 1
    {prefix}/v1/devices/{uid}/status               device → platform, QoS 1, retained, last will
    {prefix}/v1/devices/{uid}/commands/{id}        platform → device, QoS 1
    {prefix}/v1/devices/{uid}/command-acks         device → platform, QoS 1
    {prefix}/v1/devices/{uid}/desired              platform → device, QoS 1, retained
    {prefix}/v1/owners/{customer_public_id}/feed   platform → owner's app, QoS 1
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

PROTOCOL_VERSION = "v1"
DEVICE_UID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
METRIC_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
MAX_READINGS_PER_MESSAGE = 500
MAX_METRICS_PER_READING = 64
MAX_STRING_VALUE_LENGTH = 256

_DEVICE_UID_RE = re.compile(DEVICE_UID_PATTERN)

DeviceUid = Annotated[str, StringConstraints(pattern=DEVICE_UID_PATTERN)]
MetricName = Annotated[str, StringConstraints(pattern=METRIC_NAME_PATTERN)]
MetricValue = (
    Annotated[bool, Field(strict=True)]
    | Annotated[int, Field(strict=True, ge=-(2**53), le=2**53)]
    | Annotated[float, Field(strict=True, allow_inf_nan=False)]
    | Annotated[str, StringConstraints(max_length=MAX_STRING_VALUE_LENGTH)]
)


class Channel(StrEnum):
    """The last topic level of a device's own topics."""

    TELEMETRY = "telemetry"
    EVENTS = "events"
    STATUS = "status"
    COMMANDS = "commands"
    COMMAND_ACKS = "command-acks"
    DESIRED = "desired"


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Reading(_Message):
    """One sample of a device's metrics at one device time."""

    seq: int = Field(ge=0, le=2**63 - 1, description="Per-device sequence number, increasing.")
    ts: AwareDatetime = Field(description="Device time (RFC 3339 with offset).")
    metrics: dict[MetricName, MetricValue] = Field(max_length=MAX_METRICS_PER_READING)


class TelemetryBatch(_Message):
    """Several readings in one MQTT message (a device replaying its offline buffer)."""

    readings: list[Reading] = Field(min_length=1, max_length=MAX_READINGS_PER_MESSAGE)


class DeviceEvent(_Message):
    """Something discrete happened on the device (door opened, charge complete)."""

    seq: int = Field(ge=0, le=2**63 - 1)
    ts: AwareDatetime
    event: MetricName
    data: dict[MetricName, MetricValue] = Field(default_factory=dict, max_length=32)


class DeviceStatus(_Message):
    """Connection state, published retained on connect and as the last will."""

    state: Literal["online", "offline"]
    ts: AwareDatetime | None = None
    firmware: str | None = Field(default=None, max_length=64)


class CommandRequest(_Message):
    """A command sent to a device."""

    command_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    name: MetricName
    args: dict[MetricName, MetricValue] = Field(default_factory=dict)
    expires_at: AwareDatetime


class CommandAck(_Message):
    """A device's answer to a command."""

    command_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    status: Literal["accepted", "done", "rejected", "failed"]
    ts: AwareDatetime
    detail: str | None = Field(default=None, max_length=256)


class DesiredState(_Message):
    """The state the platform wants the device to be in (retained)."""

    version: int = Field(ge=0)
    values: dict[MetricName, MetricValue]


def device_topic(prefix: str, uid: str, channel: Channel, *suffix: str) -> str:
    """The topic for one of a device's channels."""
    return "/".join((prefix, PROTOCOL_VERSION, "devices", uid, channel.value, *suffix))


def device_filter(prefix: str, channel: Channel | Literal["+", "#"] = "#") -> str:
    """A subscription filter matching one channel (or all) of every device."""
    last = channel.value if isinstance(channel, Channel) else channel
    return "/".join((prefix, PROTOCOL_VERSION, "devices", "+", last))


def owner_feed_topic(prefix: str, customer_public_id: str) -> str:
    """Where the platform pushes an owner's new feed posts to their app."""
    return "/".join((prefix, PROTOCOL_VERSION, "owners", customer_public_id, "feed"))


_CHANNELS = {channel.value: channel for channel in Channel}


class TopicError(ValueError):
    """A topic that is not one of a device's own topics."""


def parse_device_topic(prefix: str, topic: str) -> tuple[str, Channel, tuple[str, ...]]:
    """Split `{prefix}/v1/devices/{uid}/{channel}[/...]` into (uid, channel, rest)."""
    parts = topic.split("/")
    if len(parts) < 5 or parts[0] != prefix or parts[1] != PROTOCOL_VERSION:
        raise TopicError("not a Kizuna v1 topic")
    if parts[2] != "devices":
        raise TopicError("not a device topic")
    uid = parts[3]
    if not _DEVICE_UID_RE.match(uid):
        raise TopicError("device id in topic is not valid")
    channel = _CHANNELS.get(parts[4])  # a dict lookup: this runs for every message
    if channel is None:
        raise TopicError(f"unknown channel {parts[4][:32]!r}")
    return uid, channel, tuple(parts[5:])


def utc_iso(moment: datetime) -> str:
    """RFC 3339 text of an aware datetime, as devices are expected to send it."""
    return moment.isoformat().replace("+00:00", "Z")


def json_payload(message: BaseModel) -> bytes:
    """Serialize a protocol message as compact JSON bytes."""
    return message.model_dump_json(exclude_none=True).encode("utf-8")


def describe() -> dict[str, Any]:
    """A machine-readable summary of the protocol (served by the API)."""
    return {
        "version": PROTOCOL_VERSION,
        "max_readings_per_message": MAX_READINGS_PER_MESSAGE,
        "max_metrics_per_reading": MAX_METRICS_PER_READING,
        "channels": [c.value for c in Channel],
    }
