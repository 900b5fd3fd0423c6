"""Every router of the HTTP API, one module per resource, each exposing `router`."""

from __future__ import annotations

import importlib

from fastapi import APIRouter

# Add a module here to mount its `router` under /api/v1.
ROUTER_MODULES: tuple[str, ...] = (
    "api.routers.auth",
    "api.routers.me",
    "api.routers.users",
    "api.routers.api_keys",
    "api.routers.audit",
    "api.routers.privacy",
    "api.routers.feed",
    "api.routers.preferences",
    "api.routers.devices",
    "api.routers.commands",
    "api.routers.customers",
    "api.routers.rules",
    "api.routers.alerts",
    "api.routers.ingest",
)


def all_routers() -> list[APIRouter]:
    """The routers of every module in ROUTER_MODULES."""
    return [importlib.import_module(name).router for name in ROUTER_MODULES]
