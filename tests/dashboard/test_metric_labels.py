"""Metrics read as words with units, in English and Japanese, never as raw identifiers."""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

import pytest

from dashboard.metric_labels import (
    METRIC_LABELS,
    format_reading,
    humanize,
    metric_label,
    metric_name,
)
from devices.catalog import builtin_models
from tests.dashboard.conftest import DashboardServer, callback
from tests.dashboard.seed import Fleet

JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
MODELS = builtin_models()


def _every_metric() -> list[tuple[str, str]]:
    return sorted(
        {(model_id, name) for model_id, model in MODELS.items() for name in model.metrics}
        | {(model_id, name) for model_id, model in MODELS.items() for name in model.desired}
    )


@pytest.mark.parametrize(("model_id", "name"), _every_metric())
def test_every_builtin_metric_has_english_and_japanese_labels(model_id: str, name: str) -> None:
    assert name in METRIC_LABELS, f"{model_id}.{name} has no label in dashboard/metric_labels.py"
    english, japanese = METRIC_LABELS[name]
    assert english.strip() and english != name and "_" not in english
    assert all(unicodedata.category(ch)[0] in "LZP" or ch.isdigit() for ch in english)
    assert JAPANESE.search(japanese), f"{name}: {japanese!r} is not Japanese"


def test_labels_carry_the_models_unit_in_the_viewers_language() -> None:
    ev, washer = MODELS["ev"], MODELS["washing_machine"]
    assert metric_label("soc_pct", "en", ev) == "State of charge (%)"
    assert metric_label("soc_pct", "ja", ev) == "充電残量（%）"
    assert metric_label("speed_kmh", "en", ev) == "Speed (km/h)"
    assert metric_label("remaining_min", "ja", washer) == "残り時間（分）"
    assert metric_label("plugged_in", "en", ev) == "Plugged in"  # booleans have no unit


@pytest.mark.parametrize(
    ("name", "english", "unit"),
    [
        ("cabin_humidity_pct", "Cabin humidity", "%"),
        ("battery_voltage_v", "Battery voltage", "V"),
        ("water_temp_c", "Water temp", "°C"),
        ("firmware_channel", "Firmware channel", None),
        ("rpm", "Rpm", None),
        ("__odd__", "Odd", None),
    ],
)
def test_unknown_metrics_still_read_as_words(name: str, english: str, unit: str | None) -> None:
    assert humanize(name) == (english, unit)
    shown = metric_label(name, "en", MODELS["ev"])
    assert "_" not in shown
    assert shown == (f"{english} ({unit})" if unit else english)
    assert metric_name(name, "ja") == english  # no translation to offer, but still words


def test_readings_are_formatted_for_people() -> None:
    ev = MODELS["ev"]
    assert (
        format_reading("soc_pct", {"v": 64.46, "t": "2026-01-01T00:00:00Z"}, "en", ev) == "64.5 %"
    )
    assert format_reading("plugged_in", True, "en", ev) == "Yes"
    assert format_reading("plugged_in", False, "ja", ev) == "いいえ"
    assert format_reading("remaining_min", 42, "ja", MODELS["washing_machine"]) == "42 分"
    assert format_reading("mode", "cool", "en", MODELS["air_conditioner"]) == "cool"
    assert format_reading("lat", 35.6812, "en", ev) == "35.7°"
    assert format_reading("power", True, "en", MODELS["refrigerator"]) == "Yes"  # not in model


def _texts(component: Any) -> list[str]:
    """Every text a Dash component tree renders (attributes such as ids left out)."""
    if isinstance(component, str):
        return [component]
    if isinstance(component, list):
        return [t for c in component for t in _texts(c)]
    if isinstance(component, dict):
        return _texts(component.get("props", {}).get("children"))
    return [] if component is None else [str(component)]


def _device_panels(server: DashboardServer, fleet: Fleet, lang: str) -> list[str]:
    client = server.signed_in(fleet.operator)
    response = callback(
        client,
        server.app,
        "..device-head.children...device-panels.children..",
        [
            {"id": "device-uid", "property": "data", "value": "alice-car"},
            {"id": "tick", "property": "n_intervals", "value": 1},
            {"id": "viewer-tz", "property": "data", "value": "Asia/Tokyo"},
        ],
        [{"id": "lang", "property": "value", "value": lang}],
    )
    assert response.status_code == 200, response.text
    return _texts(response.json()["response"]["device-panels"]["children"])


@pytest.mark.parametrize(
    ("lang", "label"), [("en", "State of charge (%)"), ("ja", "充電残量（%）")]
)
def test_device_page_names_metrics_in_the_viewers_language(
    dashboard: DashboardServer, fleet: Fleet, lang: str, label: str
) -> None:
    texts = _device_panels(dashboard, fleet, lang)
    assert label in texts
    raw = set(MODELS["ev"].metrics)
    assert not raw & set(texts), f"raw metric names shown: {raw & set(texts)}"


def test_metric_picker_and_portal_use_labels(dashboard: DashboardServer, fleet: Fleet) -> None:
    operator = dashboard.signed_in(fleet.operator)
    picker = callback(
        operator,
        dashboard.app,
        "..device-metric.options...device-metric.value..",
        [{"id": "device-uid", "property": "data", "value": "alice-car"}],
        [{"id": "lang", "property": "value", "value": "ja"}],
    ).json()["response"]["device-metric"]
    labels = {o["value"]: o["label"] for o in picker["options"]}
    assert labels["soc_pct"] == "充電残量（%）" and labels["range_km"] == "航続可能距離（km）"
    alice = dashboard.signed_in(fleet.alice)
    portal = callback(
        alice,
        dashboard.app,
        "..portal-products.children...portal-product.options..",
        [
            {"id": "tick", "property": "n_intervals", "value": 1},
            {"id": "viewer-tz", "property": "data", "value": "Asia/Tokyo"},
        ],
        [{"id": "lang", "property": "value", "value": "en"}],
    ).json()["response"]["portal-products"]["children"]
    readings = json.dumps(_texts(portal), ensure_ascii=False)
    assert "State of charge: " in readings
    assert not any(name in readings for name in MODELS["ev"].metrics)


def test_catalog_is_only_for_known_metrics() -> None:
    """Every label belongs to a metric of some shipped model (no stale entries)."""
    known = {name for model in MODELS.values() for name in model.metrics}
    assert set(METRIC_LABELS) <= known
