"""Signed webhooks: what a receiver checks, against a real HTTP receiver and the outbox."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime

import pytest

from notify import service
from notify.channels.webhook import WebhookChannel
from notify.models import ChannelName, PreferenceUpdate, ProfileUpdate
from notify.signing import SignatureError, new_secret, sign, signature_headers, verify
from tests.notify.conftest import FakeClock, ReceivedCall, WebhookReceiver, World, make_outbox

NOON_TOKYO = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
BODY = b'{"kind":"ev.charge_complete","title":"Bolt is charged"}'


def _expected_signature(secret: str, call: ReceivedCall) -> str:
    """The signature computed from the documented recipe alone (not with notify's code)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{call.headers['webhook-id']}.{call.headers['webhook-timestamp']}.".encode()
    digest = hmac.new(key, signed + call.body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def test_a_signature_matches_the_documented_recipe_and_verifies() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    headers = signature_headers(secret, "key-1", BODY, now=1_700_000_000)
    call = ReceivedCall(headers, BODY, 200)
    assert headers["webhook-signature"] == _expected_signature(secret, call)
    assert verify(secret, headers, BODY, now=1_700_000_010) == "key-1"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("body", "no signature matches"),
        ("secret", "no signature matches"),
        ("id", "no signature matches"),
        ("stale", "outside the tolerance window"),
        ("future", "outside the tolerance window"),
        ("missing", "missing header"),
    ],
)
def test_a_receiver_refuses_altered_replayed_or_incomplete_calls(change: str, reason: str) -> None:
    secret, sent_at = new_secret(), 1_700_000_000
    headers = signature_headers(secret, "key-1", BODY, now=sent_at)
    body, key, now = BODY, secret, sent_at + 1
    if change == "body":
        body = BODY.replace(b"charged", b"stolen!")
    elif change == "secret":
        key = new_secret()
    elif change == "id":
        headers["webhook-id"] = "key-2"  # replayed under another idempotency key
    elif change == "stale":
        now = sent_at + 301  # the default window is five minutes either way
    elif change == "future":
        now = sent_at - 301
    else:
        del headers["webhook-signature"]
    with pytest.raises(SignatureError, match=reason):
        verify(key, headers, body, now=now)


def test_any_of_several_signatures_may_match_during_a_rotation() -> None:
    old, new, sent_at = new_secret(), new_secret(), 1_700_000_000
    both = f"{sign(old, 'k', sent_at, BODY)} {sign(new, 'k', sent_at, BODY)}"
    headers = {"Webhook-Id": "k", "Webhook-Timestamp": str(sent_at), "Webhook-Signature": both}
    assert verify(old, headers, BODY, now=sent_at) == "k"
    assert verify(new, headers, BODY, now=sent_at) == "k"


def test_webhook_calls_are_signed_per_webhook_and_retries_keep_their_id(
    world: World, webhook: WebhookReceiver
) -> None:
    aiko = world.customer("aiko", language="ja")
    world.device("ev-1", "ev", "Bolt", "aiko")
    service.set_preference(
        world.db, aiko, PreferenceUpdate(channels=[ChannelName.FEED, ChannelName.WEBHOOK])
    )
    created = service.update_profile(
        world.db,
        aiko,
        ProfileUpdate(webhook_url=webhook.url),
        world.cipher,
        allow_private_webhooks=True,
    )
    secret = created.webhook_secret
    assert secret is not None and created.webhook_signed
    # Shown once: neither reading the profile nor saving it unchanged shows it again.
    assert service.get_profile(world.db, aiko, world.cipher).webhook_secret is None
    again = service.update_profile(
        world.db,
        aiko,
        ProfileUpdate(webhook_url=webhook.url),
        world.cipher,
        allow_private_webhooks=True,
    )
    assert again.webhook_secret is None and again.webhook_signed

    outbox = make_outbox(
        world.cipher,
        {ChannelName.WEBHOOK: WebhookChannel(2, allow_private=True)},
        clock=FakeClock(NOON_TOKYO),
    )
    world.moment("ev-1", "ev.charge_complete", {"soc_pct": 80, "range_km": 320})
    outbox.fan_out(world.db)
    webhook.status = 503
    assert outbox.deliver_due(world.db) == 1
    webhook.status = 200
    time.sleep(1.1)  # the retry is signed in a later second
    world.db.execute("UPDATE notifications SET next_attempt_at = now() WHERE status = 'pending'")
    assert outbox.deliver_due(world.db) == 1

    first, retry = webhook.received
    key = str(world.outbox("aiko", "webhook")[0]["idempotency_key"])
    for call in (first, retry):
        assert call.headers["webhook-signature"] == _expected_signature(secret, call)
        assert call.headers["webhook-id"] == call.headers["idempotency-key"] == key
        assert verify(secret, call.headers, call.body) == key
        with pytest.raises(SignatureError):
            verify(secret, call.headers, call.body + b" ")
    assert first.body == retry.body
    assert int(retry.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"])
    assert first.headers["webhook-signature"] != retry.headers["webhook-signature"]


def test_a_rotated_secret_signs_from_then_on_and_the_old_one_stops_verifying(
    world: World, webhook: WebhookReceiver
) -> None:
    ben = world.customer("ben")
    world.device("ev-1", "ev", "Bolt", "ben")
    service.set_preference(
        world.db, ben, PreferenceUpdate(channels=[ChannelName.FEED, ChannelName.WEBHOOK])
    )
    profile = ProfileUpdate(webhook_url=webhook.url)
    old = service.update_profile(world.db, ben, profile, world.cipher, allow_private_webhooks=True)
    rotated = service.update_profile(
        world.db,
        ben,
        profile.model_copy(update={"rotate_webhook_secret": True}),
        world.cipher,
        allow_private_webhooks=True,
    )
    assert old.webhook_secret and rotated.webhook_secret
    assert rotated.webhook_secret != old.webhook_secret
    outbox = make_outbox(world.cipher, {ChannelName.WEBHOOK: WebhookChannel(2, allow_private=True)})
    world.moment("ev-1", "ev.charge_complete", {"soc_pct": 80, "range_km": 320})
    outbox.fan_out(world.db)
    outbox.deliver_due(world.db)
    (call,) = webhook.received
    verify(rotated.webhook_secret, call.headers, call.body)
    with pytest.raises(SignatureError):
        verify(old.webhook_secret, call.headers, call.body)
