"""Drive Mosquitto's dynamic-security plugin over `$CONTROL/dynamic-security/v1` (no restart).

One admin MQTT connection sends commands and waits for each answer by correlation id. Every
device gets a client whose username and client id are its uid and a role of its own with
literal topics: Mosquitto 2.0's dynsec does not expand `%u` in publish ACLs, so a shared
role cannot express "only your own topics".
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion

from app.broker_url import MqttEndpoint
from devices.errors import BrokerError, BrokerRefused
from devices.protocol import PROTOCOL_VERSION, Channel, device_topic

log = structlog.get_logger(__name__)

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = CONTROL_TOPIC + "/response"
DEVICE_ROLE_PREFIX = "kizuna-device-"
DEVICE_SENDS = (Channel.TELEMETRY, Channel.EVENTS, Channel.STATUS, Channel.COMMAND_ACKS)


@dataclass(frozen=True)
class Acl:
    """One dynsec ACL entry."""

    acltype: str
    topic: str
    allow: bool = True
    priority: int = 0

    def as_json(self) -> dict[str, Any]:
        """The entry as dynsec expects it."""
        return {
            "acltype": self.acltype,
            "topic": self.topic,
            "allow": self.allow,
            "priority": self.priority,
        }


def device_role_name(uid: str) -> str:
    """The dynsec role holding one device's ACLs."""
    return DEVICE_ROLE_PREFIX + uid


def device_acls(prefix: str, uid: str) -> list[Acl]:
    """A device may publish only on its own uplink topics and subscribe only under its own."""
    sends = [Acl("publishClientSend", device_topic(prefix, uid, ch)) for ch in DEVICE_SENDS]
    own = "/".join((prefix, PROTOCOL_VERSION, "devices", uid, "#"))
    return [*sends, Acl("subscribePattern", own), Acl("unsubscribePattern", own)]


def service_acls(prefix: str, service: str) -> list[Acl]:
    """What each platform service may do on the broker (its own role, not a device's)."""
    devices = "/".join((prefix, PROTOCOL_VERSION, "devices"))
    owners = "/".join((prefix, PROTOCOL_VERSION, "owners"))
    uplinks = [f"{devices}/+/{ch.value}" for ch in DEVICE_SENDS]
    if service == "ingest":
        # Scaled-out ingest uses shared subscriptions; dynsec checks the full $share filter.
        filters = uplinks + [f"$share/+/{t}" for t in uplinks]
        return [Acl("subscribePattern", t) for t in filters] + [
            Acl("unsubscribePattern", t) for t in filters
        ]
    if service == "devices":  # the API: commands and desired state downlink
        return [
            Acl("publishClientSend", f"{devices}/+/{Channel.COMMANDS.value}/+"),
            Acl("publishClientSend", f"{devices}/+/{Channel.DESIRED.value}"),
        ]
    if service == "notify":
        return [Acl("publishClientSend", f"{owners}/+/feed")]
    raise ValueError(f"unknown platform service {service!r}")


PLATFORM_SERVICES = ("ingest", "devices", "notify")


class DynsecAdmin:
    """A connected dynsec administrator; use as a context manager."""

    def __init__(self, endpoint: MqttEndpoint, timeout_s: float = 10.0) -> None:
        self._endpoint = endpoint
        self._timeout_s = timeout_s
        self._waiting: dict[str, tuple[threading.Event, list[dict[str, Any]]]] = {}
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"kizuna-dynsec-{secrets.token_hex(4)}",
            protocol=mqtt.MQTTv311,
        )
        if endpoint.username:
            self._client.username_pw_set(endpoint.username, endpoint.password)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._on_message

    def __enter__(self) -> DynsecAdmin:
        self.open()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def open(self) -> None:
        """Connect and subscribe to answers, or raise BrokerError."""
        try:
            self._client.connect(self._endpoint.host, self._endpoint.port, keepalive=30)
        except OSError as exc:
            raise BrokerError(f"cannot reach the broker: {exc}") from exc
        self._client.loop_start()
        if not self._subscribed.wait(self._timeout_s):
            self.close()
            raise BrokerError("the broker refused the dynsec admin or did not answer")

    def close(self) -> None:
        """Disconnect."""
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            client.subscribe(RESPONSE_TOPIC, qos=1)
        else:
            log.warning("devices.dynsec_connect_refused", reason=str(reason))

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            answers = json.loads(message.payload)["responses"]
        except (ValueError, KeyError, TypeError):
            log.warning("devices.dynsec_bad_response")
            return
        for answer in answers:
            with self._lock:
                waiting = self._waiting.get(str(answer.get("correlationData")))
            if waiting:
                waiting[1].append(answer)
                waiting[0].set()

    def execute(
        self, commands: Iterable[dict[str, Any]], *, may_fail: frozenset[str] = frozenset()
    ) -> list[dict[str, Any]]:
        """Send commands in one message (run in order); raise BrokerRefused on an error.

        Errors of commands named in `may_fail` (deleting what may not exist) are tolerated.
        """
        batch = list(commands)
        tag = secrets.token_hex(8)
        for index, command in enumerate(batch):
            command["correlationData"] = f"{tag}-{index}"
        pending: dict[str, tuple[threading.Event, list[dict[str, Any]]]] = {
            c["correlationData"]: (threading.Event(), []) for c in batch
        }
        with self._lock:
            self._waiting.update(pending)
        try:
            info = self._client.publish(CONTROL_TOPIC, json.dumps({"commands": batch}), qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise BrokerError(f"could not send to the broker (rc={info.rc})")
            answers = [self._wait(event, box) for event, box in pending.values()]
        finally:
            with self._lock:
                for key in pending:
                    self._waiting.pop(key, None)
        failed = [a for a in answers if a.get("error") and a.get("command") not in may_fail]
        if failed:
            raise BrokerRefused(f"{failed[0].get('command')}: {failed[0]['error']}")
        return answers

    def _wait(self, event: threading.Event, box: list[dict[str, Any]]) -> dict[str, Any]:
        if not event.wait(self._timeout_s):
            raise BrokerError("the broker did not answer a dynsec command in time")
        return box[0]

    def _replace_client(
        self, username: str, rolename: str, acls: list[Acl], client: dict[str, Any]
    ) -> None:
        # One message, one round trip. Client before role: Mosquitto 2.0.11 stops answering
        # when it deletes a client whose role was deleted first.
        self.execute(
            [
                {"command": "deleteClient", "username": username},
                {"command": "deleteRole", "rolename": rolename},
                {
                    "command": "createRole",
                    "rolename": rolename,
                    "acls": [a.as_json() for a in acls],
                },
                {
                    "command": "createClient",
                    "username": username,
                    "roles": [{"rolename": rolename}],
                    **client,
                },
            ],
            may_fail=frozenset({"deleteClient", "deleteRole"}),
        )

    def create_device(self, prefix: str, uid: str, password: str) -> None:
        """A client for one device, bound to its own client id and role (replaces leftovers)."""
        client = {"clientid": uid, "password": password}
        self._replace_client(uid, device_role_name(uid), device_acls(prefix, uid), client)

    def set_password(self, username: str, password: str) -> None:
        """Rotate a client's password and cut its open connections, in one message."""
        # 2.0's setClientPassword keeps current sessions; disable+enable cuts them.
        self.execute(
            [
                {"command": "setClientPassword", "username": username, "password": password},
                {"command": "disableClient", "username": username},
                {"command": "enableClient", "username": username},
            ]
        )

    def delete_device(self, uid: str) -> None:
        """Delete a device's client (disconnecting it) and its role; missing ones are fine."""
        self.execute(
            [
                {"command": "deleteClient", "username": uid},
                {"command": "deleteRole", "rolename": device_role_name(uid)},
            ],
            may_fail=frozenset({"deleteClient", "deleteRole"}),
        )

    def ensure_service(self, prefix: str, service: str, username: str, password: str) -> None:
        """A platform service's client with its own role (idempotent; resets the password)."""
        role = f"kizuna-service-{service}"
        self._replace_client(username, role, service_acls(prefix, service), {"password": password})
