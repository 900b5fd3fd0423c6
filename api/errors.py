"""Errors of the HTTP API and their rendering as RFC 9457 problem+json.

ApiError
├── BadRequest (400)
├── Unauthorized (401): no, forged, expired or revoked credentials
├── Forbidden (403): authenticated, but the role or scope does not allow it
├── NotFound (404): absent, or not visible to this principal (never 403, so ids do not leak)
├── Conflict (409)
├── PayloadTooLarge (413)
├── Unprocessable (422)
└── TooManyRequests (429): throttled; carries Retry-After

Outside the tree: database outages (psycopg.OperationalError, pool timeouts) become 503 with
Retry-After, and anything else unexpected a generic 500 without details.
"""

from __future__ import annotations

from typing import Any, ClassVar

import psycopg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://kizuna.dev/problems/"


class ApiError(Exception):
    """Base of every error the API turns into a problem+json response."""

    status: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}


class BadRequest(ApiError):
    """The request is malformed in a way validation could not catch."""


class Unauthorized(ApiError):
    """Credentials are missing, forged, expired or revoked."""

    status = 401
    slug = "unauthorized"
    title = "Authentication required"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ApiError):
    """The principal is known but its role or scope does not allow this."""

    status = 403
    slug = "forbidden"
    title = "Not allowed"


class NotFound(ApiError):
    """The object does not exist or this principal may not see it."""

    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(ApiError):
    """The request conflicts with the current state."""

    status = 409
    slug = "conflict"
    title = "Conflict"


class PayloadTooLarge(ApiError):
    """The request body is larger than the configured limit."""

    status = 413
    slug = "payload-too-large"
    title = "Request body too large"


class Unprocessable(ApiError):
    """The request is well-formed but its values are not acceptable."""

    status = 422
    slug = "validation-error"
    title = "Invalid request"


class TooManyRequests(ApiError):
    """Too many attempts; retry after the given number of seconds."""

    status = 429
    slug = "too-many-requests"
    title = "Too many attempts"

    def __init__(self, retry_after_s: int, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after_s))})


_STATUS_SLUGS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Not allowed"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation-error", "Invalid request"),
    429: ("too-many-requests", "Too many attempts"),
}


def problem_response(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
    instance: str | None = None,
) -> JSONResponse:
    """A problem+json response."""
    default_slug, default_title = _STATUS_SLUGS.get(status, ("error", "Error"))
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + (slug or default_slug),
        "title": title or default_title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _safe_validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Validation errors without the submitted values (they may be secrets or personal data)."""
    return [
        {"loc": list(err.get("loc", ())), "msg": str(err.get("msg", "")), "type": err.get("type")}
        for err in exc.errors()
    ]


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return problem_response(
        exc.status,
        exc.detail,
        slug=exc.slug,
        title=exc.title,
        headers=exc.headers,
        instance=request.url.path,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # FastAPI raises a bare 400 for bodies it cannot decode (bad UTF-8, broken JSON):
        # that is invalid input like any other, so it gets the same 422.
        return problem_response(
            422,
            "The request body could not be parsed.",
            extra={"errors": [{"loc": ["body"], "msg": "not parseable", "type": "body_parse"}]},
            instance=request.url.path,
        )
    detail = (
        exc.detail
        if isinstance(exc.detail, str)
        else _STATUS_SLUGS.get(exc.status_code, ("error", "Error"))[1]
    )
    return problem_response(
        exc.status_code, detail, headers=dict(exc.headers or {}), instance=request.url.path
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return problem_response(
        422,
        "The request does not match the schema.",
        extra={"errors": _safe_validation_errors(exc)},
        instance=request.url.path,
    )


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("api.database_unavailable", error_type=type(exc).__name__, path=request.url.path)
    return problem_response(
        503,
        "The service is temporarily unavailable; try again shortly.",
        slug="unavailable",
        title="Service unavailable",
        headers={"Retry-After": "5"},
    )


async def _unhandled_error(request: Request, exc: Exception) -> JSONResponse:
    # The exception text may carry personal data: log only its type and the route.
    log.error("api.unhandled_error", error_type=type(exc).__name__, path=request.url.path)
    return problem_response(
        500,
        "An unexpected error occurred.",
        slug="internal-error",
        title="Internal error",
    )


def install_error_handlers(app: FastAPI) -> None:
    """Render every error, including unexpected ones, as problem+json."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    # Database down or pool exhausted: a clear, retryable 503 instead of a generic 500.
    app.add_exception_handler(psycopg.OperationalError, _database_unavailable)
    app.add_exception_handler(PoolTimeout, _database_unavailable)
    app.add_exception_handler(Exception, _unhandled_error)
