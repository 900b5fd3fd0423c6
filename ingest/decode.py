"""Decode stage: raw topic and bytes → a typed protocol message, validated once, or a reason."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from devices.protocol import (
    Channel,
    CommandAck,
    DeviceEvent,
    DeviceStatus,
    Reading,
    TelemetryBatch,
    TopicError,
    parse_device_topic,
)
from ingest.config import IngestConfig
from ingest.errors import RejectedMessage
from ingest.models import DeadLetter, DeadLetterReason, DeviceEntry, Incoming, Parsed

MAX_DETAIL = 500
_ESCAPED_NUL = b"\\u0000"
_STORED_CHANNELS = (Channel.TELEMETRY, Channel.EVENTS)


def decode(incoming: Incoming, prefix: str, config: IngestConfig) -> Parsed | DeadLetter:
    """Topic and JSON checks that need no database; never raises."""
    try:
        return _decode(incoming, prefix, config)
    except RejectedMessage as exc:
        return DeadLetter(incoming, exc.reason, exc.detail, exc.device_uid)


def _decode(incoming: Incoming, prefix: str, config: IngestConfig) -> Parsed:
    try:
        uid, channel, rest = parse_device_topic(prefix, incoming.topic)
    except TopicError as exc:
        raise RejectedMessage(DeadLetterReason.BAD_TOPIC, str(exc)) from None
    if rest:
        raise RejectedMessage(DeadLetterReason.BAD_TOPIC, "extra topic levels", uid)
    size = len(incoming.payload)
    if size > config.max_payload_bytes:
        raise RejectedMessage(
            DeadLetterReason.PAYLOAD_TOO_LARGE,
            f"{size} bytes; the limit is {config.max_payload_bytes}",
            uid,
        )
    if incoming.retain and channel in _STORED_CHANNELS:
        # A retained reading is replayed to every new subscriber: it is never fresh data.
        raise RejectedMessage(
            DeadLetterReason.RETAINED_TELEMETRY, "telemetry and events must not be retained", uid
        )
    body = _parse_body(channel, incoming.payload, uid)
    if _ESCAPED_NUL in incoming.payload and _has_nul(body):
        # PostgreSQL text and jsonb cannot hold U+0000: refuse now rather than fail the batch.
        raise RejectedMessage(DeadLetterReason.NUL_CHARACTER, "U+0000 in a string", uid)
    return Parsed(incoming, uid, channel, body)


def _parse_body(
    channel: Channel, payload: bytes, uid: str
) -> list[Reading] | DeviceEvent | DeviceStatus | CommandAck:
    try:
        if channel is Channel.TELEMETRY:
            if b'"readings"' in payload:
                return list(TelemetryBatch.model_validate_json(payload).readings)
            return [Reading.model_validate_json(payload)]
        if channel is Channel.EVENTS:
            return DeviceEvent.model_validate_json(payload)
        if channel is Channel.STATUS:
            return DeviceStatus.model_validate_json(payload)
        if channel is Channel.COMMAND_ACKS:
            return CommandAck.model_validate_json(payload)
    except ValidationError as exc:
        raise _rejection(exc, uid) from None
    raise RejectedMessage(DeadLetterReason.BAD_TOPIC, f"devices do not publish on {channel}", uid)


def _rejection(exc: ValidationError, uid: str) -> RejectedMessage:
    errors = exc.errors(include_url=False, include_input=False)
    if errors and errors[0]["type"] in ("json_invalid", "json_type"):
        reason = DeadLetterReason.INVALID_JSON
    else:
        reason = DeadLetterReason.SCHEMA_INVALID
    detail = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" if e["loc"] else e["msg"]
        for e in errors[:5]
    )
    return RejectedMessage(reason, detail[:MAX_DETAIL], uid)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    if hasattr(value, "model_dump"):
        return _has_nul(value.model_dump())
    return False


def check_against_model(parsed: Parsed, device: DeviceEntry) -> None:
    """Raise RejectedMessage when the message does not fit the device's product model."""
    if device.decommissioned:
        raise RejectedMessage(
            DeadLetterReason.DEVICE_DECOMMISSIONED, "device is decommissioned", parsed.uid
        )
    body = parsed.body
    if isinstance(body, list):
        problems = _reading_problems(device, body)
        if problems:
            raise RejectedMessage(
                DeadLetterReason.METRIC_INVALID, "; ".join(problems)[:MAX_DETAIL], parsed.uid
            )
    elif isinstance(body, DeviceEvent) and body.event not in device.model.events:
        raise RejectedMessage(
            DeadLetterReason.UNKNOWN_EVENT,
            f"{body.event} is not an event of {device.model.id}",
            parsed.uid,
        )


def _reading_problems(device: DeviceEntry, readings: Iterable[Reading]) -> list[str]:
    problems: list[str] = []
    for reading in readings:
        for problem in device.model.check_metrics(reading.metrics):
            problems.append(f"seq {reading.seq}: {problem}")
        if len(problems) >= 5:
            break
    return problems
