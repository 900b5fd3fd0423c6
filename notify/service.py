"""Use cases people reach through the API: their feed, reactions, preferences and profile."""

from __future__ import annotations

from typing import Any

from notify import repo
from notify.channels.webhook import check_webhook_url
from notify.errors import DeliveryError, DeviceNotShared, PostNotFound, PreferenceError
from notify.models import (
    ChannelName,
    Delivery,
    FeedPage,
    FeedPost,
    PreferencePublic,
    PreferenceUpdate,
    ProfilePublic,
    ProfileUpdate,
    Reaction,
    ReactionRequest,
)
from notify.signing import new_secret
from store.encryption import FieldCipher

MAX_PAGE = 100

# ---------------------------------------------------------------- feed


def feed_page(
    conn: repo.Conn,
    customer_id: int,
    *,
    cursor: int | None = None,
    limit: int = 20,
    unread_only: bool = False,
) -> FeedPage:
    """A page of a person's feed, newest first; `cursor` is the last id of the previous page."""
    if not 1 <= limit <= MAX_PAGE:
        raise PreferenceError(f"limit must be between 1 and {MAX_PAGE}")
    rows = conn.execute(
        f"""SELECT p.id, d.uid AS device_uid, p.kind, p.severity, p.title, p.body,
                   p.created_at, p.remind_at, {_UNREAD} AS unread,
                   coalesce(array_agg(r.reaction ORDER BY r.reaction)
                            FILTER (WHERE r.reaction IS NOT NULL), '{{}}') AS reactions
            FROM feed_posts p
            LEFT JOIN devices d ON d.id = p.device_id
            LEFT JOIN feed_reactions r ON r.post_id = p.id
            WHERE p.customer_id = %(cid)s AND (%(cursor)s::bigint IS NULL OR p.id < %(cursor)s)
              AND (NOT %(unread_only)s OR {_UNREAD})
            GROUP BY p.id, d.uid ORDER BY p.id DESC LIMIT %(limit)s""",
        {"cid": customer_id, "cursor": cursor, "unread_only": unread_only, "limit": limit + 1},
    ).fetchall()
    posts = [_post(row) for row in rows[:limit]]
    next_cursor = posts[-1].id if len(rows) > limit else None
    return FeedPage(posts=posts, next_cursor=next_cursor, unread=unread_count(conn, customer_id))


_UNREAD = "(p.read_at IS NULL OR p.remind_at <= now())"


def _post(row: dict[str, Any]) -> FeedPost:
    return FeedPost(
        id=row["id"],
        device_uid=row["device_uid"],
        kind=row["kind"],
        severity=row["severity"],
        title=row["title"],
        body=row["body"],
        created_at=row["created_at"],
        read=not row["unread"],
        remind_at=row["remind_at"],
        reactions=[Reaction(r) for r in row["reactions"]],
    )


def unread_count(conn: repo.Conn, customer_id: int) -> int:
    """How many posts this person has not read (or asked to be reminded of, now due)."""
    row = conn.execute(
        f"SELECT count(*) AS n FROM feed_posts p WHERE p.customer_id = %s AND {_UNREAD}",
        (customer_id,),
    ).fetchone()
    return int(row["n"]) if row else 0


def mark_read(conn: repo.Conn, customer_id: int, post_id: int, *, read: bool = True) -> None:
    """Mark one of a person's posts read or unread."""
    row = conn.execute(
        """UPDATE feed_posts
              SET read_at = CASE WHEN %s THEN now() END, remind_at = NULL
           WHERE id = %s AND customer_id = %s RETURNING id""",
        (read, post_id, customer_id),
    ).fetchone()
    if row is None:
        raise PostNotFound(post_id)


def react(conn: repo.Conn, customer_id: int, post_id: int, request: ReactionRequest) -> None:
    """Answer a post: thanks; remind me later (unread again after a while); mute this kind."""
    with conn.transaction():
        post = conn.execute(
            "SELECT id, device_id, kind FROM feed_posts WHERE id = %s AND customer_id = %s "
            "FOR UPDATE",
            (post_id, customer_id),
        ).fetchone()
        if post is None:
            raise PostNotFound(post_id)
        conn.execute(
            "INSERT INTO feed_reactions (post_id, reaction) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (post_id, request.reaction.value),
        )
        if request.reaction is Reaction.REMIND_LATER:
            conn.execute(
                """UPDATE feed_posts SET read_at = now(),
                          remind_at = now() + make_interval(secs => %s) WHERE id = %s""",
                (request.remind_after_h * 3600, post_id),
            )
        else:
            conn.execute(
                "UPDATE feed_posts SET read_at = coalesce(read_at, now()) WHERE id = %s", (post_id,)
            )
        if request.reaction is Reaction.MUTE and post["device_id"] is not None:
            # Muting a weekly update mutes that device's weekly updates (kind friend.weekly);
            # a digest has no device, so muting it only records the reaction.
            _upsert_preference(
                conn, customer_id, post["device_id"], post["kind"], None, Delivery.OFF
            )


# ---------------------------------------------------------------- preferences


def list_preferences(conn: repo.Conn, customer_id: int) -> list[PreferencePublic]:
    """Every preference a person has set."""
    rows = conn.execute(
        """SELECT d.uid AS device_uid, p.moment_kind, p.channels, p.delivery
           FROM notify_preferences p LEFT JOIN devices d ON d.id = p.device_id
           WHERE p.customer_id = %s ORDER BY p.device_id NULLS FIRST, p.moment_kind NULLS FIRST""",
        (customer_id,),
    ).fetchall()
    return [PreferencePublic(**row) for row in rows]


def set_preference(conn: repo.Conn, customer_id: int, update: PreferenceUpdate) -> None:
    """Create or replace the preference of one scope (all, one device, one kind, or both)."""
    device_id = None
    if update.device_uid is not None:
        device_id = shared_device_id(conn, customer_id, update.device_uid)
    with conn.transaction():
        _upsert_preference(
            conn, customer_id, device_id, update.moment_kind, update.channels, update.delivery
        )


def clear_preference(
    conn: repo.Conn, customer_id: int, device_uid: str | None, moment_kind: str | None
) -> bool:
    """Remove the preference of one scope; True when there was one."""
    device_id = shared_device_id(conn, customer_id, device_uid) if device_uid else None
    row = conn.execute(
        """DELETE FROM notify_preferences WHERE customer_id = %s
              AND coalesce(device_id, 0) = coalesce(%s, 0)
              AND coalesce(moment_kind, '') = coalesce(%s, '') RETURNING id""",
        (customer_id, device_id, moment_kind),
    ).fetchone()
    return row is not None


def shared_device_id(conn: repo.Conn, customer_id: int, device_uid: str) -> int:
    """The id of a device this person shares now, or PreferenceError (never someone else's)."""
    row = conn.execute(
        """SELECT d.id FROM devices d JOIN device_ownerships o ON o.device_id = d.id
           WHERE d.uid = %s AND o.customer_id = %s AND o.ended_at IS NULL""",
        (device_uid, customer_id),
    ).fetchone()
    if row is None:
        raise DeviceNotShared("no such device")
    return int(row["id"])


def _upsert_preference(
    conn: repo.Conn,
    customer_id: int,
    device_id: int | None,
    kind: str | None,
    channels: list[ChannelName] | None,
    delivery: Delivery | None,
) -> None:
    conn.execute(
        """INSERT INTO notify_preferences (customer_id, device_id, moment_kind, channels, delivery)
           VALUES (%(cid)s, %(did)s, %(kind)s, %(channels)s, %(delivery)s)
           ON CONFLICT (customer_id, coalesce(device_id, 0), coalesce(moment_kind, ''))
           DO UPDATE SET channels = coalesce(EXCLUDED.channels, notify_preferences.channels),
                         delivery = coalesce(EXCLUDED.delivery, notify_preferences.delivery),
                         updated_at = now()""",
        {
            "cid": customer_id,
            "did": device_id,
            "kind": kind,
            "channels": [c.value for c in channels] if channels is not None else None,
            "delivery": delivery.value if delivery is not None else None,
        },
    )


# ---------------------------------------------------------------- profile


def get_profile(conn: repo.Conn, customer_id: int, cipher: FieldCipher) -> ProfilePublic:
    """A person's notification settings (defaults when never set)."""
    row = conn.execute(
        "SELECT * FROM notify_profiles WHERE customer_id = %s", (customer_id,)
    ).fetchone()
    defaults = ProfileUpdate()
    if row is None:
        return ProfilePublic(
            **defaults.model_dump(exclude={"chat_urls", "rotate_webhook_secret"}),
            chat_url_count=0,
        )
    sealed = row["chat_urls_enc"]
    urls = cipher.open(bytes(sealed), repo.CHAT_URLS_CONTEXT).split("\n") if sealed else []
    return ProfilePublic(
        quiet_start=row["quiet_start"],
        quiet_end=row["quiet_end"],
        daily_cap=row["daily_cap"],
        digest_hour=row["digest_hour"],
        escalation_channel=ChannelName(row["escalation_channel"]),
        webhook_url=row["webhook_url"],
        chat_url_count=len(urls),
        webhook_signed=row["webhook_secret_enc"] is not None,
    )


def update_profile(
    conn: repo.Conn,
    customer_id: int,
    update: ProfileUpdate,
    cipher: FieldCipher,
    *,
    allow_private_webhooks: bool = False,
) -> ProfilePublic:
    """Replace a person's notification settings; webhook URLs must point at public hosts.

    A webhook gets a new signing secret when its URL is set or changed, when it has none
    yet, or when asked to rotate; the answer to that change is the only one that shows it.
    """
    if update.webhook_url is not None:
        try:
            check_webhook_url(update.webhook_url, allow_private=allow_private_webhooks)
        except DeliveryError as exc:
            raise PreferenceError(str(exc)) from exc
    sealed = (
        cipher.seal("\n".join(update.chat_urls), repo.CHAT_URLS_CONTEXT)
        if update.chat_urls
        else None
    )
    with conn.transaction():
        current = conn.execute(
            "SELECT webhook_url, webhook_secret_enc FROM notify_profiles WHERE customer_id = %s "
            "FOR UPDATE",
            (customer_id,),
        ).fetchone() or {"webhook_url": None, "webhook_secret_enc": None}
        secret, sealed_secret = _webhook_secret(update, current, cipher)
        conn.execute(
            """INSERT INTO notify_profiles (customer_id, quiet_start, quiet_end, daily_cap,
                   digest_hour, escalation_channel, webhook_url, chat_urls_enc,
                   webhook_secret_enc)
               VALUES (%(cid)s, %(qs)s, %(qe)s, %(cap)s, %(dh)s, %(esc)s, %(hook)s, %(chat)s,
                       %(secret)s)
               ON CONFLICT (customer_id) DO UPDATE SET
                   quiet_start = EXCLUDED.quiet_start, quiet_end = EXCLUDED.quiet_end,
                   daily_cap = EXCLUDED.daily_cap, digest_hour = EXCLUDED.digest_hour,
                   escalation_channel = EXCLUDED.escalation_channel,
                   webhook_url = EXCLUDED.webhook_url, chat_urls_enc = EXCLUDED.chat_urls_enc,
                   webhook_secret_enc = EXCLUDED.webhook_secret_enc, updated_at = now()""",
            {
                "cid": customer_id,
                "qs": update.quiet_start,
                "qe": update.quiet_end,
                "cap": update.daily_cap,
                "dh": update.digest_hour,
                "esc": update.escalation_channel.value,
                "hook": update.webhook_url,
                "chat": sealed,
                "secret": sealed_secret,
            },
        )
    profile = get_profile(conn, customer_id, cipher)
    return profile.model_copy(update={"webhook_secret": secret}) if secret else profile


def _webhook_secret(
    update: ProfileUpdate, current: dict[str, Any], cipher: FieldCipher
) -> tuple[str | None, bytes | None]:
    """(the new secret to show once or None, the sealed secret to store)."""
    if update.webhook_url is None:
        return None, None
    kept = current["webhook_secret_enc"]
    unchanged = current["webhook_url"] == update.webhook_url
    if kept is not None and unchanged and not update.rotate_webhook_secret:
        return None, bytes(kept)
    secret = new_secret()
    return secret, cipher.seal(secret, repo.WEBHOOK_SECRET_CONTEXT)
