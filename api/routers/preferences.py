"""A customer's notification preferences: channels and delivery per scope, and their profile."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from pydantic import BaseModel

from api.audit import AuditAction, customer_public_id
from api.audit_trail import Trail, audited
from api.deps import CustomerOnly, SettingsDep, SyncDbConn
from api.errors import NotFound, Unprocessable
from notify import service
from notify.errors import DeviceNotShared, PreferenceError
from notify.models import (
    MomentKind,
    PreferencePublic,
    PreferenceUpdate,
    ProfilePublic,
    ProfileUpdate,
)
from store.encryption import FieldCipher

router = APIRouter(prefix="/preferences", tags=["preferences"])
DeviceUid = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]


class PreferencesPublic(BaseModel):
    """Everything a customer set about notifications."""

    profile: ProfilePublic
    scopes: list[PreferencePublic]


def _cipher(request: Request) -> FieldCipher:
    cipher: FieldCipher = request.app.state.accounts.cipher
    return cipher


@router.get("", summary="My notification preferences")
def my_preferences(
    principal: CustomerOnly, conn: SyncDbConn, request: Request
) -> PreferencesPublic:
    """The profile (quiet hours, cap, digest hour, addresses) and every scoped preference."""
    assert principal.customer_id is not None
    return PreferencesPublic(
        profile=service.get_profile(conn, principal.customer_id, _cipher(request)),
        scopes=service.list_preferences(conn, principal.customer_id),
    )


@router.put("/profile", summary="Replace my notification profile")
@audited(AuditAction.NOTIFICATION_PROFILE_UPDATED, target_kind="customer")
def put_profile(
    body: ProfileUpdate,
    principal: CustomerOnly,
    conn: SyncDbConn,
    request: Request,
    settings: SettingsDep,
    trail: Trail,
) -> ProfilePublic:
    """Quiet hours (local time), daily cap, digest hour, escalation channel, webhook, chat."""
    assert principal.customer_id is not None
    cipher = _cipher(request)
    before = service.get_profile(conn, principal.customer_id, cipher).webhook_url
    try:
        profile = service.update_profile(
            conn,
            principal.customer_id,
            body,
            cipher,
            allow_private_webhooks=settings.notify.allow_private_webhooks,
        )
    except PreferenceError as exc:
        raise Unprocessable(str(exc)) from exc
    customer = customer_public_id(conn, principal.customer_id)
    fields = sorted(body.model_dump(exclude_unset=True))
    trail.record_sync(conn, target_id=customer, details={"fields": fields})
    webhook_change = _webhook_change(before, profile.webhook_url)
    if webhook_change is not None:
        # The URL stays out of the log: it may carry a token, or name the person's own host.
        trail.record_sync(conn, target_id=customer, action=webhook_change)
    return profile


def _webhook_change(before: str | None, after: str | None) -> AuditAction | None:
    """Whether saving the profile created, changed or removed the customer's webhook."""
    if before == after:
        return None
    if before is None:
        return AuditAction.WEBHOOK_CREATED
    return AuditAction.WEBHOOK_DELETED if after is None else AuditAction.WEBHOOK_UPDATED


@router.put("/scopes", status_code=status.HTTP_204_NO_CONTENT, summary="Set a preference")
@audited(AuditAction.PREFERENCE_UPDATED, target_kind="customer")
def put_scope(
    body: PreferenceUpdate, principal: CustomerOnly, conn: SyncDbConn, trail: Trail
) -> None:
    """Channels and/or delivery (instant, digest, off) for everything, a device, a kind."""
    assert principal.customer_id is not None
    try:
        service.set_preference(conn, principal.customer_id, body)
    except DeviceNotShared as exc:
        raise NotFound("no such device") from exc
    trail.record_sync(
        conn,
        target_id=customer_public_id(conn, principal.customer_id),
        details=preference_details(body),
    )


def preference_details(update: PreferenceUpdate) -> dict[str, Any]:
    """A preference change as the audit log keeps it: its scope and what it set."""
    return {
        "device": update.device_uid,
        "moment_kind": update.moment_kind,
        "channels": update.channels,
        "delivery": update.delivery,
    }


@router.delete("/scopes", status_code=status.HTTP_204_NO_CONTENT, summary="Clear a preference")
@audited(AuditAction.PREFERENCE_CLEARED, target_kind="customer")
def delete_scope(
    principal: CustomerOnly,
    conn: SyncDbConn,
    trail: Trail,
    device_uid: DeviceUid = None,
    moment_kind: Annotated[MomentKind | None, Query()] = None,
) -> None:
    """Remove the preference of one scope (it then inherits from broader ones)."""
    assert principal.customer_id is not None
    try:
        found = service.clear_preference(conn, principal.customer_id, device_uid, moment_kind)
    except DeviceNotShared as exc:
        raise NotFound("no such device") from exc
    if not found:
        raise NotFound("no such preference")
    trail.record_sync(
        conn,
        target_id=customer_public_id(conn, principal.customer_id),
        details={"device": device_uid, "moment_kind": moment_kind},
    )
