"""Broker-side setup for per-device credentials: the initial dynsec store and platform roles.

`initial_dynsec_config` writes the plugin's starting file (only the administrator that
Kizuna provisions through), the same thing `mosquitto_ctrl dynsec init` does, so a broker
can be prepared without that tool. `ensure_platform_services` then gives ingest, the API and
notify their own clients and roles over the running broker.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from devices.dynsec import PLATFORM_SERVICES, DynsecAdmin

# PBKDF2-SHA512 rounds for the admin's hash in the file (the broker verifies what it reads).
ADMIN_HASH_ITERATIONS = 100_000
ADMIN_ROLE = "kizuna-admin"


def _pbkdf2_record(password: str, iterations: int) -> dict[str, Any]:
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, 64)
    return {
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": iterations,
    }


def initial_dynsec_config(admin_username: str, admin_password: str) -> dict[str, Any]:
    """The dynsec file for a new broker: one administrator, everything else denied."""
    control = "$CONTROL/dynamic-security/#"
    admin_acls = [
        {"acltype": "publishClientSend", "topic": control, "allow": True},
        {"acltype": "publishClientReceive", "topic": control, "allow": True},
        {"acltype": "subscribePattern", "topic": control, "allow": True},
    ]
    return {
        "clients": [
            {
                "username": admin_username,
                **_pbkdf2_record(admin_password, ADMIN_HASH_ITERATIONS),
                "roles": [{"rolename": ADMIN_ROLE}],
            }
        ],
        "roles": [{"rolename": ADMIN_ROLE, "acls": admin_acls}],
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": True,
            "subscribe": False,
            "unsubscribe": True,
        },
    }


def write_initial_dynsec_config(path: Path, admin_username: str, admin_password: str) -> bool:
    """Write the initial dynsec file unless one exists; True when written."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    config = initial_dynsec_config(admin_username, admin_password)
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    path.chmod(0o600)
    return True


def ensure_platform_services(
    admin: DynsecAdmin, prefix: str, passwords: dict[str, str]
) -> list[str]:
    """Create or reset the clients of the platform services given; return their usernames."""
    unknown = set(passwords) - set(PLATFORM_SERVICES)
    if unknown:
        raise ValueError(f"unknown platform services: {', '.join(sorted(unknown))}")
    usernames = []
    for service, password in passwords.items():
        username = f"kizuna-{service}"
        admin.ensure_service(prefix, service, username, password)
        usernames.append(username)
    return usernames
