"""Dashboard strings in English and Japanese, and time formatting in the viewer's zone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Language = Literal["en", "ja"]
LANGUAGES: tuple[Language, ...] = ("en", "ja")

STRINGS: dict[str, tuple[str, str]] = {
    # key: (English, Japanese)
    "app.title": ("Kizuna Operations", "Kizuna オペレーション"),
    "app.portal": ("Kizuna — My products", "Kizuna — マイ製品"),
    "nav.fleet": ("Fleet", "フリート"),
    "nav.map": ("Map", "マップ"),
    "nav.devices": ("Devices", "デバイス"),
    "nav.alerts": ("Alerts", "アラート"),
    "nav.customers": ("Customers", "お客様"),
    "nav.rules": ("Rules", "ルール"),
    "nav.logout": ("Sign out", "ログアウト"),
    "nav.portal": ("My products", "マイ製品"),
    "login.title": ("Sign in", "ログイン"),
    "login.email": ("Email", "メールアドレス"),
    "login.password": ("Password", "パスワード"),
    "login.otp": ("One-time code (if two-factor is on)", "ワンタイムコード（2段階認証の場合）"),
    "login.submit": ("Sign in", "ログイン"),
    "login.error": (
        "Email, password or one-time code is not correct.",
        "メールアドレス、パスワード、またはワンタイムコードが正しくありません。",
    ),
    "common.none": ("Nothing here yet.", "まだありません。"),
    "common.not_found": ("Not found.", "見つかりません。"),
    "common.forbidden": (
        "You do not have access to this page.",
        "このページへのアクセス権がありません。",
    ),
    "common.unavailable": ("Not available yet.", "まだ利用できません。"),
    "common.online": ("Online", "オンライン"),
    "common.offline": ("Offline", "オフライン"),
    "common.updated": ("Updated", "更新"),
    "fleet.title": ("Fleet overview", "フリート概要"),
    "fleet.devices": ("Devices", "デバイス数"),
    "fleet.online": ("Online", "オンライン"),
    "fleet.msg_rate": ("Messages / s", "メッセージ / 秒"),
    "fleet.active_alerts": ("Active alerts", "発生中のアラート"),
    "fleet.by_model": ("Devices by model", "モデル別デバイス"),
    "fleet.alerts_by_severity": ("Active alerts by severity", "重要度別アラート"),
    "fleet.ingest": ("Ingest health", "取り込み状況"),
    "fleet.lag": ("Ingest lag (s)", "取り込み遅延 (秒)"),
    "fleet.dead_letters": ("Dead letters by reason (24 h)", "理由別デッドレター (24時間)"),
    "fleet.gaps": ("Sequence gaps (24 h)", "シーケンス欠落 (24時間)"),
    "map.title": ("Where products are", "製品の位置"),
    "map.clustered": ("Dense area: showing clusters", "密集エリア: クラスター表示"),
    "devices.title": ("Devices", "デバイス"),
    "devices.search": ("Search uid or serial", "UID・シリアルで検索"),
    "devices.model": ("Model", "モデル"),
    "devices.status": ("Status", "状態"),
    "devices.total": ("matching devices", "件のデバイス"),
    "col.uid": ("Device", "デバイス"),
    "col.serial": ("Serial", "シリアル"),
    "col.model_id": ("Model", "モデル"),
    "col.firmware": ("Firmware", "ファームウェア"),
    "col.nickname": ("Nickname", "ニックネーム"),
    "col.status": ("Status", "状態"),
    "col.last_seen": ("Last seen", "最終受信"),
    "device.telemetry": ("Telemetry", "テレメトリ"),
    "device.metric": ("Metric", "項目"),
    "device.range": ("Range", "期間"),
    "device.twin": ("Twin: reported vs desired", "ツイン: 報告値と希望値"),
    "device.reported": ("Reported", "報告値"),
    "device.desired": ("Desired", "希望値"),
    "device.alerts": ("Alerts", "アラート"),
    "device.moments": ("Moments", "モーメント"),
    "device.messages": ("Messages to the owner", "オーナーへのメッセージ"),
    "device.commands": ("Commands", "コマンド"),
    "alerts.title": ("Alerts", "アラート"),
    "alerts.ack": ("Acknowledge", "確認"),
    "alerts.clear": ("Clear", "解除"),
    "alerts.severity": ("Severity", "重要度"),
    "alerts.state": ("State", "状態"),
    "alerts.opened": ("Opened", "発生"),
    "customers.title": ("Customers", "お客様"),
    "customers.health": ("Health", "健全性"),
    "customers.devices": ("Products", "製品"),
    "customers.language": ("Language", "言語"),
    "customers.timeline": ("Messages timeline", "メッセージ履歴"),
    "customers.preferences": ("Preferences", "通知設定"),
    "rules.title": ("Rules", "ルール"),
    "rules.enabled": ("Enabled", "有効"),
    "rules.firings": ("Recent firings", "最近の発火"),
    "portal.title": ("My products", "マイ製品"),
    "portal.feed": ("From your products", "製品からのメッセージ"),
    "portal.preferences": ("Notification preferences", "通知設定"),
    "prefs.all": ("All my products", "すべての製品"),
    "prefs.save": ("Save", "保存"),
    "prefs.saved": ("Saved.", "保存しました。"),
    "prefs.refused": ("Not saved", "保存できませんでした"),
    "col.rule": ("Rule", "ルール"),
    "col.scope": ("Applies to", "対象"),
    "col.kind": ("Kind", "種類"),
    "col.time": ("Time", "時刻"),
    "col.command": ("Command", "コマンド"),
    "col.args": ("Arguments", "引数"),
    "col.firings_24h": ("Fired (24 h)", "発火 (24時間)"),
    "col.last_fired": ("Last fired", "最終発火"),
    "filter.open": ("Open", "未解決"),
    "filter.active": ("Active", "未確認"),
    "filter.all": ("All", "すべて"),
    "rules.on": ("On", "有効"),
    "rules.off": ("Off", "無効"),
    "prefs.quiet": ("Quiet hours", "通知しない時間帯"),
    "prefs.cap": ("Daily limit", "1日の上限"),
    "prefs.digest": ("Digest hour", "まとめ配信の時刻"),
    "health.good": ("Good", "良好"),
    "health.attention": ("Needs attention", "要確認"),
    "health.at_risk": ("At risk", "要対応"),
}


def t(key: str, lang: str | None) -> str:
    """The string for `key` in `lang` (English when the language is unknown)."""
    en, ja = STRINGS[key]
    return ja if lang == "ja" else en


def viewer_zone(name: str | None) -> ZoneInfo:
    """The viewer's IANA time zone, UTC when missing or unknown."""
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def format_time(value: datetime | None, zone: str | None, *, seconds: bool = False) -> str:
    """A timestamp in the viewer's zone, or an em dash when there is none."""
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    pattern = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return value.astimezone(viewer_zone(zone)).strftime(pattern)
