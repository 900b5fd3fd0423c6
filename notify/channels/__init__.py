"""Delivery channels: one small protocol, one module per channel, a registry built from settings.

The registry is the deliberate seam of notify: tests and deployments pass their own channels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from app.settings import Settings
from notify.models import ChannelName, Outgoing


class Channel(Protocol):
    """Delivers one notification or raises a TransientDeliveryError/PermanentDeliveryError."""

    def deliver(self, message: Outgoing) -> None: ...


ChannelRegistry = Mapping[ChannelName, Channel]


def build_channels(settings: Settings) -> dict[ChannelName, Channel]:
    """The real channels configured by settings (the in-app feed is written by the fan-out)."""
    from notify.channels.chat import ChatChannel
    from notify.channels.email import EmailChannel
    from notify.channels.mqtt_push import MqttPushChannel
    from notify.channels.webhook import WebhookChannel

    config = settings.notify
    channels: dict[ChannelName, Channel] = {
        ChannelName.WEBHOOK: WebhookChannel(
            config.delivery_timeout_s, allow_private=config.allow_private_webhooks
        ),
        ChannelName.CHAT: ChatChannel(),
        ChannelName.MQTT: MqttPushChannel(settings),
    }
    if config.smtp_url:
        channels[ChannelName.EMAIL] = EmailChannel(
            config.smtp_url, config.from_address, config.delivery_timeout_s
        )
    return channels
