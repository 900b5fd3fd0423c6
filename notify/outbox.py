"""The outbox: new moments fan out to people and channels; due notifications are delivered."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from typing import Any

import structlog

from notify import repo
from notify.channels import ChannelRegistry
from notify.config import NotifyConfig
from notify.errors import PermanentDeliveryError, TransientDeliveryError
from notify.models import INTERRUPTING_CHANNELS, ChannelName, Delivery, Outgoing
from notify.policy import (
    EffectivePreference,
    escalation_channel,
    is_safety_critical,
    local_midnight,
    quiet_until,
    resolve_preference,
    retry_delay_s,
)
from notify.voice import (
    Speaker,
    escalation_title,
    render_digest,
    render_moment,
    render_operator_notice,
)
from store.encryption import EncryptionError, FieldCipher

log = structlog.get_logger(__name__)

OPERATOR_NOTICE_KIND = "operator.notice"


@dataclass(frozen=True)
class Recipient:
    """One person who shares a device, with what fan-out needs to know about them."""

    customer_id: int
    language: str
    time_zone: str
    name: str | None
    profile: dict[str, Any]
    preferences: list[dict[str, Any]]
    reachable: frozenset[ChannelName]


class Outbox:
    """Fan-out and delivery over one database connection at a time (safe with many workers)."""

    def __init__(
        self,
        config: NotifyConfig,
        cipher: FieldCipher,
        channels: ChannelRegistry,
        clock: Any = None,
    ) -> None:
        self.config = config
        self.cipher = cipher
        self.channels = channels
        self.now = clock or (lambda: datetime.now(UTC))
        self.defaults = tuple(ChannelName(c) for c in config.default_channels)
        # Set after a fan-out commits rows to deliver: wakes this process's delivery threads
        # at once (other processes find the rows by polling).
        self.work_ready = threading.Event()

    # ------------------------------------------------------------ fan-out

    def fan_out(self, conn: repo.Conn) -> int:
        """Turn one batch of new moments into feed posts and outbox rows; return moments done.

        One transaction in three round trips whatever the batch size: claim (with BEGIN),
        read recipients, cooldowns and daily counts together, then write every post, outbox
        row and digest item with the COMMIT. The feed is written here, so a post is visible
        the moment this commits; slower channels wait in the outbox for delivery workers.
        `conn` must be an idle autocommit connection.
        """
        started = time.perf_counter()
        with repo.pipelined_transaction(conn):
            moments, notices = repo.claim_inboxes(conn, self.config.batch_size)
            if not moments and not notices:
                return 0
            batch = _Batch()
            if moments:
                now = self.now()
                cooldown = timedelta(seconds=self.config.cooldown_s)
                context = repo.fan_out_context(
                    conn,
                    [(m["device_id"], m["kind"]) for m in moments],
                    now - cooldown if self.config.cooldown_s else None,
                    now - CAP_WINDOW,
                )
                for moment in moments:
                    for person in context.people.get(moment["device_id"], []):
                        self._fan_out_one(batch, context, moment, self._recipient(person))
            batch.operator_rows = [row for n in notices for row in self._operator_rows(n)]
            repo.record_fan_out(
                conn, batch.posts, batch.rows, batch.digest_items, batch.operator_rows
            )
        if any(r["status"] == "pending" for r in (*batch.rows, *batch.operator_rows)):
            self.work_ready.set()
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        log.debug(
            "notify.fan_out", moments=len(moments), notices=len(notices), elapsed_ms=elapsed_ms
        )
        return len(moments) + len(notices)

    def _operator_rows(self, notice: dict[str, Any]) -> list[dict[str, Any]]:
        """One outbox row per operator address in settings (email list, webhook)."""
        message = render_operator_notice(notice, self.config.operator_language)
        base = {
            "operator_notice_id": notice["id"],
            "device_id": notice["device_id"],
            "kind": OPERATOR_NOTICE_KIND,
            "severity": notice["severity"],
            "language": self.config.operator_language,
            "title": message.title,
            "body": message.body,
        }
        addresses = [(ChannelName.EMAIL, a) for a in self.config.operator_emails]
        if self.config.operator_webhook_url:
            addresses.append((ChannelName.WEBHOOK, self.config.operator_webhook_url))
        rows = []
        for channel, address in addresses:
            configured = channel in self.channels
            rows.append(
                {
                    **base,
                    "channel": channel.value,
                    "recipient": address,
                    "status": "pending" if configured else "suppressed",
                    "reason": None if configured else "channel_not_configured",
                }
            )
        if not rows:
            log.info("notify.operator_notice_without_operators", notice_id=notice["id"])
        return rows

    def _recipient(self, row: dict[str, Any]) -> Recipient:
        profile = row["profile"] or {}
        reachable = {ChannelName.FEED, ChannelName.MQTT}
        if row["has_email"]:
            reachable.add(ChannelName.EMAIL)
        if profile.get("webhook_url"):
            reachable.add(ChannelName.WEBHOOK)
        if profile.get("chat_urls_enc"):
            reachable.add(ChannelName.CHAT)
        return Recipient(
            row["customer_id"],
            row["language"],
            row["time_zone"],
            self._open(row["name_enc"], repo.NAME_CONTEXT),
            profile,
            row["preferences"],
            frozenset(reachable),
        )

    def _open(self, sealed: bytes | None, context: str) -> str | None:
        if not sealed:
            return None
        try:
            return self.cipher.open(bytes(sealed), context)
        except (EncryptionError, ValueError):
            log.warning("notify.personal_data_unreadable", context=context)
            return None

    def _fan_out_one(
        self,
        batch: _Batch,
        context: repo.FanOutContext,
        moment: dict[str, Any],
        person: Recipient,
    ) -> None:
        kind, critical = moment["kind"], is_safety_critical(moment["kind"], moment["severity"])
        preference = resolve_preference(
            person.preferences, moment["device_id"], kind, self.defaults
        )
        message = render_moment(kind, moment["facts"] or {}, self._speaker(moment, person))
        base = {
            "moment_id": moment["id"],
            "customer_id": person.customer_id,
            "device_id": moment["device_id"],
            "kind": kind,
            "severity": moment["severity"],
            "purpose": "moment",
            "language": person.language,
            "title": message.title,
            "body": message.body,
            "created_at": None,
            "next_attempt_at": self.now(),
        }
        rows = self._plan(context, preference, person, moment, base, critical)
        if any(r["channel"] == ChannelName.FEED and r["status"] == "sent" for r in rows):
            batch.posts.append(base)
        if preference.delivery is Delivery.DIGEST and not critical and _suppressed_all(rows):
            batch.digest_items.append(base)
        batch.rows += rows
        _remember(context, person.customer_id, moment, rows)

    def _speaker(self, moment: dict[str, Any], person: Recipient) -> Speaker:
        nickname = moment["nickname"] or _voice_name(moment["model_id"], person.language)
        return Speaker(person.language, person.time_zone, nickname, person.name)

    def _plan(
        self,
        context: repo.FanOutContext,
        preference: EffectivePreference,
        person: Recipient,
        moment: dict[str, Any],
        base: dict[str, Any],
        critical: bool,
    ) -> list[dict[str, Any]]:
        """One row per channel with its status and reason: the whole decision in one place."""
        channels = list(preference.channels) or [ChannelName.FEED]
        now = self.now()

        def row(channel: ChannelName, status: str, reason: str | None = None) -> dict[str, Any]:
            return {**base, "channel": channel.value, "status": status, "reason": reason}

        if preference.delivery is Delivery.OFF:
            if critical:  # safety first: a muted device still posts a critical alert
                return [row(ChannelName.FEED, "sent", "muted_but_critical")]
            return [row(c, "suppressed", "muted") for c in channels]
        if preference.delivery is Delivery.DIGEST and not critical:
            return [row(c, "suppressed", "digest") for c in channels]
        profile, zone = person.profile, person.time_zone
        recent = (person.customer_id, moment["device_id"], moment["kind"]) in context.recent
        midnight = local_midnight(now, zone)
        interruptions = sum(
            1 for at in context.interrupting[person.customer_id].values() if at >= midnight
        )
        if self.config.cooldown_s and recent:
            return [row(c, "suppressed", "cooldown") for c in channels]
        quiet_end = quiet_until(
            now, zone, _clock(profile.get("quiet_start")), _clock(profile.get("quiet_end"))
        )
        over_cap = not critical and interruptions >= profile.get("daily_cap", 10)
        rows = []
        for channel in channels:
            if channel is ChannelName.FEED:
                rows.append(row(channel, "sent"))
            elif channel not in self.channels:
                rows.append(row(channel, "suppressed", "channel_not_configured"))
            elif channel not in person.reachable:
                rows.append(row(channel, "suppressed", "no_address"))
            elif over_cap:
                rows.append(row(channel, "suppressed", "daily_cap"))
            elif quiet_end is not None and not critical:
                rows.append(
                    {**row(channel, "pending", "quiet_hours"), "next_attempt_at": quiet_end}
                )
            else:
                rows.append(row(channel, "pending"))
        if critical:
            rows += self._escalation(person, channels, base)
        return rows

    def _escalation(
        self, person: Recipient, channels: Sequence[ChannelName], base: dict[str, Any]
    ) -> list[dict[str, Any]]:
        preferred = ChannelName(person.profile.get("escalation_channel") or ChannelName.EMAIL)
        configured = person.reachable & set(self.channels)
        channel = escalation_channel(preferred, channels, configured)
        if channel is None:
            return []
        due = self.now() + timedelta(seconds=self.config.escalate_after_s)
        return [
            {
                **base,
                "channel": channel.value,
                "purpose": "escalation",
                "status": "pending",
                "reason": None,
                "title": escalation_title(base["title"], person.language),
                "next_attempt_at": due,
            }
        ]

    # ------------------------------------------------------------ delivery

    def deliver_due(self, conn: repo.Conn) -> int:
        """Deliver one batch of due notifications; return how many were attempted."""
        with conn.transaction():
            claimed = repo.claim_due(conn, self.config.batch_size, self.config.lease_s)
        if not claimed:
            return 0
        customers = {r["customer_id"] for r in claimed if r["customer_id"] is not None}
        people = repo.addresses(conn, sorted(customers))
        uids = repo.device_uids(conn, sorted({r["device_id"] for r in claimed if r["device_id"]}))
        for row in claimed:
            self._deliver_one(conn, row, people.get(row["customer_id"], {}), uids)
        return len(claimed)

    def _deliver_one(
        self, conn: repo.Conn, row: dict[str, Any], person: dict[str, Any], uids: dict[int, str]
    ) -> None:
        bound = log.bind(notification_id=row["id"], channel=row["channel"], attempt=row["attempts"])
        if row["purpose"] == "escalation" and repo.acknowledged(
            conn, row["customer_id"], row["moment_id"]
        ):
            repo.mark_final(conn, row["id"], "suppressed", "acknowledged")
            bound.info("notify.escalation_not_needed")
            return
        channel = self.channels.get(ChannelName(row["channel"]))
        if channel is None:
            repo.mark_final(conn, row["id"], "failed", "channel_not_configured")
            bound.warning("notify.channel_not_configured")
            return
        try:
            channel.deliver(self._outgoing(row, person, uids))
        except TransientDeliveryError as exc:
            self._retry_or_fail(conn, row, str(exc), bound)
            return
        except PermanentDeliveryError as exc:
            repo.mark_final(conn, row["id"], "failed", str(exc))
            bound.warning("notify.delivery_failed", error=str(exc))
            return
        except Exception as exc:  # a broken channel must not stop the worker
            self._retry_or_fail(conn, row, f"unexpected {type(exc).__name__}", bound)
            bound.exception("notify.channel_crashed")
            return
        repo.mark_sent(conn, row["id"])
        bound.debug("notify.delivered")

    def _retry_or_fail(self, conn: repo.Conn, row: dict[str, Any], error: str, bound: Any) -> None:
        if row["attempts"] >= self.config.max_attempts:
            repo.mark_final(conn, row["id"], "failed", f"gave up after {row['attempts']}: {error}")
            bound.warning("notify.delivery_gave_up", error=error)
            return
        delay = retry_delay_s(
            row["attempts"], self.config.retry_base_s, self.config.retry_max_s, random.random()
        )
        repo.mark_retry(conn, row["id"], delay, error)
        bound.info("notify.delivery_retry", error=error, delay_s=round(delay, 2))

    def _outgoing(
        self, row: dict[str, Any], person: dict[str, Any], uids: dict[int, str]
    ) -> Outgoing:
        if row["purpose"] == "operator":
            return self._operator_outgoing(row, uids)
        chat = self._open(person.get("chat_urls_enc"), repo.CHAT_URLS_CONTEXT)
        return Outgoing(
            **_message_fields(row),
            customer_public_id=person.get("public_id", ""),
            device_uid=uids.get(row["device_id"]),
            email=self._open(person.get("email_enc"), repo.EMAIL_CONTEXT)
            or self._open(person.get("user_email_enc"), repo.USER_EMAIL_CONTEXT),
            webhook_url=person.get("webhook_url"),
            chat_urls=tuple(chat.split("\n")) if chat else (),
            webhook_secret=self._open(
                person.get("webhook_secret_enc"), repo.WEBHOOK_SECRET_CONTEXT
            ),
        )

    def _operator_outgoing(self, row: dict[str, Any], uids: dict[int, str]) -> Outgoing:
        """An operator notice to the address it was planned for (kept in the row)."""
        channel = ChannelName(row["channel"])
        secret = self.config.operator_webhook_secret
        return Outgoing(
            **_message_fields(row),
            customer_public_id="",
            device_uid=uids.get(row["device_id"]),
            email=row["recipient"] if channel is ChannelName.EMAIL else None,
            webhook_url=row["recipient"] if channel is ChannelName.WEBHOOK else None,
            webhook_secret=secret.get_secret_value() if secret else None,
            trusted_destination=True,
        )

    # ------------------------------------------------------------ digests

    def send_digests(self, conn: repo.Conn) -> int:
        """Post each person's daily friend update once their digest hour has come."""
        sent = 0
        now = self.now()
        for person in repo.customers_with_open_digests(conn):
            local = local_midnight(now, person["time_zone"])
            local_now = now.astimezone(local.tzinfo)
            if local_now.hour < person["digest_hour"] or person["last_digest_on"] == local.date():
                continue
            with conn.transaction():
                items = repo.lock_open_digest_items(conn, person["customer_id"])
                if not items:
                    continue
                message = render_digest([i["title"] for i in items], person["language"])
                post_id = repo.insert_feed_post(conn, _digest_post(person, message))
                if post_id is not None:
                    repo.close_digest(
                        conn, person["customer_id"], [i["id"] for i in items], post_id
                    )
                    repo.insert_notifications(conn, self._digest_rows(conn, person, message))
                    sent += 1
        return sent

    def _digest_rows(
        self, conn: repo.Conn, person: dict[str, Any], message: Any
    ) -> list[dict[str, Any]]:
        """The digest also goes out on the person's interrupting channels (email...)."""
        row = repo.person(conn, person["customer_id"])
        if row is None:
            return []
        reader = self._recipient(row)
        kind = "friend.digest"
        channels = resolve_preference(reader.preferences, 0, kind, self.defaults).channels
        return [
            {
                **_digest_post(person, message),
                "channel": channel.value,
                "purpose": "digest",
                "status": "pending",
                "reason": None,
                "next_attempt_at": self.now(),
            }
            for channel in channels
            if channel in INTERRUPTING_CHANNELS
            and channel in self.channels
            and channel in reader.reachable
        ]


# Interruptions since a person's local midnight are counted from rows this recent; local
# midnight is never further back than a day plus the largest daylight-saving shift.
CAP_WINDOW = timedelta(hours=26)


@dataclass
class _Batch:
    """What one fan-out pass writes, in order."""

    posts: list[dict[str, Any]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    digest_items: list[dict[str, Any]] = field(default_factory=list)
    operator_rows: list[dict[str, Any]] = field(default_factory=list)


def _remember(
    context: repo.FanOutContext,
    customer_id: int,
    moment: dict[str, Any],
    rows: list[dict[str, Any]],
) -> None:
    """Count this moment's rows for the rest of the batch, as the database would count them."""
    if any(
        r["purpose"] == "moment" and (r["status"] in ("sent", "pending") or r["reason"] == "digest")
        for r in rows
    ):
        context.recent.add((customer_id, moment["device_id"], moment["kind"]))
    if any(
        r["purpose"] == "moment"
        and r["channel"] != ChannelName.FEED
        and r["status"] in ("sent", "pending")
        for r in rows
    ):
        # The rows are written with the database clock, at the latest now: within any window.
        context.interrupting[customer_id][moment["id"]] = datetime.max.replace(tzinfo=UTC)


def _digest_post(person: dict[str, Any], message: Any) -> dict[str, Any]:
    return {
        "customer_id": person["customer_id"],
        "device_id": None,
        "moment_id": None,
        "kind": "friend.digest",
        "severity": "info",
        "language": person["language"],
        "title": message.title,
        "body": message.body,
        "created_at": None,
    }


def _clock(value: Any) -> dt_time | None:
    # Profiles arrive as JSON (to_jsonb): times are "HH:MM:SS" text there.
    if value is None or isinstance(value, dt_time):
        return value
    return dt_time.fromisoformat(str(value))


def _suppressed_all(rows: list[dict[str, Any]]) -> bool:
    return all(r["status"] == "suppressed" and r["reason"] == "digest" for r in rows)


def _voice_name(model_id: str, language: str) -> str:
    from devices.catalog import builtin_models

    model = builtin_models().get(model_id)
    if model is None:
        return model_id
    return model.voice.get("ja" if language == "ja" else "en", model_id)


__all__ = ["INTERRUPTING_CHANNELS", "Outbox", "Recipient"]


def _message_fields(row: dict[str, Any]) -> dict[str, Any]:
    """The fields of an outbox row that every recipient's Outgoing shares."""
    return {
        "notification_id": row["id"],
        "idempotency_key": row["idempotency_key"],
        "channel": ChannelName(row["channel"]),
        "kind": row["kind"],
        "severity": row["severity"],
        "purpose": row["purpose"],
        "title": row["title"],
        "body": row["body"],
        "language": row["language"],
        "created_at": row["created_at"],
    }
