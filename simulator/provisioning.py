"""Per-device credentials (and optionally the device list) from a provisioning file.

CSV with a header `uid,password[,model[,persona]]`, or JSON: either {"uid": "password"} or a
list of {"uid": ..., "password": ..., "model": ..., "persona": ...} objects.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from simulator.errors import ProvisioningError
from simulator.models import DeviceSpec


@dataclass(frozen=True)
class Provisioning:
    """Passwords by device uid, and device specs when the file names their models."""

    passwords: dict[str, str]
    devices: list[DeviceSpec]

    def password(self, uid: str) -> str:
        """The device's password, or a clear error when the file does not list it."""
        try:
            return self.passwords[uid]
        except KeyError:
            raise ProvisioningError(f"no credential for device {uid!r} in the file") from None


def load_provisioning(path: Path) -> Provisioning:
    """Read a provisioning file (CSV or JSON)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProvisioningError(f"cannot read {path}: {exc.strerror}") from exc
    rows: list[dict[str, Any]] = (
        _json_rows(text) if path.suffix.lower() == ".json" else _csv_rows(text)
    )
    passwords: dict[str, str] = {}
    devices: list[DeviceSpec] = []
    for number, row in enumerate(rows, start=1):
        uid, password = str(row.get("uid") or ""), str(row.get("password") or "")
        if not uid or not password:
            raise ProvisioningError(f"{path.name} entry {number}: needs a uid and a password")
        passwords[uid] = password
        if row.get("model"):
            try:
                devices.append(
                    DeviceSpec(
                        uid=uid,
                        model=str(row["model"]),
                        persona=str(row.get("persona") or "commuter"),
                    )
                )
            except ValidationError as exc:
                raise ProvisioningError(f"{path.name} entry {number}: {exc}") from exc
    return Provisioning(passwords, devices)


def _csv_rows(text: str) -> list[dict[str, Any]]:
    return list(csv.DictReader(text.splitlines()))


def _json_rows(text: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProvisioningError(f"not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    if isinstance(data, dict):
        return [{"uid": uid, "password": pw} for uid, pw in data.items()]
    if isinstance(data, list) and all(isinstance(item, dict) for item in data):
        return data
    raise ProvisioningError("JSON must be an object of uid → password or a list of objects")
