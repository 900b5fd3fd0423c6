"""Which registered device a topic names, with its product model and slot layout (cached)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import structlog
from pydantic import ValidationError

from devices.catalog import ProductModel, builtin_models
from ingest import repo
from ingest.models import DeviceEntry
from store.telemetry import SlotMap, ensure_slots

log = structlog.get_logger(__name__)


class DeviceDirectory:
    """Caches device lookups; unknown devices are remembered briefly, known ones longer."""

    def __init__(
        self,
        ttl_s: float,
        unknown_ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl_s
        self._unknown_ttl_s = unknown_ttl_s
        self._clock = clock
        self._entries: dict[str, tuple[float, DeviceEntry | None]] = {}
        self._slots: dict[tuple[str, str], SlotMap] = {}

    def resolve(self, conn: repo.Conn, uids: Iterable[str]) -> dict[str, DeviceEntry | None]:
        """Entries for `uids` (None = not registered). Commits its own slot transactions."""
        now = self._clock()
        found: dict[str, DeviceEntry | None] = {}
        missing = []
        for uid in set(uids):
            cached = self._entries.get(uid)
            if cached is not None and cached[0] > now:
                found[uid] = cached[1]
            else:
                missing.append(uid)
        if missing:
            rows = {row["uid"]: row for row in repo.devices_by_uid(conn, missing)}
            for uid in missing:
                row = rows.get(uid)
                entry = self._entry(conn, row) if row else None
                ttl = self._ttl_s if entry else self._unknown_ttl_s
                self._entries[uid] = (now + ttl, entry)
                found[uid] = entry
        return found

    def _entry(self, conn: repo.Conn, row: dict) -> DeviceEntry:
        model = _product_model(row["model_id"], row["spec"])
        key = (model.id, model.model_dump_json())
        slots = self._slots.get(key)
        if slots is None:
            slots = ensure_slots(conn, model)
            self._slots[key] = slots
        return DeviceEntry(row["id"], row["uid"], model, slots, row["decommissioned"])


def _product_model(model_id: str, spec: dict) -> ProductModel:
    try:
        return ProductModel.model_validate(spec)
    except ValidationError:
        # A hand-edited spec that no longer validates: the shipped file is the next best truth.
        log.warning("ingest.product_model_invalid", model_id=model_id)
        builtin = builtin_models().get(model_id)
        if builtin is None:
            raise
        return builtin
