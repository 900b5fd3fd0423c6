"""How routes take part in the audit log: each declares its action; successes commit with it.

    @router.delete("/{rule_id}")
    @audited(AuditAction.RULE_DELETED, target_kind="rule", target_param="rule_id")
    def delete_rule(rule_id: RuleId, conn: SyncDbConn, trail: Trail) -> Response:
        service.delete_rule(conn, rule_id, ...)
        trail.record_sync(conn)          # same transaction as the change
        ...

The declaration lets the middleware name the action even when the route never ran: a support
user refused by the guard, a rule that does not exist, a database error all become
`rule.deleted` events with outcome `denied` or `failure`.
Routes that change state write their success themselves (inside their transaction, so a
rolled-back change leaves no success behind); routes that only read personal data (`read=True`)
are recorded by the middleware whatever the outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from psycopg import AsyncConnection, Connection
from psycopg.rows import DictRow

from api import audit
from api.audit import AuditAction
from api.security.principal import Principal

AUDIT_SPEC_ATTRIBUTE = "kizuna_audit_spec"
# `target_param` value for routes acting on the caller's own account (/me, logout).
CALLER = ":caller"
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


@dataclass(frozen=True)
class AuditSpec:
    """The event a route writes: its action, the kind of object, where the object's id is."""

    action: str  # an AuditAction; `http.<method>` only for routes that declare nothing
    target_kind: str | None = None
    # The path parameter holding the target's public id (device_uid, rule_id, ...), or
    # CALLER when the target is the calling user.
    target_param: str | None = None
    # True for routes that only read personal data: recorded by the middleware, any outcome.
    read: bool = False

    def outcome(self, status: int) -> str:
        """success (2xx/3xx), denied (not allowed, not found, throttled) or failure."""
        if status < 400:
            return "success"
        return "denied" if status in (401, 403, 404, 429) else "failure"


def audited(
    action: AuditAction,
    *,
    target_kind: str | None = None,
    target_param: str | None = None,
    read: bool = False,
) -> Callable[[Endpoint], Endpoint]:
    """Declare the audit event of a route (put it under the `@router.<method>` decorator)."""
    spec = AuditSpec(action, target_kind, target_param, read)

    def declare(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, AUDIT_SPEC_ATTRIBUTE, spec)
        return endpoint

    return declare


def audit_spec_of(route: Any) -> AuditSpec | None:
    """The declared event of a matched route (`request.scope["route"]`), if any."""
    spec = getattr(getattr(route, "endpoint", None), AUDIT_SPEC_ATTRIBUTE, None)
    return spec if isinstance(spec, AuditSpec) else None


def client_reference_of(request: Request) -> str | None:
    """The keyed pseudonym of the request's client address (after trusted-proxy handling)."""
    if request.client is None:
        return None
    secret_key: str = request.app.state.accounts.secret_key
    return audit.client_reference(secret_key, request.client.host)


def target_of(request: Request, spec: AuditSpec) -> str | None:
    """The target's id as the path (or, for CALLER, the session) names it, if the spec says."""
    if spec.target_param is None:
        return None
    if spec.target_param == CALLER:
        principal: Principal | None = getattr(request.state, "principal", None)
        return principal.public_id if principal is not None and principal.kind == "user" else None
    value = request.path_params.get(spec.target_param)
    return None if value is None else str(value)


class AuditTrail:
    """Writes the route's declared event for the caller of this request."""

    def __init__(self, request: Request) -> None:
        spec = audit_spec_of(request.scope.get("route"))
        if spec is None:
            raise LookupError(f"{request.url.path} uses Trail but declares no @audited action")
        self.spec = spec
        self._request = request

    @property
    def principal(self) -> Principal | None:
        """The authenticated caller (set by the role guards), if any."""
        principal: Principal | None = getattr(self._request.state, "principal", None)
        return principal

    def _fields(
        self, target_kind: str | None, target_id: str | None, details: dict[str, Any] | None
    ) -> dict[str, Any]:
        principal = self.principal
        if target_id is None:
            target_id = target_of(self._request, self.spec)
        return {
            "principal": principal,
            "actor": None if principal is not None else ("anonymous", None, None),
            "target_kind": target_kind or self.spec.target_kind,
            "target_id": target_id,
            "client": client_reference_of(self._request),
            "details": details,
        }

    async def record(
        self,
        conn: AsyncConnection[DictRow],
        *,
        target_id: str | None = None,
        details: dict[str, Any] | None = None,
        action: AuditAction | None = None,
        target_kind: str | None = None,
    ) -> None:
        """Write the success of this route (or `action`) in the route's transaction."""
        fields = self._fields(target_kind, target_id, details)
        await audit.record(conn, str(action or self.spec.action), **fields)

    def record_sync(
        self,
        conn: Connection[DictRow],
        *,
        target_id: str | None = None,
        details: dict[str, Any] | None = None,
        action: AuditAction | None = None,
        target_kind: str | None = None,
    ) -> None:
        """`record` for synchronous (`def`) routes."""
        fields = self._fields(target_kind, target_id, details)
        audit.record_sync(conn, str(action or self.spec.action), **fields)


def audit_trail(request: Request) -> AuditTrail:
    """The audit trail of this request's route."""
    return AuditTrail(request)


Trail = Annotated[AuditTrail, Depends(audit_trail)]
