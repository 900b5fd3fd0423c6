"""ASGI middleware: request body size limit, Prometheus metrics, audit of refusals and reads.

Routes declare their audit action (api/audit_trail.py) and write their own successes; this
middleware writes the rest: the declared action with outcome `denied`/`failure` when the
request was refused or failed, every read of personal data, and, for a state-changing route
that declares nothing (a router added without a declaration), a generic `http.<method>` event.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import audit
from api.audit_trail import AuditSpec, audit_spec_of, client_reference_of, target_of
from api.errors import problem_response
from api.security.principal import Principal

log = structlog.get_logger(__name__)

API_PREFIX = "/api/v1"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Reads of these paths show personal data: every one is audited.
PERSONAL_DATA_PREFIXES = ("/api/v1/customers", "/api/v1/users", "/api/v1/me")


class BodySizeLimit:
    """Refuses bodies over `max_bytes` with 413, by Content-Length or by counting the stream.

    The body is read (at most `max_bytes`) before the app runs and replayed to it, so an
    oversized upload is refused before any parsing and memory stays bounded.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the declared length, buffer up to the limit, then run the app."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body], then=receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            413,
            f"The request body must be at most {self.max_bytes} bytes.",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    """A receive callable that yields `messages`, then defers to `then` (disconnects)."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive


class Metrics:
    """Request counters and latency histograms in the app's own registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "kizuna_api_requests",
            "HTTP requests",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "kizuna_api_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=registry,
        )
        self.audit_failures = Counter(
            "kizuna_api_audit_write_failures",
            "Audit records that could not be written",
            registry=registry,
        )


def _route_template(request: Request) -> str:
    """The matched route's path template (bounded label set; ids never become labels)."""
    route: Any = request.scope.get("route")
    path = getattr(route, "path", None)
    if path is None:
        return "unmatched"
    # Routes of included routers report their path without the /api/v1 include prefix.
    if request.url.path.startswith(API_PREFIX) and not path.startswith(API_PREFIX):
        path = API_PREFIX + path
    return str(path)


def install_middleware(app: FastAPI, metrics: Metrics, max_body_bytes: int) -> None:
    """Metrics and audit around every request; the body limit outermost."""

    @app.middleware("http")
    async def observe(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        try:
            response: Response = await call_next(request)
        except Exception:
            # Rendered as a generic 500 by the outermost handler; still counted and audited.
            route = _route_template(request)
            metrics.requests.labels(request.method, route, "500").inc()
            await _audit(request, route, 500, metrics)
            raise
        route = _route_template(request)
        metrics.requests.labels(request.method, route, str(response.status_code)).inc()
        metrics.latency.labels(request.method, route).observe(time.perf_counter() - started)
        await _audit(request, route, response.status_code, metrics)
        return response

    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)


async def _audit(request: Request, route: str, status: int, metrics: Metrics) -> None:
    """Write what the route could not write itself (see the module docstring)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:  # anonymous noise (scanners, expired tokens) is not audited
        return
    spec = audit_spec_of(request.scope.get("route"))
    if spec is not None:
        if spec.read or status >= 400:
            await _write(request, principal, spec, route, status, metrics)
    elif request.method in UNSAFE_METHODS or route.startswith(PERSONAL_DATA_PREFIXES):
        param = next((p for p in ("device_uid", "public_id") if p in request.path_params), None)
        undeclared = AuditSpec(action=f"http.{request.method.lower()}", target_param=param)
        await _write(request, principal, undeclared, route, status, metrics)


async def _write(
    request: Request,
    principal: Principal,
    spec: AuditSpec,
    route: str,
    status: int,
    metrics: Metrics,
) -> None:
    """One audit row in its own transaction (the request's own one may have rolled back)."""
    try:
        async with request.app.state.pool.connection() as conn:
            await audit.record(
                conn,
                spec.action,
                principal=principal,
                target_kind=spec.target_kind,
                target_id=target_of(request, spec),
                outcome=spec.outcome(status),
                client=client_reference_of(request),
                details={"route": route, "status": status},
            )
    except Exception as exc:  # the response is already decided; count and log, never raise
        metrics.audit_failures.inc()
        log.error("api.audit_write_failed", error_type=type(exc).__name__, route=route)
