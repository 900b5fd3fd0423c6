"""Who is looking at the dashboard: sign-in routes, the session cookie and role checks.

The dashboard keeps no accounts of its own. An `Authenticator` (the API's account service in
production) checks password and one-time code and issues an opaque session token; the
dashboard only stores that token in a signed, HttpOnly cookie and asks the authenticator who
it belongs to on every request. Every callback takes the principal from here, never from
anything the browser sends.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import flask
import structlog
from dash.exceptions import PreventUpdate

log = structlog.get_logger(__name__)

Role = Literal["operator", "customer"]
SESSION_KEY = "kizuna_session"


@dataclass(frozen=True, slots=True)
class Principal:
    """A signed-in person: an operator, or a customer bound to one customer record."""

    user_id: str
    role: Role
    display_name: str
    customer_id: int | None = None

    def __post_init__(self) -> None:
        if (self.role == "customer") != (self.customer_id is not None):
            raise ValueError("a customer principal needs a customer_id, an operator none")


class LoginRefused(Exception):
    """Wrong email, password or one-time code (deliberately not saying which)."""


class Authenticator(Protocol):
    """The account service the dashboard signs people in with."""

    def login(self, email: str, password: str, otp: str, *, client_ip: str) -> str:
        """Check credentials and code (throttled per `client_ip`); a session or LoginRefused."""
        ...

    def resolve(self, token: str) -> Principal | None:
        """The principal of a live session token, or None when unknown, expired or revoked."""
        ...

    def logout(self, token: str) -> None:
        """Revoke a session token."""
        ...


def flask_secret(secret_key: str) -> bytes:
    """A key for the dashboard's session cookie, derived so it differs from other uses."""
    return hmac.new(secret_key.encode(), b"kizuna-dashboard-session", hashlib.sha256).digest()


def current_principal() -> Principal | None:
    """The principal of this request's session cookie, or None."""
    token = flask.session.get(SESSION_KEY)
    if not isinstance(token, str):
        return None
    authenticator: Authenticator = flask.current_app.config["KIZUNA_AUTHENTICATOR"]
    return authenticator.resolve(token)


def require(role: Role) -> Principal:
    """The signed-in principal when it has `role`; otherwise the callback changes nothing."""
    principal = current_principal()
    if principal is None or principal.role != role:
        log.info("dashboard.callback_refused", role=role, signed_in=principal is not None)
        raise PreventUpdate
    return principal


def _safe_next(target: str | None) -> str:
    """Only local paths are followed after sign-in (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    parts = urlsplit(target)
    return parts.path or "/"


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(value: str) -> str | None:
    """The IP address in a forwarded hop (`addr`, `v4:port`, `[v6]:port`), or None."""
    host = value.strip()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else ""
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def _trusted(address: str | None, proxies: Sequence[IPNetwork]) -> bool:
    if address is None:
        return False
    ip = ipaddress.ip_address(address)
    return any(ip in network for network in proxies)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted_proxies: Sequence[IPNetwork]
) -> str:
    """Who is signing in: the peer, or, behind a trusted proxy, the forwarded client.

    The same rule as the API's (KIZUNA_API__TRUSTED_PROXIES): X-Forwarded-For counts only
    when the direct peer is a trusted proxy, and then the right-most address that is not
    itself a trusted proxy is the client (everything left of it was written by the client).
    A hop that is not an address means a proxy wrote nonsense: the peer is used instead.
    """
    peer_address = _address(peer or "")
    if peer_address is None or not _trusted(peer_address, trusted_proxies):
        return peer_address or peer or "unknown"
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return peer_address
        if not _trusted(address, trusted_proxies):
            return address
    # Every hop is a trusted proxy: the left-most one is where the request started.
    return (_address(hops[0]) or peer_address) if hops else peer_address


def register_routes(
    server: flask.Flask,
    authenticator: Authenticator,
    trusted_proxies: Sequence[IPNetwork] = (),
) -> None:
    """Add the sign-in and sign-out endpoints to the dashboard's Flask server."""
    server.config["KIZUNA_AUTHENTICATOR"] = authenticator

    @server.post("/auth/login")
    def login() -> Any:
        form = flask.request.form
        client = client_address(
            flask.request.remote_addr,
            flask.request.headers.getlist("X-Forwarded-For"),
            trusted_proxies,
        )
        try:
            token = authenticator.login(
                form.get("email", "")[:320],
                form.get("password", "")[:1024],
                form.get("otp", "")[:12],
                client_ip=client,
            )
        except LoginRefused:
            log.info("dashboard.login_refused")
            return flask.redirect("/login?error=1", code=303)
        flask.session.clear()
        flask.session[SESSION_KEY] = token
        log.info("dashboard.login")
        return flask.redirect(_safe_next(form.get("next")), code=303)

    @server.post("/auth/logout")
    def logout() -> Any:
        token = flask.session.pop(SESSION_KEY, None)
        if isinstance(token, str):
            authenticator.logout(token)
        flask.session.clear()
        return flask.redirect("/login", code=303)
