"""Commands to a device: send (QoS 1 downlink), list, and follow their status."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from api.audit import AuditAction
from api.audit_trail import Trail, audited
from api.deps import AnyUser, OwnedDevice, SettingsDep, SyncDbConn
from api.routers.device_support import DownlinkDep, domain_errors, now, require_device_writer
from devices import commands
from devices.models import CommandCreate, CommandPublic

router = APIRouter(prefix="/devices/{device_uid}/commands", tags=["commands"])
CommandId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


@router.post("", status_code=status.HTTP_202_ACCEPTED, summary="Send a command")
@audited(AuditAction.DEVICE_COMMAND_SENT, target_kind="device", target_param="device_uid")
def send_command(
    principal: AnyUser,
    device: OwnedDevice,
    conn: SyncDbConn,
    downlink: DownlinkDep,
    settings: SettingsDep,
    body: CommandCreate,
    trail: Trail,
) -> CommandPublic:
    """Validated against the product model; status moves on as the device answers."""
    require_device_writer(principal, device)
    with domain_errors():
        sent = commands.send_command(
            conn,
            downlink,
            settings.mqtt_topic_prefix,
            device.uid,
            body,
            now(),
            requested_by=f"{principal.role}:{principal.public_id}",
        )
    trail.record_sync(conn, details={"command": sent.name, "command_id": sent.command_id})
    return sent


@router.get("", summary="Recent commands of a device")
def list_commands(
    device: OwnedDevice, conn: SyncDbConn, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[CommandPublic]:
    """Newest first."""
    return commands.list_commands(conn, device.uid, limit)


@router.get("/{command_id}", summary="One command")
def get_command(device: OwnedDevice, conn: SyncDbConn, command_id: CommandId) -> CommandPublic:
    """Where the command stands."""
    with domain_errors():
        return commands.get_command(conn, device.uid, command_id)
