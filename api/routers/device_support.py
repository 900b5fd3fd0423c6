"""What the device, command and customer routers share: error mapping and broker access."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request

from api.deps import DeviceRef, SettingsDep
from api.errors import ApiError, Conflict, Forbidden, NotFound, Unprocessable
from api.security.principal import Principal
from app.broker_url import MqttEndpoint
from devices import errors
from devices.credentials import CredentialBroker, credential_broker
from devices.downlink import Downlink, MqttDownlink
from devices.service import cipher_from_settings
from store.encryption import FieldCipher

_DOWNLINK_LOCK = threading.Lock()


class ServiceUnavailable(ApiError):
    """The broker did not confirm a change; retry later."""

    status = 503
    slug = "service-unavailable"
    title = "Service unavailable"


@contextlib.contextmanager
def domain_errors() -> Iterator[None]:
    """Turn devices-package errors into the API's problem responses."""
    try:
        yield
    except errors.NotFound as exc:
        raise NotFound(str(exc)) from exc
    except errors.Conflict as exc:
        raise Conflict(str(exc)) from exc
    except errors.InvalidRequest as exc:
        raise Unprocessable(str(exc)) from exc
    except errors.BrokerError as exc:
        raise ServiceUnavailable("the MQTT broker did not confirm the change") from exc


def get_downlink(request: Request) -> Downlink:
    """The app's MQTT downlink, connected on first use; the app's lifespan closes it."""
    state = request.app.state
    with _DOWNLINK_LOCK:
        link: Downlink | None = getattr(state, "devices_downlink", None)
        if link is None:
            url = state.settings.mqtt_url
            if url is None:
                raise ServiceUnavailable("no MQTT broker is configured")
            timeout = state.settings.devices.publish_timeout_s
            with domain_errors():
                link = MqttDownlink(MqttEndpoint.from_url(url), timeout).open()
            state.devices_downlink = link
    return link


def close_downlink(state: Any) -> None:
    """Disconnect the app's downlink, if one was opened, and stop its network thread."""
    with _DOWNLINK_LOCK:
        link = getattr(state, "devices_downlink", None)
        state.devices_downlink = None
    close = getattr(link, "close", None)  # test doubles may have nothing to close
    if close is not None:
        close()


def get_credential_broker(settings: SettingsDep) -> Iterator[CredentialBroker]:
    """The broker administrator for credential changes, connected for one request."""
    with domain_errors(), credential_broker(settings) as broker:
        yield broker


def get_cipher(request: Request) -> FieldCipher:
    """The personal-data cipher, built once per app."""
    cipher: FieldCipher | None = getattr(request.app.state, "devices_cipher", None)
    if cipher is None:
        cipher = cipher_from_settings(request.app.state.settings)
        request.app.state.devices_cipher = cipher
    return cipher


DownlinkDep = Annotated[Downlink, Depends(get_downlink)]
BrokerDep = Annotated[CredentialBroker, Depends(get_credential_broker)]
CipherDep = Annotated[FieldCipher, Depends(get_cipher)]


def now() -> datetime:
    """The current time (UTC)."""
    return datetime.now(UTC)


def require_owner_or_operator(principal: Principal, device: DeviceRef) -> None:
    """Owners manage their device's people; operators manage anyone's."""
    if principal.role == "operator" or device.relation == "owner":
        return
    raise Forbidden("only the owner or an operator may do this")


def require_device_writer(principal: Principal, device: DeviceRef) -> None:
    """Owners, family, operators and write-scoped API keys may act on a device; support reads."""
    if principal.role in ("operator", "integration") or device.relation in ("owner", "family"):
        return
    raise Forbidden("read-only access to this device")
