"""Enumerate every HTTP route of the app with the guards its dependency tree contains."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from api import deps
from api.audit_trail import AuditSpec, audit_spec_of
from api.routers.auth import enrolling_user

GUARD_NAMES = {
    deps.require_operator: "operator",
    deps.require_staff: "staff",
    deps.require_customer: "customer",
    deps.require_user: "user",
    deps.require_person: "person",
    enrolling_user: "enrolling",
}


@dataclass(frozen=True)
class RouteInfo:
    """One method of one path, and what protects it."""

    method: str
    path: str
    guards: frozenset[str]
    owned_device: bool
    audit: AuditSpec | None = None

    def url(self, device_uid: str) -> str:
        """The path with every parameter filled (devices by `device_uid`, others made up)."""
        url = self.path
        while "{" in url:
            start = url.index("{")
            name = url[start + 1 : url.index("}")]
            value = device_uid if name == "device_uid" else _sample_value(name)
            url = url[:start] + value + url[url.index("}") + 1 :]
        return url


def _sample_value(name: str) -> str:
    if name.endswith(("id", "public_id")) or "uuid" in name:
        return str(uuid.uuid4())
    return "x1"


def _calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def _api_routes(app: FastAPI) -> Iterator[tuple[str, APIRoute]]:
    try:
        from fastapi.routing import iter_route_contexts  # FastAPI >= 0.16x
    except ImportError:  # older FastAPI keeps flat APIRoute objects in app.routes
        for route in app.routes:
            if isinstance(route, APIRoute):
                yield route.path, route
        return
    for context in iter_route_contexts(app.routes):
        original = context.original_route
        if isinstance(original, APIRoute) and context.path:
            yield context.path, original


def all_routes(app: FastAPI) -> list[RouteInfo]:
    """Every (method, path) of the app, with guard names found in its dependency tree."""
    found = []
    for path, route in _api_routes(app):
        calls = set(_calls(route.dependant))
        guards = frozenset(name for fn, name in GUARD_NAMES.items() if fn in calls)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            found.append(
                RouteInfo(method, path, guards, deps.owned_device in calls, audit_spec_of(route))
            )
    return found
