"""A private Mosquitto with the dynamic-security plugin, and registry helpers."""

from __future__ import annotations

import getpass
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.broker_url import MqttEndpoint
from app.embedded import free_port, wait_for_port
from devices.broker_setup import write_initial_dynsec_config
from devices.catalog_sync import sync_product_models
from devices.models import CustomerCreate, DeviceCreate
from devices.service import assign_owner, create_customer, register_device
from store.encryption import FieldCipher

DYNSEC_PLUGIN_PATHS = (
    Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"),
    Path("/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so"),
    Path("/usr/lib/mosquitto_dynamic_security.so"),
)


@dataclass(frozen=True)
class DynsecBroker:
    """A running Mosquitto that authenticates every client through dynsec."""

    host: str
    port: int
    admin_username: str
    admin_password: str
    log_path: Path

    @property
    def admin_endpoint(self) -> MqttEndpoint:
        """How the administrator connects."""
        return MqttEndpoint(self.host, self.port, self.admin_username, self.admin_password)

    @property
    def url(self) -> str:
        """mqtt:// URL without credentials."""
        return f"mqtt://{self.host}:{self.port}"


def _mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None


@pytest.fixture(scope="session")
def dynsec_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DynsecBroker]:
    """Mosquitto with dynsec on a free loopback port, anonymous clients refused."""
    binary = _mosquitto_binary()
    plugin = next((p for p in DYNSEC_PLUGIN_PATHS if p.exists()), None)
    if binary is None or plugin is None:
        pytest.skip("mosquitto with the dynamic-security plugin is not installed")
    folder = tmp_path_factory.mktemp("dynsec")
    admin_password = secrets.token_urlsafe(24)
    write_initial_dynsec_config(folder / "dynsec.json", "kizuna-admin", admin_password)
    port = free_port()
    config = folder / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous false\n"
        "set_tcp_nodelay true\n"
        # Started as root, Mosquitto would switch to user "mosquitto" and lose the files.
        f"user {getpass.getuser()}\n"
        f"plugin {plugin}\n"
        f"plugin_opt_config_file {folder / 'dynsec.json'}\n"
        "log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n"
    )
    log_path = folder / "mosquitto.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen([binary, "-c", str(config)], stderr=log_file)
        try:
            wait_for_port("127.0.0.1", port, 10)
            yield DynsecBroker("127.0.0.1", port, "kizuna-admin", admin_password, log_path)
        finally:
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture
def cipher() -> FieldCipher:
    """A personal-data cipher with a random key."""
    return FieldCipher(os.urandom(32))


@pytest.fixture
def registry(db: Any) -> Any:
    """The test database with the shipped product models loaded."""
    sync_product_models(db)
    return db


def new_customer(db: Any, cipher: FieldCipher, name: str = "Aiko") -> int:
    """A customer with a unique email; returns the internal id."""
    email = f"{name.lower()}-{secrets.token_hex(4)}@example.com"
    created = create_customer(db, cipher, CustomerCreate(name=name, email=email, language="ja"))
    return created.id


def new_device(db: Any, model_id: str = "ev", owner_id: int | None = None) -> str:
    """A registered device (optionally owned); returns its uid."""
    serial = f"SN-{secrets.token_hex(6)}"
    device = register_device(db, DeviceCreate(serial=serial, model_id=model_id))
    if owner_id is not None:
        assign_owner(db, device.uid, owner_id)
    return device.uid
