"""SSRF: webhook URLs a customer may register never point inside the network."""

from __future__ import annotations

import pytest

from notify.channels.webhook import check_webhook_url
from notify.errors import PermanentDeliveryError


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8000/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/hook",
        "http://192.168.1.1/hook",
        "file:///etc/passwd",
        "gopher://example.com/",
        "http://user:pass@example.com/hook",
    ],
)
def test_internal_or_non_http_webhook_urls_are_refused(url: str) -> None:
    with pytest.raises(PermanentDeliveryError):
        check_webhook_url(url, allow_private=False)
