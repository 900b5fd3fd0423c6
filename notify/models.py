"""Typed shapes of notify: channels, preferences, profiles, feed posts and outgoing messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

MomentKind = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")]


class ChannelName(StrEnum):
    """Where a notification can go."""

    FEED = "feed"
    EMAIL = "email"
    WEBHOOK = "webhook"
    MQTT = "mqtt"
    CHAT = "chat"


INTERRUPTING_CHANNELS = frozenset(c for c in ChannelName if c is not ChannelName.FEED)


class Delivery(StrEnum):
    """How moments in a preference's scope are delivered."""

    INSTANT = "instant"
    DIGEST = "digest"
    OFF = "off"


class Reaction(StrEnum):
    """What a person can answer to a feed post."""

    THANKS = "thanks"
    REMIND_LATER = "remind_later"
    MUTE = "mute"


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PreferenceUpdate(_Input):
    """Set channels and/or delivery for all devices/kinds, one device, one kind, or both."""

    device_uid: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    moment_kind: MomentKind | None = None
    channels: list[ChannelName] | None = Field(default=None, max_length=len(ChannelName))
    delivery: Delivery | None = None

    @model_validator(mode="after")
    def _something_to_set(self) -> PreferenceUpdate:
        if self.channels is None and self.delivery is None:
            raise ValueError("set channels, delivery or both")
        if self.channels is not None and len(set(self.channels)) != len(self.channels):
            raise ValueError("channels must not repeat")
        return self


class PreferencePublic(BaseModel):
    """One stored preference."""

    device_uid: str | None
    moment_kind: str | None
    channels: list[ChannelName] | None
    delivery: Delivery | None


class ProfileUpdate(_Input):
    """Per-person settings: quiet hours (local time), daily cap, digest hour, addresses."""

    quiet_start: time | None = None
    quiet_end: time | None = None
    daily_cap: int = Field(default=10, ge=0, le=1000)
    digest_hour: int = Field(default=19, ge=0, le=23)
    escalation_channel: ChannelName = ChannelName.EMAIL
    webhook_url: str | None = Field(default=None, max_length=2048)
    chat_urls: list[Annotated[str, StringConstraints(max_length=1024)]] = Field(
        default_factory=list, max_length=5
    )
    rotate_webhook_secret: bool = Field(
        default=False, description="Replace the webhook's signing secret (shown once)."
    )

    @field_validator("webhook_url", "chat_urls")
    @classmethod
    def _printable(cls, value: Any) -> Any:
        texts = value if isinstance(value, list) else [value]
        if any(t is not None and any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in t) for t in texts):
            raise ValueError("URLs must not contain control characters")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ProfileUpdate:
        if (self.quiet_start is None) != (self.quiet_end is None):
            raise ValueError("quiet_start and quiet_end go together")
        if self.escalation_channel is ChannelName.FEED:
            raise ValueError("the escalation channel must be one that interrupts")
        if self.rotate_webhook_secret and self.webhook_url is None:
            raise ValueError("rotate_webhook_secret needs a webhook_url")
        for moment in (self.quiet_start, self.quiet_end):
            if moment is not None and moment.tzinfo is not None:
                raise ValueError("quiet hours are local times without an offset")
        return self


class ProfilePublic(BaseModel):
    """Per-person settings as shown back (chat URLs carry tokens: only their count).

    `webhook_secret` is filled only in the answer to the change that created it (a new or
    changed webhook URL, or a rotation): it is shown once and never again.
    """

    quiet_start: time | None
    quiet_end: time | None
    daily_cap: int
    digest_hour: int
    escalation_channel: ChannelName
    webhook_url: str | None
    chat_url_count: int
    webhook_signed: bool = False
    webhook_secret: str | None = None


class FeedPost(BaseModel):
    """One post in a person's friend feed."""

    id: int
    device_uid: str | None
    kind: str
    severity: str
    title: str
    body: str
    created_at: datetime
    read: bool
    remind_at: datetime | None
    reactions: list[Reaction]


class FeedPage(BaseModel):
    """A page of the feed, newest first; pass next_cursor to get older posts."""

    posts: list[FeedPost]
    next_cursor: int | None
    unread: int


class ReactionRequest(_Input):
    """A reaction to a post; remind_later may say after how many hours (default 3)."""

    reaction: Reaction
    remind_after_h: float = Field(default=3, gt=0, le=24 * 14)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A notification ready for a channel: content plus the recipient's addresses."""

    notification_id: int
    idempotency_key: str
    channel: ChannelName
    kind: str
    severity: str
    purpose: str
    title: str
    body: str
    language: str
    created_at: datetime
    customer_public_id: str
    device_uid: str | None
    email: str | None = None
    webhook_url: str | None = None
    chat_urls: tuple[str, ...] = ()
    webhook_secret: str | None = field(default=None, repr=False)
    # Addresses from the deployment's settings (operators), not typed in by a customer:
    # exempt from the public-address check that guards customers' webhooks.
    trusted_destination: bool = False

    def payload(self) -> dict[str, Any]:
        """The JSON document sent to webhooks and the owner's app (no addresses)."""
        return {
            "id": self.notification_id,
            "idempotency_key": self.idempotency_key,
            "kind": self.kind,
            "severity": self.severity,
            "purpose": self.purpose,
            "title": self.title,
            "body": self.body,
            "language": self.language,
            "device_uid": self.device_uid,
            "created_at": self.created_at.isoformat(),
        }
