"""Settings: one object, env prefix, nested sections, unsafe secrets refused."""

import pytest

from app.settings import Settings


def test_nested_sections_read_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIZUNA_INGEST__BATCH_MAX_MESSAGES", "1234")
    monkeypatch.setenv("KIZUNA_MQTT_URL", "mqtt://u:p@broker:1884")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.ingest.batch_max_messages == 1234
    assert settings.mqtt_url == "mqtt://u:p@broker:1884"
    assert settings.uses_embedded_database and not settings.uses_embedded_broker


@pytest.mark.parametrize("env", ["production", "test"])
def test_default_secrets_refused_outside_development(env: str) -> None:
    with pytest.raises(ValueError, match="KIZUNA_SECRET_KEY"):
        Settings(_env_file=None, env=env)  # type: ignore[call-arg]


def test_short_secret_refused_in_production() -> None:
    with pytest.raises(ValueError, match="at least 32 characters"):
        Settings(_env_file=None, env="production", secret_key="short")  # type: ignore[call-arg]


def test_bad_urls_get_clear_errors() -> None:
    with pytest.raises(ValueError, match="KIZUNA_MQTT_URL"):
        Settings(_env_file=None, mqtt_url="http://x")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="KIZUNA_DATABASE_URL"):
        Settings(_env_file=None, database_url="mysql://x")  # type: ignore[call-arg]


def test_describe_settings_lists_nested_variables_and_hides_secrets() -> None:
    from app.settings import describe_settings

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url="postgresql://kizuna:hunter2-password@db:5432/kizuna",
        secret_key="x" * 40,
    )
    rows = {variable: value for variable, value, _ in describe_settings(settings)}
    assert rows["KIZUNA_INGEST__BATCH_MAX_MESSAGES"] == "2000"
    assert rows["KIZUNA_SECRET_KEY"] == "**********"
    assert rows["KIZUNA_DATABASE_URL"] == "postgresql://kizuna:***@db:5432/kizuna"
    assert not any("hunter2" in value or "xxxx" in value for value in rows.values())
