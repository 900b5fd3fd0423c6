"""What every dashboard page needs at run time: settings, the database pool, the model catalog."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property

import flask
from cryptography.exceptions import InvalidTag
from psycopg import Connection
from psycopg.rows import DictRow
from psycopg_pool import ConnectionPool

from api.audit import client_reference
from app.settings import Settings
from dashboard.actions import AlertActions, RulesAlertActions
from dashboard.auth import client_address
from devices.catalog import ProductModel, builtin_models
from store.encryption import EncryptionError, FieldCipher

NAME_CONTEXT = "customers.name"


@dataclass
class DashboardContext:
    """Runtime objects shared by the pages of one dashboard app."""

    settings: Settings
    pool: ConnectionPool[Connection[DictRow]]
    alert_actions: AlertActions = field(default_factory=RulesAlertActions)

    @contextmanager
    def connection(self) -> Iterator[Connection[DictRow]]:
        """A pooled connection for one callback's queries."""
        with self.pool.connection() as conn:
            # JIT compilation cost ~70 ms per fleet query at 10M rows (bench) and never paid
            # back for these short reads; LOCAL ends with the pool's commit.
            conn.execute("SET LOCAL jit = off")
            yield conn

    def client_reference(self) -> str | None:
        """The audit log's pseudonym of the current request's client (trusted proxies honoured)."""
        if not flask.has_request_context():
            return None
        address = client_address(
            flask.request.remote_addr,
            flask.request.headers.getlist("X-Forwarded-For"),
            self.settings.api.trusted_proxies,
        )
        return client_reference(self.settings.secret_key.get_secret_value(), address)

    @property
    def online_window_s(self) -> float:
        """How recent a device's last message must be for it to count as online."""
        return float(self.settings.dashboard.online_window_s)

    @property
    def models(self) -> dict[str, ProductModel]:
        """Product models by id."""
        return builtin_models()

    @cached_property
    def cipher(self) -> FieldCipher:
        """Opens customers' personal data for operators."""
        return FieldCipher.from_encoded(
            self.settings.data_encryption_key.get_secret_value(),
            [k.get_secret_value() for k in self.settings.data_encryption_old_keys],
        )

    def customer_name(self, name_enc: bytes | None) -> str | None:
        """A customer's name, or None when unset or unreadable with the configured keys."""
        if not name_enc:
            return None
        try:
            return self.cipher.open(name_enc, NAME_CONTEXT)
        except (EncryptionError, InvalidTag, ValueError):
            return None
