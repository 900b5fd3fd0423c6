"""Human names for device metrics, in English and Japanese, with their units.

Product models (devices/product_models/*.yaml) give each metric a type and a unit but no name
a person would read, so the dashboard keeps the names here, keyed by metric name. A metric
missing from the catalog (a new model, a firmware that reports more) still reads as words:
`cabin_humidity_pct` becomes "Cabin humidity (%)", never a raw identifier.
"""

from __future__ import annotations

from typing import Any

from devices.catalog import ProductModel

# metric name: (English, Japanese)
METRIC_LABELS: dict[str, tuple[str, str]] = {
    # electric vehicle
    "soc_pct": ("State of charge", "充電残量"),
    "range_km": ("Range", "航続可能距離"),
    "plugged_in": ("Plugged in", "充電ケーブル接続"),
    "charging": ("Charging", "充電中"),
    "charge_power_kw": ("Charging power", "充電電力"),
    "charge_limit_pct": ("Charge limit", "充電上限"),
    "speed_kmh": ("Speed", "速度"),
    "odometer_km": ("Odometer", "総走行距離"),
    "lat": ("Latitude", "緯度"),
    "lon": ("Longitude", "経度"),
    "tire_fl_kpa": ("Tire pressure, front left", "タイヤ空気圧（左前）"),
    "tire_fr_kpa": ("Tire pressure, front right", "タイヤ空気圧（右前）"),
    "tire_rl_kpa": ("Tire pressure, rear left", "タイヤ空気圧（左後）"),
    "tire_rr_kpa": ("Tire pressure, rear right", "タイヤ空気圧（右後）"),
    "cabin_temp_c": ("Cabin temperature", "車内温度"),
    "locked": ("Locked", "施錠"),
    "battery_health_pct": ("Battery health", "バッテリー健全度"),
    # air conditioner
    "room_temp_c": ("Room temperature", "室温"),
    "humidity_pct": ("Humidity", "湿度"),
    "outdoor_temp_c": ("Outdoor temperature", "外気温"),
    "set_point_c": ("Set temperature", "設定温度"),
    "mode": ("Mode", "運転モード"),
    "power_w": ("Power draw", "消費電力"),
    "filter_hours": ("Filter use", "フィルター累計使用"),
    # refrigerator
    "fridge_temp_c": ("Fridge temperature", "冷蔵室温度"),
    "freezer_temp_c": ("Freezer temperature", "冷凍室温度"),
    "fridge_setpoint_c": ("Fridge set temperature", "冷蔵室設定温度"),
    "freezer_setpoint_c": ("Freezer set temperature", "冷凍室設定温度"),
    "door_open": ("Door open", "ドア開放"),
    "compressor_on": ("Compressor running", "コンプレッサー運転"),
    "compressor_duty_pct": ("Compressor duty", "コンプレッサー稼働率"),
    # washing machine
    "phase": ("Cycle phase", "運転工程"),
    "remaining_min": ("Time remaining", "残り時間"),
    "water_flow_lpm": ("Water flow", "給水流量"),
    "drum_temp_c": ("Drum temperature", "ドラム温度"),
    "leak_detected": ("Leak detected", "水漏れ検知"),
    "cycles_since_drum_clean": ("Cycles since drum cleaning", "槽洗浄後の運転回数"),
    "door_locked": ("Door locked", "ドアロック"),
}

# unit as product models write it: (English, Japanese); others read the same in both.
UNIT_LABELS: dict[str, tuple[str, str]] = {
    "h": ("h", "時間"),
    "min": ("min", "分"),
    "cycles": ("cycles", "回"),
    "deg": ("°", "°"),
    "L/min": ("L/min", "L/分"),
}

# name suffix → unit, for metrics a product model does not describe
SUFFIX_UNITS: dict[str, str] = {
    "pct": "%",
    "c": "°C",
    "kw": "kW",
    "w": "W",
    "kwh": "kWh",
    "kmh": "km/h",
    "km": "km",
    "kpa": "kPa",
    "lpm": "L/min",
    "min": "min",
    "h": "h",
    "hours": "h",
    "v": "V",
}

BOOLEAN_LABELS = {True: ("Yes", "はい"), False: ("No", "いいえ")}


def _pick(pair: tuple[str, str], lang: str | None) -> str:
    return pair[1] if lang == "ja" else pair[0]


def humanize(name: str) -> tuple[str, str | None]:
    """A readable name and a unit guessed from an unknown metric name's suffix."""
    words = [w for w in name.split("_") if w]
    unit = SUFFIX_UNITS.get(words[-1].lower()) if len(words) > 1 else None
    if unit is not None:
        words = words[:-1]
    text = " ".join(words) or name
    return text[:1].upper() + text[1:], unit


def unit_label(unit: str, lang: str | None) -> str:
    """A unit as the viewer reads it."""
    pair = UNIT_LABELS.get(unit)
    return _pick(pair, lang) if pair else unit


def metric_name(name: str, lang: str | None) -> str:
    """The metric's name alone (no unit), in the viewer's language."""
    pair = METRIC_LABELS.get(name)
    return _pick(pair, lang) if pair else humanize(name)[0]


def metric_unit(name: str, model: ProductModel | None) -> str | None:
    """The metric's unit: the product model's, else one its name implies when it is unknown."""
    spec = model.metrics.get(name) if model is not None else None
    if spec is not None:
        return spec.unit
    return None if name in METRIC_LABELS else humanize(name)[1]


def metric_label(name: str, lang: str | None, model: ProductModel | None = None) -> str:
    """ "State of charge (%)" / "充電残量（%）": name and unit in the viewer's language."""
    text = metric_name(name, lang)
    unit = metric_unit(name, model)
    if not unit:
        return text
    shown = unit_label(unit, lang)
    return f"{text}（{shown}）" if lang == "ja" else f"{text} ({shown})"


def format_reading(
    name: str, value: Any, lang: str | None, model: ProductModel | None = None
) -> str:
    """A reported value with its unit, booleans as words: "64.5 %", "はい", "cool"."""
    if isinstance(value, dict) and "v" in value:
        value = value["v"]
    if isinstance(value, bool):
        return _pick(BOOLEAN_LABELS[value], lang)
    if isinstance(value, float):
        text = f"{value:,.1f}"
    elif value is None:
        return "—"
    else:
        text = str(value)
    unit = metric_unit(name, model)
    if not unit:
        return text
    shown = unit_label(unit, lang)
    return f"{text}{shown}" if shown == "°" else f"{text} {shown}"
