"""`kizuna demo`: live data within 30 s of start, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pyotp
import pytest

LIVE_DATA_WITHIN_S = 30.0
STARTUP_TIMEOUT_S = 120.0


def _processes_using(folder: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(folder) in cmdline:
            found.append(process)
    return found


def _read_lines(stream: object, lines: list[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.append(line)


def _login(api: str, email: str, password: str, totp_secret: str) -> str:
    first = httpx.post(f"{api}/api/v1/auth/login", json={"email": email, "password": password})
    first.raise_for_status()
    second = httpx.post(
        f"{api}/api/v1/auth/mfa/verify",
        json={"code": pyotp.TOTP(totp_secret).now()},
        headers={"Authorization": f"Bearer {first.json()['mfa_token']}"},
    )
    second.raise_for_status()
    return str(second.json()["access_token"])


@pytest.mark.slow
@pytest.mark.parametrize("broker", ["auto", "rumqttd"])
def test_demo_shows_live_data_within_30_s_and_stops_cleanly(tmp_path: Path, broker: str) -> None:
    data_dir = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIZUNA_")}
    env.update(
        {"KIZUNA_DATA_DIR": str(data_dir), "KIZUNA_EMBEDDED_BROKER": broker, "COLUMNS": "200"}
    )
    started = time.monotonic()
    demo = subprocess.Popen(
        [sys.executable, "-m", "app", "demo", "--devices", "12"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    threading.Thread(target=_read_lines, args=(demo.stdout, lines), daemon=True).start()
    try:
        while not any("Press Ctrl-C" in line for line in lines):
            assert demo.poll() is None, "".join(lines)
            assert time.monotonic() - started < STARTUP_TIMEOUT_S, "".join(lines)
            time.sleep(0.2)
        output = "".join(lines)
        api = re.search(r"API\s+(http://127\.0\.0\.1:\d+)", output)
        dashboard = re.search(r"Dashboard\s+(http://127\.0\.0\.1:\d+)/", output)
        assert api and dashboard, output
        ready = time.monotonic()
        logins = json.loads((data_dir / "demo-logins.json").read_text())
        operator = next(login for login in logins if login["role"] == "operator")
        token = _login(api[1], operator["email"], operator["password"], operator["totp_secret"])
        headers = {"Authorization": f"Bearer {token}"}
        devices = httpx.get(f"{api[1]}/api/v1/devices", headers=headers).json()["items"]
        assert len(devices) == 12
        live = False
        while not live and time.monotonic() - ready < LIVE_DATA_WITHIN_S:
            twins = [
                httpx.get(f"{api[1]}/api/v1/devices/{d['uid']}/twin", headers=headers).json()
                for d in devices
            ]
            live = all(twin["reported"] for twin in twins)
            time.sleep(0.5)
        assert live, "devices reported nothing within 30 s of the demo being ready"
        assert httpx.get(f"{dashboard[1]}/").status_code == 200
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=60)
    output = "".join(lines)
    assert "Stopped" in output, output
    deadline = time.monotonic() + 10
    while _processes_using(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_using(data_dir) == [], "orphaned processes after Ctrl-C"
