"""The feed and preference routes, through the real app, as customers A and B."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.api.conftest import TestUser, insert_device
from tests.notify.conftest import make_outbox

FEED = "/api/v1/feed"
PREFS = "/api/v1/preferences"


def _posts(db: Any, cipher: Any, customer: TestUser, count: int) -> str:
    uid = insert_device(db, customer.customer_id)
    device_id = db.execute("SELECT id FROM devices WHERE uid = %s", (uid,)).fetchone()["id"]
    for index in range(count):
        db.execute(
            """INSERT INTO moments (device_id, kind, severity, occurred_at, facts, dedup_key)
               VALUES (%s, 'ev.charge_complete', 'info', now(), %s, %s)""",
            (device_id, '{"soc_pct": 80, "range_km": 300}', f"{uid}-{index}"),
        )
    outbox = make_outbox(cipher, cooldown_s=0)
    while outbox.fan_out(db):
        pass
    return uid


def test_feed_pages_with_a_cursor_and_tracks_read_state(
    api: TestClient, db: Any, cipher: Any, customer_a: TestUser
) -> None:
    _posts(db, cipher, customer_a, 3)
    first = api.get(FEED, params={"limit": 2}, headers=customer_a.headers)
    assert first.status_code == 200, first.text
    page = first.json()
    assert len(page["items"]) == 2 and page["unread"] == 3 and page["next_cursor"]
    assert page["items"][0]["body"].startswith("Hi, it's your car. I'm charged to 80%")
    second = api.get(
        FEED, params={"limit": 2, "cursor": page["next_cursor"]}, headers=customer_a.headers
    ).json()
    ids = [p["id"] for p in page["items"] + second["items"]]
    assert len(ids) == 3 and ids == sorted(ids, reverse=True) and second["next_cursor"] is None

    assert api.post(f"{FEED}/{ids[0]}/read", headers=customer_a.headers).status_code == 204
    unread = api.get(FEED, params={"unread_only": True}, headers=customer_a.headers).json()
    assert [p["id"] for p in unread["items"]] == ids[1:] and unread["unread"] == 2
    assert api.delete(f"{FEED}/{ids[0]}/read", headers=customer_a.headers).status_code == 204
    assert api.get(FEED, headers=customer_a.headers).json()["unread"] == 3
    tampered = page["next_cursor"][:-2] + "xx"
    assert api.get(FEED, params={"cursor": tampered}, headers=customer_a.headers).status_code == 422


def test_reactions_remind_later_and_mute(
    api: TestClient, db: Any, cipher: Any, customer_a: TestUser
) -> None:
    uid = _posts(db, cipher, customer_a, 1)
    post = api.get(FEED, headers=customer_a.headers).json()["items"][0]
    url = f"{FEED}/{post['id']}/reactions"
    assert api.post(url, json={"reaction": "thanks"}, headers=customer_a.headers).status_code == 204
    assert (
        api.post(
            url, json={"reaction": "remind_later", "remind_after_h": 2}, headers=customer_a.headers
        ).status_code
        == 204
    )
    later = api.get(FEED, headers=customer_a.headers).json()
    assert later["unread"] == 0 and later["items"][0]["remind_at"] is not None
    assert later["items"][0]["reactions"] == ["remind_later", "thanks"]
    db.execute("UPDATE feed_posts SET remind_at = now() - interval '1 minute'")
    assert api.get(FEED, headers=customer_a.headers).json()["unread"] == 1

    assert api.post(url, json={"reaction": "mute"}, headers=customer_a.headers).status_code == 204
    scopes = api.get(PREFS, headers=customer_a.headers).json()["scopes"]
    assert scopes == [
        {
            "device_uid": uid,
            "moment_kind": "ev.charge_complete",
            "channels": None,
            "delivery": "off",
        }
    ]
    assert api.post(url, json={"reaction": "hug"}, headers=customer_a.headers).status_code == 422


def test_customers_cannot_touch_each_others_feed_or_devices(
    api: TestClient, db: Any, cipher: Any, customer_a: TestUser, customer_b: TestUser
) -> None:
    uid = _posts(db, cipher, customer_a, 1)
    post_id = api.get(FEED, headers=customer_a.headers).json()["items"][0]["id"]
    assert api.get(FEED, headers=customer_b.headers).json()["items"] == []
    assert api.post(f"{FEED}/{post_id}/read", headers=customer_b.headers).status_code == 404
    reaction = {"reaction": "mute"}
    assert (
        api.post(
            f"{FEED}/{post_id}/reactions", json=reaction, headers=customer_b.headers
        ).status_code
        == 404
    )
    put = api.put(
        f"{PREFS}/scopes", json={"device_uid": uid, "delivery": "off"}, headers=customer_b.headers
    )
    assert put.status_code == 404
    assert api.get(FEED).status_code == 401


def test_preferences_and_profile_round_trip_and_refuse_bad_input(
    api: TestClient, customer_a: TestUser
) -> None:
    headers = customer_a.headers
    ok = api.put(
        f"{PREFS}/scopes",
        json={"channels": ["feed", "email"], "delivery": "digest"},
        headers=headers,
    )
    assert ok.status_code == 204
    kind = {"moment_kind": "ev.charge_complete", "channels": ["webhook"]}
    assert api.put(f"{PREFS}/scopes", json=kind, headers=headers).status_code == 204
    profile = {
        "quiet_start": "22:00:00",
        "quiet_end": "07:00:00",
        "daily_cap": 5,
        "chat_urls": ["json://chat.example.com/hook"],
    }
    saved = api.put(f"{PREFS}/profile", json=profile, headers=headers)
    assert saved.status_code == 200, saved.text
    assert saved.json()["chat_url_count"] == 1 and "chat_urls" not in saved.json()
    everything = api.get(PREFS, headers=headers).json()
    assert everything["profile"]["quiet_start"] == "22:00:00"
    assert [s["channels"] for s in everything["scopes"]] == [["feed", "email"], ["webhook"]]
    removed = api.delete(
        f"{PREFS}/scopes", params={"moment_kind": "ev.charge_complete"}, headers=headers
    )
    assert removed.status_code == 204

    bad = [
        ("scopes", {"channels": ["pigeon"]}),
        ("scopes", {"delivery": "instant", "owner_id": 1}),
        ("scopes", {}),
        ("profile", {"quiet_start": "22:00:00"}),
        ("profile", {"webhook_url": "http://127.0.0.1:9/x"}),
        ("profile", {"webhook_url": "http://169.254.169.254/latest/meta-data"}),
        ("profile", {"daily_cap": -1}),
        ("profile", {"webhook_url": "https://example.com/\u0000x"}),
        ("profile", {"chat_urls": ["json://example.com/\u0000"]}),
        ("scopes", {"moment_kind": "ev.\u0000", "delivery": "off"}),
    ]
    for path, body in bad:
        answer = api.put(f"{PREFS}/{path}", json=body, headers=headers)
        assert answer.status_code == 422, (path, body, answer.text)


def test_erasing_a_customer_removes_their_messages(
    api: TestClient, db: Any, cipher: Any, customer_a: TestUser, customer_b: TestUser
) -> None:
    from notify.repo import erase_customer

    _posts(db, cipher, customer_a, 2)
    _posts(db, cipher, customer_b, 1)
    post = api.get(FEED, headers=customer_a.headers).json()["items"][0]
    react = {"reaction": "thanks"}
    api.post(f"{FEED}/{post['id']}/reactions", json=react, headers=customer_a.headers)
    assert customer_a.customer_id is not None
    erase_customer(db, customer_a.customer_id)
    left = db.execute("SELECT customer_id, count(*) AS n FROM notifications GROUP BY 1").fetchall()
    assert left == [{"customer_id": customer_b.customer_id, "n": 2}]
    assert api.get(FEED, headers=customer_b.headers).json()["unread"] == 1
    assert db.execute("SELECT count(*) AS n FROM feed_reactions").fetchone()["n"] == 0


def test_a_webhook_secret_is_shown_once_when_the_webhook_is_set_and_on_rotation(
    api: TestClient, customer_a: TestUser
) -> None:
    headers = customer_a.headers
    hook = {"webhook_url": "https://1.1.1.1/kizuna-hook"}  # public address: no DNS needed
    created = api.put(f"{PREFS}/profile", json=hook, headers=headers)
    assert created.status_code == 200, created.text
    secret = created.json()["webhook_secret"]
    assert secret.startswith("whsec_") and created.json()["webhook_signed"] is True
    shown = api.get(PREFS, headers=headers).json()["profile"]
    assert shown["webhook_secret"] is None and shown["webhook_signed"] is True
    unchanged = api.put(f"{PREFS}/profile", json=hook, headers=headers).json()
    assert unchanged["webhook_secret"] is None
    rotated = api.put(
        f"{PREFS}/profile", json={**hook, "rotate_webhook_secret": True}, headers=headers
    ).json()
    assert rotated["webhook_secret"].startswith("whsec_") and rotated["webhook_secret"] != secret
    removed = api.put(f"{PREFS}/profile", json={}, headers=headers).json()
    assert removed["webhook_signed"] is False and removed["webhook_secret"] is None
    refused = api.put(f"{PREFS}/profile", json={"rotate_webhook_secret": True}, headers=headers)
    assert refused.status_code == 422
