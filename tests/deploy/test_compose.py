"""docker-compose.yml parses, and every KIZUNA_* variable it sets is a real setting."""

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from app.settings import Settings
from devices.cli import PASSWORD_ENV
from devices.dynsec import PLATFORM_SERVICES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
COMPONENTS = {"ingest", "api", "dashboard", "notify", "scheduler"}


def _setting_exists(model: type[BaseModel], path: list[str]) -> bool:
    field = model.model_fields.get(path[0])
    if field is None:
        return False
    if len(path) == 1:
        return True
    annotation: Any = field.annotation
    return (
        isinstance(annotation, type)
        and issubclass(annotation, BaseModel)
        and (_setting_exists(annotation, path[1:]))
    )


def _kizuna_variables() -> set[str]:
    names = set()
    for service in COMPOSE["services"].values():
        names |= {k for k in (service.get("environment") or {}) if k.startswith("KIZUNA_")}
    return names


def test_compose_defines_every_component_and_the_services_they_need() -> None:
    services = COMPOSE["services"]
    assert {"timescaledb", "mosquitto", "migrate"} <= set(services)
    commands = {tuple(s["command"]) for s in services.values() if "command" in s}
    assert {("serve", name) for name in COMPONENTS} <= commands
    for name in ("timescaledb", "mosquitto", "api", "dashboard"):
        assert "healthcheck" in services[name], name


@pytest.mark.parametrize("variable", sorted(_kizuna_variables()))
def test_environment_matches_settings(variable: str) -> None:
    broker_passwords = {PASSWORD_ENV.format(service=s.upper()) for s in PLATFORM_SERVICES}
    if variable in broker_passwords:  # read by `kizuna devices broker-services`, not settings
        return
    path = variable.removeprefix("KIZUNA_").lower().split("__")
    assert _setting_exists(Settings, path), f"{variable} is not a Kizuna setting"


def test_each_platform_service_gets_its_own_broker_password() -> None:
    setup = COMPOSE["services"]["broker-services"]
    assert setup["command"] == ["devices", "broker-services"]
    for service in PLATFORM_SERVICES:
        assert PASSWORD_ENV.format(service=service.upper()) in setup["environment"]
    assert "kizuna-ingest:" in COMPOSE["services"]["ingest"]["environment"]["KIZUNA_MQTT_URL"]
    assert "kizuna-notify:" in COMPOSE["services"]["notify"]["environment"]["KIZUNA_MQTT_URL"]


def test_mosquitto_config_is_shipped_and_deliberate() -> None:
    config = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    for directive in (
        "allow_anonymous false",
        "max_queued_messages",
        "max_inflight_messages",
        "autosave_interval",
        "persistence true",
    ):
        assert directive in config, directive
    mounted = COMPOSE["services"]["mosquitto"]["volumes"][0].split(":")[0]
    assert (ROOT / mounted).resolve() == (ROOT / "deploy/mosquitto/mosquitto.conf").resolve()
