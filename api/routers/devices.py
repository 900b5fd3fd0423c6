"""Devices: registry, people with access, twin, connection history and credentials."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Path, Query, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from api.audit import AuditAction, customer_public_id
from api.audit_trail import Trail, audited
from api.deps import AnyUser, OperatorOnly, OwnedDevice, SettingsDep, SyncDbConn
from api.errors import Forbidden, problem_response
from api.pagination import Page, Pagination
from api.routers.device_support import (
    BrokerDep,
    CipherDep,
    DownlinkDep,
    domain_errors,
    now,
    require_device_writer,
    require_owner_or_operator,
)
from devices import credentials, service, twin
from devices.bulk_import import import_devices_csv_bytes
from devices.errors import ImportRejected
from devices.models import (
    ConnectionEvent,
    DesiredUpdate,
    DeviceCreate,
    DevicePublic,
    DeviceUpdate,
    ImportReport,
    MemberPublic,
    ProvisionedCredential,
    ShareCreate,
    TransferCreate,
    Twin,
)
from devices.protocol import DEVICE_UID_PATTERN

router = APIRouter(prefix="/devices", tags=["devices"])
DeviceUidPath = Annotated[str, Path(pattern=DEVICE_UID_PATTERN, max_length=64)]
ModelFilter = Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class OwnerAssign(BaseModel):
    """The first owner of a device."""

    model_config = ConfigDict(extra="forbid")
    customer_public_id: UUID


@router.get("", summary="Devices the caller may see")
def list_devices(
    principal: AnyUser, conn: SyncDbConn, page: Pagination, model_id: ModelFilter = None
) -> Page[DevicePublic]:
    """Customers get what they own or share; staff and API keys get every device."""
    after = str(page.after[0]) if page.after else None
    if principal.role == "customer":
        assert principal.customer_id is not None
        rows = service.devices_visible_to(conn, principal.customer_id, page.limit + 1, after)
        rows = [d for d in rows if model_id is None or d.model_id == model_id]
    else:
        rows = service.list_devices(conn, model_id, page.limit + 1, after)
    return page.page(rows, key=lambda d: [d.uid])


@router.post("", status_code=status.HTTP_201_CREATED, summary="Register a device")
@audited(AuditAction.DEVICE_REGISTERED, target_kind="device")
def register_device(
    _: OperatorOnly, conn: SyncDbConn, body: DeviceCreate, trail: Trail
) -> DevicePublic:
    """Register one device of a known product model."""
    with domain_errors():
        device = service.register_device(conn, body)
    trail.record_sync(conn, target_id=device.uid, details={"model_id": device.model_id})
    return device


@router.post("/import", summary="Import devices from CSV (all or nothing)", response_model=None)
@audited(AuditAction.DEVICES_IMPORTED, target_kind="device")
def import_devices(
    _: OperatorOnly,
    conn: SyncDbConn,
    data: Annotated[bytes, Body(media_type="text/csv")],
    trail: Trail,
) -> ImportReport | JSONResponse:
    """Body: text/csv with serial,model_id[,uid,firmware,nickname]; bad rows listed by line."""
    with domain_errors():
        try:
            report = import_devices_csv_bytes(conn, data)
            trail.record_sync(conn, details={"imported": report.imported})
            return report
        except ImportRejected as exc:
            problems = [{"line": p.line, "reason": p.reason} for p in exc.problems]
            return problem_response(
                422, str(exc), extra={"problems": problems, "total_bad": exc.total_bad}
            )


@router.get("/{device_uid}", summary="One device")
def get_device(device: OwnedDevice, conn: SyncDbConn) -> DevicePublic:
    """The device, with the caller's role when the caller is a customer."""
    with domain_errors():
        found = service.get_device(conn, device.uid)
    return found.model_copy(update={"role": device.relation})


@router.patch("/{device_uid}", summary="Rename a device")
@audited(AuditAction.DEVICE_RENAMED, target_kind="device", target_param="device_uid")
def update_device(
    principal: AnyUser, device: OwnedDevice, conn: SyncDbConn, body: DeviceUpdate, trail: Trail
) -> DevicePublic:
    """Owners and operators may rename a device."""
    require_owner_or_operator(principal, device)
    with domain_errors():
        renamed = service.rename_device(conn, device.uid, body.nickname)
    # The nickname itself stays out of the log: owners name things after people.
    trail.record_sync(conn)
    return renamed.model_copy(update={"role": device.relation})


@router.get("/{device_uid}/members", summary="People with access to a device")
def list_members(
    principal: AnyUser, device: OwnedDevice, conn: SyncDbConn, history: bool = False
) -> list[MemberPublic]:
    """Owners and staff see who shares the device (and, with history, who did)."""
    if principal.role == "customer" and device.relation != "owner":
        raise Forbidden("only the owner sees who shares this device")
    with domain_errors():
        return service.members(conn, device.uid, history=history)


@router.post("/{device_uid}/members", status_code=201, summary="Share with a family member")
@audited(AuditAction.DEVICE_SHARED, target_kind="device", target_param="device_uid")
def share_device(
    principal: AnyUser,
    device: OwnedDevice,
    conn: SyncDbConn,
    cipher: CipherDep,
    body: ShareCreate,
    trail: Trail,
) -> list[MemberPublic]:
    """Give a registered customer (found by email) family access."""
    require_owner_or_operator(principal, device)
    with domain_errors():
        member = service.customer_id_by_email(conn, cipher, body.email)
        service.share(conn, device.uid, member)
        trail.record_sync(conn, details={"member": customer_public_id(conn, member)})
        return service.members(conn, device.uid)


@router.delete("/{device_uid}/members/{customer_public_id}", status_code=204)
@audited(AuditAction.DEVICE_UNSHARED, target_kind="device", target_param="device_uid")
def unshare_device(
    principal: AnyUser,
    device: OwnedDevice,
    conn: SyncDbConn,
    cipher: CipherDep,
    customer_public_id: UUID,
    trail: Trail,
) -> None:
    """End a family member's access (the owner, an operator, or the member themselves)."""
    with domain_errors():
        member = service.get_customer_by_public_id(conn, cipher, str(customer_public_id))
        if member.id != principal.customer_id:
            require_owner_or_operator(principal, device)
        service.unshare(conn, device.uid, member.id)
    trail.record_sync(conn, details={"member": str(customer_public_id)})


@router.post("/{device_uid}/transfer", summary="Transfer to a new owner")
@audited(AuditAction.DEVICE_TRANSFERRED, target_kind="device", target_param="device_uid")
def transfer_device(
    principal: AnyUser,
    device: OwnedDevice,
    conn: SyncDbConn,
    cipher: CipherDep,
    body: TransferCreate,
    trail: Trail,
) -> list[MemberPublic]:
    """The old owner (and family unless kept) lose access at once."""
    require_owner_or_operator(principal, device)
    with domain_errors():
        new_owner = service.customer_id_by_email(conn, cipher, body.email)
        service.transfer(conn, device.uid, new_owner, keep_family=body.keep_family)
        trail.record_sync(
            conn,
            details={
                "new_owner": customer_public_id(conn, new_owner),
                "keep_family": body.keep_family,
            },
        )
        return service.members(conn, device.uid)


@router.put("/{device_uid}/owner", summary="Set the first owner of a device")
@audited(AuditAction.DEVICE_OWNER_ASSIGNED, target_kind="device", target_param="device_uid")
def assign_owner(
    _: OperatorOnly,
    device_uid: DeviceUidPath,
    conn: SyncDbConn,
    cipher: CipherDep,
    body: OwnerAssign,
    trail: Trail,
) -> list[MemberPublic]:
    """Operators hand a new device to its first owner."""
    with domain_errors():
        owner = service.get_customer_by_public_id(conn, cipher, str(body.customer_public_id))
        service.assign_owner(conn, device_uid, owner.id)
        trail.record_sync(conn, details={"owner": str(body.customer_public_id)})
        return service.members(conn, device_uid)


@router.get("/{device_uid}/twin", summary="Reported and desired state")
def get_twin(device: OwnedDevice, conn: SyncDbConn, settings: SettingsDep) -> Twin:
    """Latest reported values, desired values, their delta and connection state."""
    with domain_errors():
        return twin.get_twin(conn, device.uid, now(), settings.devices.offline_after_s)


@router.patch("/{device_uid}/twin/desired", summary="Change desired state")
@audited(AuditAction.DEVICE_DESIRED_CHANGED, target_kind="device", target_param="device_uid")
def set_desired(
    principal: AnyUser,
    device: OwnedDevice,
    conn: SyncDbConn,
    downlink: DownlinkDep,
    settings: SettingsDep,
    body: DesiredUpdate,
    trail: Trail,
) -> Twin:
    """Validate against the product model, publish retained, and store."""
    require_device_writer(principal, device)
    with domain_errors():
        state = twin.set_desired(
            conn, downlink, settings.mqtt_topic_prefix, device.uid, body, now()
        )
    trail.record_sync(conn, details={"metrics": sorted(body.values)})
    return state


@router.get("/{device_uid}/connections", summary="Connection history")
def connection_history(
    device: OwnedDevice, conn: SyncDbConn, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[ConnectionEvent]:
    """When the device went online and offline, newest first."""
    return twin.connection_history(conn, device.uid, limit)


@router.post("/{device_uid}/credentials", status_code=201, summary="Provision MQTT credential")
@audited(AuditAction.DEVICE_PROVISIONED, target_kind="device", target_param="device_uid")
def provision(
    _: OperatorOnly,
    device_uid: DeviceUidPath,
    conn: SyncDbConn,
    broker: BrokerDep,
    settings: SettingsDep,
    trail: Trail,
) -> ProvisionedCredential:
    """A new device credential; the password is in this response only."""
    with domain_errors():
        issued = credentials.provision(conn, broker, settings.mqtt_topic_prefix, device_uid)
    trail.record_sync(conn)
    return issued


@router.post("/{device_uid}/credentials/rotate", summary="Rotate MQTT credential")
@audited(AuditAction.DEVICE_CREDENTIAL_ROTATED, target_kind="device", target_param="device_uid")
def rotate(
    _: OperatorOnly,
    device_uid: DeviceUidPath,
    conn: SyncDbConn,
    broker: BrokerDep,
    settings: SettingsDep,
    trail: Trail,
) -> ProvisionedCredential:
    """Replace the credential; the old one is refused and its connection cut at once."""
    with domain_errors():
        issued = credentials.rotate(conn, broker, settings.mqtt_topic_prefix, device_uid)
    trail.record_sync(conn)
    return issued


@router.delete("/{device_uid}/credentials", status_code=204, summary="Revoke MQTT credential")
@audited(AuditAction.DEVICE_REVOKED, target_kind="device", target_param="device_uid")
def revoke(
    _: OperatorOnly, device_uid: DeviceUidPath, conn: SyncDbConn, broker: BrokerDep, trail: Trail
) -> None:
    """Revoke the credential and disconnect the device."""
    with domain_errors():
        credentials.revoke(conn, broker, device_uid)
    trail.record_sync(conn)
