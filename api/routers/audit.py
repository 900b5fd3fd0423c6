"""The audit log (operators): who did what, when, to which object."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field, IPvAnyAddress

from api import audit
from api.deps import AccountsDep, DbConn, OperatorOnly
from api.pagination import Page, Pagination, Sort, TimeRangeDep, sort_param

router = APIRouter(prefix="/audit", tags=["audit"])

AuditSort = Annotated[Sort, sort_param(("at",), "-at")]


class AuditEvent(BaseModel):
    """One audit record."""

    id: int
    at: datetime
    actor_kind: str
    actor_id: str | None
    actor_role: str | None
    action: str
    target_kind: str | None
    target_id: str | None
    outcome: str
    client_ref: str | None = Field(
        description="Keyed pseudonym of the client's address; search by address with client_ip."
    )
    details: dict[str, Any]


@router.get("", response_model=Page[AuditEvent], summary="Query the audit log")
async def query_audit(
    principal: OperatorOnly,
    conn: DbConn,
    page: Pagination,
    window: TimeRangeDep,
    sort: AuditSort,
    action: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z0-9_.]+$")] = None,
    actor: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9-]+$")] = None,
    target: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")] = None,
    client_ip: Annotated[
        IPvAnyAddress | None, Query(description="Events from this client address.")
    ] = None,
    *,
    accounts: AccountsDep,
) -> Page[AuditEvent]:
    """Events in [from, to), filtered by action prefix, actor, target or client address."""
    after = None
    if page.after is not None and len(page.after) == 2:
        after = (datetime.fromisoformat(str(page.after[0])), int(page.after[1]))
    rows = await audit.query(
        conn,
        since=window.since,
        until=window.until,
        action_prefix=action,
        actor_id=actor,
        target_id=target,
        client=audit.client_reference(accounts.secret_key, str(client_ip)) if client_ip else None,
        descending=sort.descending,
        after=after,
        limit=page.limit + 1,
    )
    result = page.page(rows, key=lambda r: (r["at"], r["id"]))
    return Page[AuditEvent](
        items=[AuditEvent(**r) for r in result.items], next_cursor=result.next_cursor
    )
