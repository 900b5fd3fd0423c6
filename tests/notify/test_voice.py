"""The product's voice: catalogs complete in both languages, in sync, and rendered per locale."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from notify.catalogs import (
    LANGUAGES,
    compiled_bytes,
    locale_dir,
    po_path,
    read_catalog,
    source_messages,
)
from notify.templates import TEMPLATES
from notify.voice import Speaker, render_digest, render_moment, render_weekly

RULES_README = Path(__file__).resolve().parents[2] / "rules" / "README.md"


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_is_translated_with_the_same_placeholders(language: str) -> None:
    catalog = read_catalog(language)
    for context, msgid in source_messages():
        message = catalog.get(msgid, context=context)
        assert message is not None, f"{language}: missing {context}: {msgid!r}"
        assert message.string and not message.fuzzy, f"{language}: untranslated {msgid!r}"
        assert _fields(str(message.string)) == _fields(msgid), f"{language}: placeholders {msgid!r}"


def test_every_builtin_moment_kind_renders_in_both_languages() -> None:
    for kind, template in TEMPLATES.items():
        facts = {name: _sample(unit.value) for name, unit in template.facts.items()}
        en = render_moment(kind, facts, Speaker("en", "Asia/Tokyo", "Bolt", "Aiko"))
        ja = render_moment(kind, facts, Speaker("ja", "Asia/Tokyo", "ボルト", "愛子"))
        assert en.body.startswith("Hi Aiko, it's Bolt. ") and "attention" not in en.body, kind
        assert ja.body.startswith("愛子さん、ボルトです。") and "お知らせしたい" not in ja.body, (
            kind
        )
        assert re.search(r"[ぁ-んァ-ヶ一-龯]", ja.title), kind


def _sample(unit: str) -> object:
    return {"tire": "rear_left", "clock_time": "07:40"}.get(unit, 42.5)


def test_moment_kinds_published_by_rules_all_have_templates() -> None:
    if not RULES_README.exists():
        pytest.skip("rules/README.md not present")
    kinds = set(re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", RULES_README.read_text(), re.M))
    assert kinds, "the moment table in rules/README.md was not found"
    assert kinds <= set(TEMPLATES), f"no template for {sorted(kinds - set(TEMPLATES))}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_shipped_mo_files_are_compiled_from_the_po_files(language: str) -> None:
    shipped = po_path(language).with_suffix(".mo").read_bytes()
    assert compiled_bytes(read_catalog(language)) == shipped, "run: python -m notify.catalogs"


def test_pot_lists_exactly_the_messages_the_templates_use() -> None:
    with (locale_dir() / "kizuna.pot").open("rb") as handle:
        pot = read_po(handle)
    assert {(m.context, m.id) for m in pot if m.id} == set(source_messages())


def test_low_charge_message_uses_local_formats_and_a_next_step() -> None:
    facts = {"soc_pct": 18.2, "range_km": 61.4, "commute_time": "07:40"}
    en = render_moment("ev.low_charge_before_commute", facts, Speaker("en", "UTC", "Bolt", "Ann"))
    ja = render_moment("ev.low_charge_before_commute", facts, Speaker("ja", "UTC", "ボルト", "杏"))
    assert en.title == "Bolt needs a charge for tomorrow"
    assert en.body == (
        "Hi Ann, it's Bolt. I'm at 18% (61 km of range) and you usually leave at "
        "7:40\u202fAM. Plug me in tonight?"
    )
    assert ja.body == (
        "杏さん、ボルトです。いまバッテリーが18%（航続距離 約61 km）です。"
        "いつも7:40に出発しますよね。今夜のうちに充電しておきませんか？"
    )


def test_large_numbers_use_locale_grouping() -> None:
    facts = {"power_w": 1840, "typical_power_w": 650}
    en = render_moment("air_conditioner.unusual_power_draw", facts, Speaker("en", "UTC", "Kaze"))
    assert "1,840 W" in en.body and "650 W" in en.body
    assert en.body.startswith("Hi, it's Kaze. ")


def test_missing_or_null_facts_fall_back_to_a_message_without_numbers() -> None:
    speaker = Speaker("ja", "Asia/Tokyo", "ボルト")
    message = render_moment("ev.charge_complete", {"soc_pct": None, "range_km": 100}, speaker)
    assert message.title == "ボルトの充電が完了しました"
    assert (
        message.body == "ボルトです。お知らせしたいことがあります。アプリで確認してみてくださいね。"
    )


def test_unknown_kind_still_produces_a_message() -> None:
    message = render_moment("ev.something_new", {}, Speaker("en", "UTC", "Bolt"))
    assert message.title == "Bolt" and "take a look in the app" in message.body


def test_digest_and_weekly_update() -> None:
    digest = render_digest(["Bolt is charged", "Frosty: filter"], "en")
    assert digest.title == "Your friend update"
    assert digest.body.endswith("• Bolt is charged\n• Frosty: filter")
    weekly = render_weekly({"distance_km": 1234.5, "energy_kwh": 0}, Speaker("ja", "UTC", "ボルト"))
    assert weekly.body == "ボルトです。今週は走行距離1,234 kmでした。また来週ね！"
