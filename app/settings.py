"""The one Kizuna settings object, read from `KIZUNA_*` environment variables and `.env`.

Nested sections use `__`, e.g. `KIZUNA_INGEST__BATCH_MAX_MESSAGES=5000`.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from api.config import ApiConfig
from dashboard.config import DashboardConfig
from devices.config import DevicesConfig
from ingest.config import IngestConfig
from notify.config import NotifyConfig
from rules.config import RulesConfig
from store.config import StoreConfig

# Well-known development secrets: convenient on a laptop, refused anywhere else.
DEVELOPMENT_SECRET_KEY = "kizuna-development-secret-key-not-for-production"  # noqa: S105
DEVELOPMENT_DATA_KEY = "a2l6dW5hLWRldmVsb3BtZW50LWRhdGEta2V5LTMyYiE="  # base64 of 32 bytes
MIN_SECRET_LENGTH = 32


class Settings(BaseSettings):
    """Everything a Kizuna process needs to know about its environment."""

    model_config = SettingsConfigDict(
        env_prefix="KIZUNA_",
        env_file=".env",
        env_nested_delimiter="__",
        extra="ignore",
        frozen=True,
    )

    env: Literal["development", "test", "production"] = Field(
        default="development", description="Outside development, default secrets are refused."
    )
    data_dir: Path = Field(
        default=Path(".kizuna"), description="Embedded database, broker state and demo files."
    )
    database_url: str | None = Field(
        default=None, description="PostgreSQL/TimescaleDB URL; unset starts an embedded one."
    )
    mqtt_url: str | None = Field(
        default=None, description="mqtt://user:pass@host:port; unset starts an embedded broker."
    )
    embedded_broker: Literal["auto", "mosquitto", "rumqttd"] = Field(
        default="auto", description="Embedded broker: Mosquitto when installed, else rumqttd."
    )
    mqtt_topic_prefix: str = Field(
        default="kizuna",
        pattern=r"^[A-Za-z0-9_\-]{1,64}$",
        description="First topic level: {prefix}/v1/devices/{uid}/...",
    )
    secret_key: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_SECRET_KEY), description="Signs tokens; 32+ random chars."
    )
    data_encryption_key: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_DATA_KEY),
        description="Base64 of 32 random bytes; encrypts personal data (AES-256-GCM).",
    )
    data_encryption_old_keys: list[SecretStr] = Field(
        default_factory=list, description="Previous keys, still able to decrypt (rotation)."
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["console", "json"] = Field(
        default="console", description="json for log collectors."
    )

    store: StoreConfig = StoreConfig()
    ingest: IngestConfig = IngestConfig()
    devices: DevicesConfig = DevicesConfig()
    rules: RulesConfig = RulesConfig()
    notify: NotifyConfig = NotifyConfig()
    api: ApiConfig = ApiConfig()
    dashboard: DashboardConfig = DashboardConfig()

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_scheme(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("mqtt", "mqtts", "tcp"):
            raise ValueError("KIZUNA_MQTT_URL must look like mqtt://user:password@host:1883")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("postgresql", "postgres"):
            raise ValueError("KIZUNA_DATABASE_URL must look like postgresql://user@host:5432/db")
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_secrets(self) -> Settings:
        if self.env == "development":
            return self
        secret = self.secret_key.get_secret_value()
        if secret == DEVELOPMENT_SECRET_KEY or len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"KIZUNA_SECRET_KEY must be set to a random value of at least "
                f"{MIN_SECRET_LENGTH} characters when KIZUNA_ENV={self.env}"
            )
        if self.data_encryption_key.get_secret_value() == DEVELOPMENT_DATA_KEY:
            raise ValueError(
                f"KIZUNA_DATA_ENCRYPTION_KEY must be set (base64 of 32 random bytes) "
                f"when KIZUNA_ENV={self.env}"
            )
        return self

    @cached_property
    def uses_embedded_database(self) -> bool:
        """True when no external database is configured."""
        return self.database_url is None

    @cached_property
    def uses_embedded_broker(self) -> bool:
        """True when no external MQTT broker is configured."""
        return self.mqtt_url is None


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, with explicit overrides winning."""
    return Settings(**overrides)  # type: ignore[arg-type]


def describe_settings(settings: BaseModel, prefix: str = "KIZUNA_") -> list[tuple[str, str, str]]:
    """(environment variable, current value, description) for every setting, secrets hidden."""
    rows: list[tuple[str, str, str]] = []
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        variable = f"{prefix}{name.upper()}"
        if isinstance(value, BaseModel):
            rows += describe_settings(value, f"{variable}__")
            continue
        shown = "**********" if isinstance(value, SecretStr) else _without_password(str(value))
        if isinstance(value, list) and value and isinstance(value[0], SecretStr):
            shown = f"[{len(value)} hidden]"
        rows.append((variable, shown, field.description or ""))
    return rows


def _without_password(text: str) -> str:
    """Hide the password of a URL such as postgresql://user:secret@host/db."""
    parts = urlsplit(text)
    if not parts.scheme or not parts.password:
        return text
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
