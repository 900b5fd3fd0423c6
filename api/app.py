"""The FastAPI app: lifespan (pools, MQTT downlink), routers under /api/v1, health, metrics."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from api.accounts.service import Accounts
from api.errors import Unauthorized, install_error_handlers
from api.mail import MailDirSender, MailSender, SmtpMailSender
from api.middleware import Metrics, install_middleware
from api.routers import all_routers
from api.routers.device_support import close_downlink
from api.security.passwords import Passwords
from app.broker_url import MqttEndpoint
from app.settings import Settings
from store.db import open_async_pool, open_pool
from store.encryption import FieldCipher

log = structlog.get_logger(__name__)

API_PREFIX = "/api/v1"
HEALTH_TIMEOUT_S = 2.0


def default_mail_sender(settings: Settings) -> MailSender:
    """SMTP when configured; otherwise message files under the data directory."""
    if settings.notify.smtp_url:
        return SmtpMailSender(settings.notify.smtp_url, settings.notify.from_address)
    return MailDirSender(settings.data_dir / "mail", settings.notify.from_address)


def build_accounts(settings: Settings, mailer: MailSender | None = None) -> Accounts:
    """The accounts service for these settings."""
    cipher = FieldCipher.from_encoded(
        settings.data_encryption_key.get_secret_value(),
        [k.get_secret_value() for k in settings.data_encryption_old_keys],
    )
    return Accounts(
        config=settings.api,
        secret_key=settings.secret_key.get_secret_value(),
        cipher=cipher,
        passwords=Passwords(settings.api),
        mailer=mailer or default_mail_sender(settings),
    )


def create_app(settings: Settings, *, mail_sender: MailSender | None = None) -> FastAPI:
    """The API for these settings; `mail_sender` replaces SMTP (the mail seam)."""
    if settings.database_url is None:
        raise ValueError("create_app needs settings.database_url (see app.services)")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        assert settings.database_url is not None
        app.state.pool = await open_async_pool(settings.database_url, settings.store, "api")
        try:
            app.state.sync_pool = await asyncio.to_thread(
                open_pool, settings.database_url, settings.store, "api-sync"
            )
        except BaseException:
            await app.state.pool.close()
            raise
        try:
            yield
        finally:
            # The downlink (commands, desired state) is opened on first use; its network
            # thread and broker connection end with the app.
            await asyncio.to_thread(close_downlink, app.state)
            await asyncio.to_thread(app.state.sync_pool.close)
            await app.state.pool.close()

    app = FastAPI(
        title="Kizuna API",
        version="1",
        description="Connected products, their moments and their people.",
        lifespan=lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.accounts = build_accounts(settings, mail_sender)
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    app.state.metrics = metrics
    install_error_handlers(app)
    install_middleware(app, metrics, settings.api.max_body_bytes)
    if settings.api.trusted_proxies:
        # Outermost, so throttling, audit and every handler see the forwarded client.
        app.add_middleware(
            ProxyHeadersMiddleware,
            trusted_hosts=[str(network) for network in settings.api.trusted_proxies],
        )
    for router in all_routers():
        app.include_router(router, prefix=API_PREFIX)
    _add_operational_routes(app, settings, registry)
    return app


def _add_operational_routes(app: FastAPI, settings: Settings, registry: CollectorRegistry) -> None:
    @app.get("/health", tags=["operations"], summary="Database and broker reachability")
    async def health(request: Request) -> JSONResponse:
        database, broker = await asyncio.gather(
            _database_ok(request.app), _broker_ok(settings.mqtt_url)
        )
        ok = database and broker in (True, None)
        body: dict[str, Any] = {
            "status": "ok" if ok else "unavailable",
            "database": "ok" if database else "unreachable",
            "broker": {True: "ok", False: "unreachable", None: "not_configured"}[broker],
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    async def metrics(request: Request) -> Response:
        token = settings.api.metrics_token
        if token is not None:
            supplied = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(supplied.encode(), token.get_secret_value().encode()):
                raise Unauthorized()
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


async def _database_ok(app: FastAPI) -> bool:
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_S):
            async with app.state.pool.connection(timeout=HEALTH_TIMEOUT_S) as conn:
                await conn.execute("SELECT 1")
        return True
    except Exception as exc:
        log.warning("api.health_database_down", error_type=type(exc).__name__)
        return False


async def _broker_ok(mqtt_url: str | None) -> bool | None:
    """TCP reachability of the broker (credentials are the ingest's business, not ours)."""
    if mqtt_url is None:
        return None
    endpoint = MqttEndpoint.from_url(mqtt_url)
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_S):
            _, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
        writer.close()
        return True
    except (OSError, TimeoutError):
        return False
