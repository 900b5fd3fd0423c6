"""A customer's notification preferences: channels and delivery per scope, and their profile."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from pydantic import BaseModel

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
def put_profile(
    body: ProfileUpdate,
    principal: CustomerOnly,
    conn: SyncDbConn,
    request: Request,
    settings: SettingsDep,
) -> ProfilePublic:
    """Quiet hours (local time), daily cap, digest hour, escalation channel, webhook, chat."""
    assert principal.customer_id is not None
    try:
        return service.update_profile(
            conn,
            principal.customer_id,
            body,
            _cipher(request),
            allow_private_webhooks=settings.notify.allow_private_webhooks,
        )
    except PreferenceError as exc:
        raise Unprocessable(str(exc)) from exc


@router.put("/scopes", status_code=status.HTTP_204_NO_CONTENT, summary="Set a preference")
def put_scope(body: PreferenceUpdate, principal: CustomerOnly, conn: SyncDbConn) -> None:
    """Channels and/or delivery (instant, digest, off) for everything, a device, a kind."""
    assert principal.customer_id is not None
    try:
        service.set_preference(conn, principal.customer_id, body)
    except DeviceNotShared as exc:
        raise NotFound("no such device") from exc


@router.delete("/scopes", status_code=status.HTTP_204_NO_CONTENT, summary="Clear a preference")
def delete_scope(
    principal: CustomerOnly,
    conn: SyncDbConn,
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
