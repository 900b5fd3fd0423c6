"""`kizuna demo`: embedded database and broker, every component, and a simulated fleet."""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import structlog
from rich.console import Console
from rich.panel import Panel

from app.demo_seed import DemoSeed, seed_demo
from app.embedded import embedded_mail_sink, free_port, wait_for_port
from app.services import running_services
from app.settings import Settings
from app.supervisor import Supervisor
from simulator.fleet import start_fleet_thread

log = structlog.get_logger(__name__)

COMPONENT_ORDER = ("ingest", "scheduler", "notify", "api", "dashboard")
READY_TIMEOUT_S = 60.0
HISTORY = timedelta(hours=12)  # the fleet replays this much recent life before going live


def run_demo(settings: Settings, *, device_count: int, speed: float, verbose: bool = False) -> None:
    """Run the whole platform on this machine until Ctrl-C."""
    console = Console()
    _interrupt_on(signal.SIGTERM, signal.SIGHUP)
    console.print("[bold]Kizuna demo[/bold]: starting embedded PostgreSQL and MQTT broker…")
    with running_services(settings) as live, embedded_mail_sink(live.data_dir) as mail:
        assert live.database_url and live.mqtt_url
        smtp_url, mail_folder = mail
        console.print(f"Registering {device_count} simulated products and their owners…")
        seed = seed_demo(live, device_count)
        api_port, dashboard_port = free_port(), free_port()
        environment = _child_environment(live, api_port, dashboard_port)
        environment["KIZUNA_NOTIFY__SMTP_URL"] = smtp_url
        supervisor = Supervisor(environment, echo_output=verbose)
        fleet_stop = None
        try:
            for component in COMPONENT_ORDER:
                supervisor.start(component, "serve", component)
            wait_for_port("127.0.0.1", api_port, READY_TIMEOUT_S)
            wait_for_port("127.0.0.1", dashboard_port, READY_TIMEOUT_S)
            _, fleet_stop = start_fleet_thread(
                mqtt_url=live.mqtt_url,
                topic_prefix=live.mqtt_topic_prefix,
                devices=seed.devices,
                speed=speed,
                start=datetime.now(UTC) - HISTORY,
            )
            console.print(_welcome(seed, api_port, dashboard_port, mail_folder))
            _watch(supervisor, console)
        except KeyboardInterrupt:
            console.print("\nStopping…")
        finally:
            if fleet_stop is not None:
                fleet_stop.set()
            supervisor.stop_all()
    console.print("Stopped: no Kizuna, PostgreSQL or broker process is left running.")


def _interrupt_on(*signals: signal.Signals) -> None:
    """Treat termination like Ctrl-C, so embedded services are always stopped."""

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    for number in signals:
        signal.signal(number, interrupt)


def _child_environment(live: Settings, api_port: int, dashboard_port: int) -> dict[str, str]:
    assert live.database_url and live.mqtt_url
    return {
        "KIZUNA_DATABASE_URL": live.database_url,
        "KIZUNA_MQTT_URL": live.mqtt_url,
        "KIZUNA_MQTT_TOPIC_PREFIX": live.mqtt_topic_prefix,
        "KIZUNA_INGEST__MQTT_PROTOCOL": live.ingest.mqtt_protocol,
        "KIZUNA_DATA_DIR": str(live.data_dir.resolve()),
        "KIZUNA_API__PORT": str(api_port),
        "KIZUNA_DASHBOARD__PORT": str(dashboard_port),
    }


def _welcome(seed: DemoSeed, api_port: int, dashboard_port: int, mail_folder: Path) -> Panel:
    lines = [
        f"Dashboard  http://127.0.0.1:{dashboard_port}/   (customer portal: /portal)",
        f"API        http://127.0.0.1:{api_port}/docs",
        f"Email      messages to owners are kept in {mail_folder}",
        f"Fleet      {len(seed.devices)} simulated products, replaying the last "
        f"{HISTORY.seconds // 3600} h, then live",
        "",
        "Logins (saved in the data directory, demo-logins.json):",
    ]
    for login in seed.logins:
        line = f"  {login.role:<9} {login.email}  password: {login.password}"
        if login.totp_secret:
            line += f"\n            TOTP secret: {login.totp_secret} (code now: "
            line += f"{pyotp.TOTP(login.totp_secret).now()}; add it to an authenticator app)"
        if login.language:
            line += f"  [{login.language}]"
        lines.append(line)
    lines += ["", "Press Ctrl-C to stop everything."]
    return Panel("\n".join(lines), title="Kizuna is running", expand=False)


def _watch(supervisor: Supervisor, console: Console) -> None:
    """Block until Ctrl-C; if a component dies, show why and stop."""
    while True:
        dead = supervisor.first_dead()
        if dead is not None:
            console.print(f"[red]{dead.name} stopped unexpectedly[/red]; its last output:")
            console.print("\n".join(dead.output))
            return
        time.sleep(0.5)
