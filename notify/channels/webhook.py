"""Webhooks: an HTTP POST of the notification, signed, with an Idempotency-Key header."""

from __future__ import annotations

import ipaddress
import json
import socket
from urllib.parse import urlsplit

import httpx

from notify.errors import PermanentDeliveryError, TransientDeliveryError
from notify.models import Outgoing
from notify.signing import signature_headers

RETRYABLE_STATUS = frozenset({408, 425, 429})


def check_webhook_url(url: str, *, allow_private: bool) -> None:
    """Refuse URLs that are not http(s) or that resolve to internal addresses (SSRF)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PermanentDeliveryError("webhook URL must be http(s)://host/...")
    if parts.username or parts.password:
        raise PermanentDeliveryError("webhook URL must not carry credentials")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise TransientDeliveryError("webhook host does not resolve") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise PermanentDeliveryError("webhook URL points at a non-public address")


def encode_body(message: Outgoing) -> bytes:
    """The exact bytes sent (and signed): compact UTF-8 JSON of the payload."""
    return json.dumps(message.payload(), ensure_ascii=False, separators=(",", ":")).encode()


class WebhookChannel:
    """POSTs JSON; 2xx is delivered, 408/425/429/5xx and network errors retry, other 4xx fail."""

    def __init__(self, timeout_s: float, *, allow_private: bool = False) -> None:
        self._allow_private = allow_private
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False)

    def deliver(self, message: Outgoing) -> None:
        """Send the notification to the webhook, signed when the webhook has a secret."""
        if not message.webhook_url:
            raise PermanentDeliveryError("recipient has no webhook URL")
        if not message.trusted_destination:
            check_webhook_url(message.webhook_url, allow_private=self._allow_private)
        body = encode_body(message)
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": message.idempotency_key,
            "User-Agent": "kizuna-notify/1",
        }
        if message.webhook_secret:
            # Signed at each attempt: a retry carries a fresh timestamp and the same id.
            headers |= signature_headers(message.webhook_secret, message.idempotency_key, body)
        try:
            response = self._client.post(message.webhook_url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise TransientDeliveryError(f"webhook unreachable: {type(exc).__name__}") from exc
        status = response.status_code
        if 200 <= status < 300:
            return
        if status >= 500 or status in RETRYABLE_STATUS:
            raise TransientDeliveryError(f"webhook answered {status}")
        raise PermanentDeliveryError(f"webhook answered {status}")

    def close(self) -> None:
        """Release the HTTP connections."""
        self._client.close()
