"""Demo households: owners with personas and their devices (serials, nicknames, homes)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.environment import HOME_AREAS
from simulator.models import DeviceSpec

FAMILY_NAMES = ("Sato", "Suzuki", "Takahashi", "Tanaka", "Ito", "Watanabe", "Yamamoto", "Nakamura")
FAMILY_NAMES_JA = ("佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村")
GIVEN_NAMES = ("Haruto", "Yui", "Sota", "Hina", "Ren", "Aoi", "Yuto", "Mei", "Emma", "Rio")
GIVEN_NAMES_JA = ("陽翔", "結衣", "蒼大", "陽菜", "蓮", "葵", "悠斗", "芽衣", "恵麻", "莉央")
NICKNAMES = {
    "ev": ("うちのクルマ", "Family car"),
    "refrigerator": ("台所の冷蔵庫", "Kitchen fridge"),
    "washing_machine": ("洗濯機", "Washer"),
    "air_conditioner": ("リビングのエアコン", "Living-room AC"),
}
MODEL_CODES = {"ev": "EV", "refrigerator": "RF", "washing_machine": "WM", "air_conditioner": "AC"}
PERSONA_ORDER = ("commuter", "family", "retiree", "remote_worker")


@dataclass(frozen=True)
class DemoOwner:
    """The person a demo household's devices belong to (fictional)."""

    key: str
    name: str
    email: str
    language: str
    time_zone: str
    persona: str


@dataclass(frozen=True)
class DemoDevice:
    """A device the demo registers in the platform and then simulates."""

    uid: str
    serial: str
    model_id: str
    nickname: str
    owner: DemoOwner
    latitude: float
    longitude: float

    @property
    def spec(self) -> DeviceSpec:
        """What the simulator needs to run this device."""
        return DeviceSpec(
            uid=self.uid,
            model=self.model_id,
            persona=self.owner.persona,
            home_lat=self.latitude,
            home_lon=self.longitude,
        )


def _household_models(index: int, rng: np.random.Generator) -> list[str]:
    models = ["refrigerator", "air_conditioner", "washing_machine"]
    if index % 3 != 2 or rng.random() < 0.3:
        models.insert(0, "ev")
    return models


def demo_devices(count: int, *, seed: int = 1, uid_prefix: str = "kz") -> list[DemoDevice]:
    """`count` devices spread over households (2-4 products each), the same for the same seed."""
    rng = np.random.default_rng([seed, 7])
    devices: list[DemoDevice] = []
    household = 0
    while len(devices) < count:
        owner = _owner(household, rng)
        area = HOME_AREAS[household % len(HOME_AREAS)]
        lat = round(area[1] + float(rng.uniform(-0.01, 0.01)), 5)
        lon = round(area[2] + float(rng.uniform(-0.01, 0.01)), 5)
        for model_id in _household_models(household, rng):
            if len(devices) == count:
                break
            number = len(devices) + 1
            code = MODEL_CODES[model_id]
            ja, en = NICKNAMES[model_id]
            devices.append(
                DemoDevice(
                    uid=f"{uid_prefix}-{code.lower()}-{number:06d}",
                    serial=f"KZ{code}{seed % 100:02d}{number:07d}",
                    model_id=model_id,
                    nickname=ja if owner.language == "ja" else en,
                    owner=owner,
                    latitude=lat,
                    longitude=lon,
                )
            )
        household += 1
    return devices


def _owner(index: int, rng: np.random.Generator) -> DemoOwner:
    family = int(rng.integers(len(FAMILY_NAMES)))
    number = int(rng.integers(len(GIVEN_NAMES)))
    given = GIVEN_NAMES[number]
    language = "ja" if rng.random() < 0.7 else "en"
    name = (
        f"{FAMILY_NAMES_JA[family]} {GIVEN_NAMES_JA[number]}"
        if language == "ja"
        else f"{given} {FAMILY_NAMES[family]}"
    )
    return DemoOwner(
        key=f"household-{index:05d}",
        name=name,
        email=f"{given.lower()}.{FAMILY_NAMES[family].lower()}.{index}@example.com",
        language=language,
        time_zone="Asia/Tokyo",
        persona=PERSONA_ORDER[index % len(PERSONA_ORDER)],
    )
