"""Rules: list, read, validate, create, replace and retire rule specs (operators write)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.audit import AuditAction
from api.audit_trail import Trail, audited
from api.deps import OperatorOnly, StaffOnly, SyncDbConn
from api.errors import Conflict, NotFound, problem_response
from api.pagination import Page, Pagination
from rules import service
from rules.errors import InvalidRuleSpec, RuleConflict, RuleNotFound
from rules.models import Rule, parse_rule_spec

router = APIRouter(prefix="/rules", tags=["rules"])

RuleId = Annotated[int, Path(ge=1, le=2**62)]
SpecBody = Annotated[dict[str, Any], Body(description="A rule spec (see rules/README.md).")]
INVALID: dict[int | str, dict[str, Any]] = {
    422: {"description": "Invalid spec: `errors` lists each field path and reason"}
}


class Validation(BaseModel):
    """Whether a spec is valid, and what is wrong with it."""

    valid: bool
    errors: list[dict[str, str]]


def _invalid(exc: InvalidRuleSpec) -> JSONResponse:
    return problem_response(422, "The rule spec is not valid.", extra={"errors": exc.problems})


@router.get("", response_model=Page[Rule], summary="List rules")
def list_rules(conn: SyncDbConn, _: StaffOnly, page: Pagination) -> Page[Rule]:
    """Live rules by id."""
    after = int(page.after[0]) if page.after else 0
    rows = service.list_rules(conn, limit=page.limit + 1, after_id=after)
    return page.page(rows, key=lambda r: [r.id])


@router.get("/{rule_id}", response_model=Rule, summary="Read a rule")
def get_rule(rule_id: RuleId, conn: SyncDbConn, _: StaffOnly) -> Rule:
    """One rule."""
    try:
        return service.get_rule(conn, rule_id)
    except RuleNotFound as exc:
        raise NotFound("no such rule") from exc


@router.post("/validate", response_model=Validation, summary="Check a spec without storing it")
def validate_rule(spec: SpecBody, _: StaffOnly) -> Validation:
    """Every problem with a spec (field path + reason); nothing is stored."""
    try:
        parse_rule_spec(spec)
    except InvalidRuleSpec as exc:
        return Validation(valid=False, errors=exc.problems)
    return Validation(valid=True, errors=[])


@router.post(
    "",
    response_model=Rule,
    status_code=status.HTTP_201_CREATED,
    summary="Create a rule",
    responses=INVALID,
)
@audited(AuditAction.RULE_CREATED, target_kind="rule")
def create_rule(
    spec: SpecBody, conn: SyncDbConn, _: OperatorOnly, trail: Trail
) -> Rule | JSONResponse:
    """Store a new rule; it applies from the next reading of each device in scope."""
    try:
        rule = service.create_rule(conn, spec)
    except InvalidRuleSpec as exc:
        return _invalid(exc)
    except RuleConflict as exc:
        raise Conflict(str(exc)) from exc
    trail.record_sync(conn, target_id=str(rule.id), details={"key": rule.key})
    return rule


@router.put("/{rule_id}", response_model=Rule, summary="Replace a rule", responses=INVALID)
@audited(AuditAction.RULE_UPDATED, target_kind="rule", target_param="rule_id")
def replace_rule(
    rule_id: RuleId, spec: SpecBody, conn: SyncDbConn, _: OperatorOnly, trail: Trail
) -> Rule | JSONResponse:
    """Replace a rule's spec (same key); its conditions restart for every device."""
    try:
        rule = service.update_rule(conn, rule_id, spec)
    except InvalidRuleSpec as exc:
        return _invalid(exc)
    except RuleNotFound as exc:
        raise NotFound("no such rule") from exc
    trail.record_sync(conn, details={"key": rule.key})
    return rule


@router.delete("/{rule_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Retire a rule")
@audited(AuditAction.RULE_DELETED, target_kind="rule", target_param="rule_id")
def delete_rule(
    rule_id: RuleId, conn: SyncDbConn, principal: OperatorOnly, trail: Trail
) -> Response:
    """Retire a rule: its open alerts are cleared, its history stays."""
    try:
        service.delete_rule(conn, rule_id, actor=principal.public_id, at=datetime.now(UTC))
    except RuleNotFound as exc:
        raise NotFound("no such rule") from exc
    trail.record_sync(conn)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
