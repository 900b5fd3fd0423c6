"""Pydantic models of the devices package: what goes in (Create/Update) and out (Public)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from devices.catalog import ModelId
from devices.protocol import DeviceUid, MetricName, MetricValue

Language = Literal["en", "ja"]
MemberRole = Literal["owner", "family"]
CommandStatus = Literal["pending", "delivered", "acked", "failed", "expired"]
Connection = Literal["online", "offline", "unknown"]
# No control characters anywhere a person types text (NUL breaks PostgreSQL text).
PlainText = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[^\x00-\x1f\x7f]*$")]
Serial = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        max_length=254,
        pattern=r"^[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+\.[^@\s]+$",
    ),
]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9 ()-]{4,32}$")]

_TIME_ZONES = frozenset(available_timezones())


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class CustomerCreate(_In):
    """A new customer; every personal field is stored encrypted."""

    name: Annotated[PlainText, Field(min_length=1, max_length=120)]
    email: Email
    phone: Phone | None = None
    address: Annotated[PlainText, Field(max_length=300)] | None = None
    language: Language = "en"
    time_zone: str = "Asia/Tokyo"

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value not in _TIME_ZONES:
            raise ValueError("unknown IANA time zone")
        return value


class CustomerUpdate(_In):
    """Fields a customer may change about themselves.

    Email and phone are not here: changing them needs re-authentication and tells the old
    address (POST /api/v1/me/email and /me/phone), because that is how accounts are taken over.
    """

    name: Annotated[PlainText, Field(min_length=1, max_length=120)] | None = None
    address: Annotated[PlainText, Field(max_length=300)] | None = None
    language: Language | None = None
    time_zone: str | None = None

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None and value not in _TIME_ZONES:
            raise ValueError("unknown IANA time zone")
        return value


class CustomerPublic(_Out):
    """A customer with personal data decrypted (callers mask it for non-operators)."""

    id: int = Field(exclude=True)
    public_id: UUID
    name: str | None
    email: str | None
    phone: str | None
    address: str | None
    language: Language
    time_zone: str
    created_at: datetime


class DeviceCreate(_In):
    """A device to register; uid defaults to one generated from the model id."""

    serial: Serial
    model_id: ModelId
    uid: DeviceUid | None = None
    firmware: Annotated[PlainText, Field(max_length=64)] | None = None
    nickname: Annotated[PlainText, Field(max_length=80)] | None = None
    # Where a fixed appliance stands, or an EV's home: the home geofence and the map use it.
    # It locates the owner's home, so it is written here and never returned by the API.
    latitude: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)] | None = None
    longitude: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)] | None = None


class DeviceUpdate(_In):
    """What an owner may change about a device."""

    nickname: Annotated[PlainText, Field(max_length=80)] | None = None


class DevicePublic(_Out):
    """A registered device (role is the caller's role when a customer asks)."""

    id: int = Field(exclude=True)
    uid: str
    serial: str
    model_id: str
    firmware: str | None
    nickname: str | None
    created_at: datetime
    decommissioned_at: datetime | None
    role: MemberRole | None = None


class MemberPublic(_Out):
    """One person's access to a device, current or past."""

    customer_public_id: UUID
    role: MemberRole
    started_at: datetime
    ended_at: datetime | None


class ShareCreate(_In):
    """Share a device with a family member, found by the email on record."""

    email: Email


class TransferCreate(_In):
    """Hand a device to a new owner, found by the email on record."""

    email: Email
    keep_family: bool = False


class ReportedValue(BaseModel):
    """The latest value of one metric and its device time."""

    v: Any
    t: datetime | None = None


class Twin(BaseModel):
    """Reported and desired state, the difference between them, and connection state."""

    uid: str
    reported: dict[str, ReportedValue]
    reported_at: datetime | None
    desired: dict[str, Any]
    desired_version: int
    delta: dict[str, Any]
    connection: Connection
    online: bool
    last_seen: datetime | None
    connection_changed_at: datetime | None


class DesiredUpdate(_In):
    """New desired values (merged into the current ones; null removes a key)."""

    values: dict[MetricName, MetricValue | None] = Field(min_length=1, max_length=64)


class ConnectionEvent(_Out):
    """One change of a device's connection state."""

    state: Literal["online", "offline"]
    received_at: datetime
    device_ts: datetime | None
    firmware: str | None


class CommandCreate(_In):
    """A command to send to a device; it expires if not answered within ttl_s."""

    name: MetricName
    args: dict[MetricName, MetricValue] = Field(default_factory=dict, max_length=32)
    ttl_s: int = Field(default=300, ge=5, le=86_400)


class CommandPublic(_Out):
    """A command and where it stands."""

    command_id: str
    name: str
    args: dict[str, Any]
    status: CommandStatus
    created_at: datetime
    expires_at: datetime
    published_at: datetime | None
    delivered_at: datetime | None
    finished_at: datetime | None
    detail: str | None


class ProvisionedCredential(BaseModel):
    """A device's MQTT credential: the password is shown here once and never again."""

    uid: str
    username: str
    client_id: str
    password: str
    topic_prefix: str


class ImportReport(BaseModel):
    """Outcome of a bulk import that succeeded."""

    imported: int
    seconds: float
