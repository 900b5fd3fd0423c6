"""Chat services (Slack, Discord, Telegram, LINE...) through apprise URLs."""

from __future__ import annotations

import apprise

from notify.errors import PermanentDeliveryError, TransientDeliveryError
from notify.models import Outgoing


class ChatChannel:
    """Sends to every apprise URL the person configured; any failure retries the whole send."""

    def deliver(self, message: Outgoing) -> None:
        """Notify the person's chat services."""
        if not message.chat_urls:
            raise PermanentDeliveryError("recipient has no chat service configured")
        sender = apprise.Apprise()
        for url in message.chat_urls:
            if not sender.add(url):
                raise PermanentDeliveryError("a chat service URL is not understood")
        if not sender.notify(title=message.title, body=message.body):
            raise TransientDeliveryError("a chat service did not accept the message")
