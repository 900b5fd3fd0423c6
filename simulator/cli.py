"""`kizuna simulate`: publish a simulated fleet (or a scenario) to an MQTT broker."""

from __future__ import annotations

import json
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import structlog
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from simulator.clock import floor_to, utc_now
from simulator.errors import SimulatorError
from simulator.models import DeviceSpec, parse_duration

app = typer.Typer(
    help="Publish a simulated fleet of connected products.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console(stderr=True)

DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise typer.BadParameter(
            "a number of simulated seconds per real second, or 'max'"
        ) from None
    if value <= 0:
        raise typer.BadParameter("must be positive")
    return value


def _duration(text: str | None) -> timedelta | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.callback(invoke_without_command=True)
def simulate(
    ctx: typer.Context,
    devices: Annotated[int, typer.Option(help="How many devices.", min=1)] = 36,
    mix: Annotated[
        str | None,
        typer.Option(help="Product mix, e.g. 'ev=1,refrigerator=2'; default: demo households."),
    ] = None,
    speed: Annotated[
        str,
        typer.Option(help="Simulated seconds per real second (10080 = a week a minute), or max."),
    ] = "1",
    duration: Annotated[
        str | None, typer.Option(help="Device time to simulate, e.g. 7d; default: until Ctrl-C.")
    ] = None,
    start_ago: Annotated[
        str | None,
        typer.Option(help="Start this long before now; default: the duration when accelerated."),
    ] = None,
    interval: Annotated[str, typer.Option(help="Device time between readings.")] = "5m",
    scenario: Annotated[
        str | None,
        typer.Option(
            help="A built-in scenario name or a YAML file; its devices must be registered in "
            "the platform as <uid-prefix>-<scenario uid> for scoring."
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            envvar="KIZUNA_DATABASE_URL", help="With --scenario: score the platform's alerts."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Same seed, same fleet, same lives.")] = 1,
    mqtt_url: Annotated[str, typer.Option(envvar="KIZUNA_MQTT_URL")] = DEFAULT_MQTT_URL,
    topic_prefix: Annotated[str, typer.Option(envvar="KIZUNA_MQTT_TOPIC_PREFIX")] = "kizuna",
    provisioning_file: Annotated[
        Path | None, typer.Option(help="Device credentials: CSV uid,password[,model] or JSON.")
    ] = None,
    connections: Annotated[
        int,
        typer.Option(help="0: one connection per device (own credential, own will); N: N shared."),
    ] = 0,
    processes: Annotated[int, typer.Option(help="Split the fleet over processes.", min=1)] = 1,
    uid_prefix: Annotated[str, typer.Option(help="Device uids start with this.")] = "sim",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the final numbers as JSON.")
    ] = False,
) -> None:
    """Run a fleet (or a scenario) until its duration is simulated or Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    # Logs go to stderr, so that --json output on stdout stays parseable.
    structlog.configure(logger_factory=_stderr_logger)
    try:
        if scenario is not None:
            result = _run_scenario(scenario, mqtt_url, topic_prefix, database_url, uid_prefix)
        else:
            result = _run_fleet(
                devices=devices,
                mix=mix,
                speed=_speed(speed),
                duration=_duration(duration),
                start_ago=_duration(start_ago),
                interval=_duration(interval) or timedelta(minutes=5),
                seed=seed,
                mqtt_url=mqtt_url,
                topic_prefix=topic_prefix,
                provisioning_file=provisioning_file,
                connections=connections,
                processes=processes,
                uid_prefix=uid_prefix,
            )
    except (SimulatorError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    else:
        _print_table(result)


def _stderr_logger(*_: object) -> structlog.PrintLogger:
    """A logger on whatever stderr is now (it may be swapped, e.g. by a test runner)."""
    return structlog.PrintLogger(sys.stderr)


def _fleet_specs(
    devices: int, mix: str | None, seed: int, uid_prefix: str, provisioning: Any
) -> list[DeviceSpec]:
    from simulator.households import demo_devices
    from simulator.mix import mixed_fleet, parse_mix

    if provisioning is not None and provisioning.devices:
        return list(provisioning.devices)
    if mix:
        return mixed_fleet(devices, parse_mix(mix), seed=seed, uid_prefix=uid_prefix)
    return [d.spec for d in demo_devices(devices, seed=seed, uid_prefix=uid_prefix)]


def _run_fleet(
    *,
    devices: int,
    mix: str | None,
    speed: float | None,
    duration: timedelta | None,
    start_ago: timedelta | None,
    interval: timedelta,
    seed: int,
    mqtt_url: str,
    topic_prefix: str,
    provisioning_file: Path | None,
    connections: int,
    processes: int,
    uid_prefix: str,
) -> dict[str, Any]:
    from simulator.fleet import Fleet, FleetOptions
    from simulator.processes import cpu_seconds, run_processes
    from simulator.provisioning import load_provisioning

    provisioning = load_provisioning(provisioning_file) if provisioning_file else None
    specs = _fleet_specs(devices, mix, seed, uid_prefix, provisioning)
    if start_ago is None:
        start_ago = duration if (duration and (speed is None or speed > 1)) else timedelta(0)
    options = FleetOptions(
        mqtt_url=mqtt_url,
        topic_prefix=topic_prefix,
        speed=speed,
        start=floor_to(utc_now() - start_ago, timedelta(minutes=1)),
        duration=duration,
        interval=interval,
        seed=seed,
        mode="shared" if connections > 0 else "per-device",
        connections=max(1, connections),
        credentials=provisioning.password if provisioning else None,
    )
    console.print(
        f"simulating {len(specs)} devices → {mqtt_url} (prefix {topic_prefix}), "
        f"{'as fast as possible' if speed is None else f'×{speed:g}'}, "
        f"{options.mode} connections, {processes} process(es)"
    )
    stop = threading.Event()
    with _progress(duration) as (bar, task):

        def show(numbers: dict[str, Any]) -> None:
            bar.update(task, completed=_done_s(numbers), info=_line(numbers))

        try:
            if processes > 1:
                return run_processes(
                    specs,
                    options,
                    processes,
                    provisioning=provisioning_file,
                    should_stop=stop.is_set,
                    progress=show,
                )
            cpu0 = cpu_seconds()
            stats = Fleet(specs, options).run(stop, lambda s: show(s.as_dict()))
            return stats.as_dict() | {"cpu_s": round(cpu_seconds() - cpu0, 2), "processes": 1}
        except KeyboardInterrupt:
            stop.set()
            raise


def _run_scenario(
    name: str, mqtt_url: str, topic_prefix: str, database_url: str | None, uid_prefix: str
) -> dict[str, Any]:
    from simulator.runner import run_scenario
    from simulator.scenarios import load_scenario

    loaded = load_scenario(name)
    with _progress(loaded.duration) as (bar, task):
        result = run_scenario(
            loaded,
            mqtt_url=mqtt_url,
            topic_prefix=topic_prefix,
            database_url=database_url,
            uid_prefix=f"{uid_prefix}-" if uid_prefix else "",
            progress=lambda s: bar.update(
                task, completed=_done_s(s.as_dict()), info=_line(s.as_dict())
            ),
        )
    return result.as_dict()


class _ProgressContext:
    def __init__(self, total: timedelta | None) -> None:
        self.progress = Progress(
            TextColumn("[bold]device time"),
            BarColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.total = total

    def __enter__(self) -> tuple[Progress, Any]:
        self.progress.start()
        total = self.total.total_seconds() if self.total else None
        return self.progress, self.progress.add_task("fleet", total=total, info="connecting…")

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def _progress(total: timedelta | None) -> _ProgressContext:
    return _ProgressContext(total)


def _done_s(numbers: dict[str, Any]) -> float:
    """Device time simulated so far, in seconds."""
    sim, start = numbers.get("sim_time"), numbers.get("sim_start")
    if not sim or not start:
        return 0.0
    return (datetime.fromisoformat(sim) - datetime.fromisoformat(start)).total_seconds()


def _line(numbers: dict[str, Any]) -> str:
    return (
        f"{numbers.get('sim_time') or '':.16}  {numbers['messages']:,} msgs "
        f"({numbers['messages_per_s']:,.0f}/s), {numbers['readings']:,} readings"
    )


def _print_table(result: dict[str, Any]) -> None:
    table = Table("", "")
    for key, value in result.items():
        table.add_row(
            key, json.dumps(value, default=str) if isinstance(value, dict) else str(value)
        )
    Console().print(table)


@app.command("scenarios")
def list_scenarios() -> None:
    """List the built-in scenarios."""
    from simulator.scenarios import builtin_scenarios, load_scenario

    table = Table("scenario", "devices", "faults", "expected alerts", "duration")
    for name in builtin_scenarios():
        s = load_scenario(name)
        table.add_row(
            name, str(len(s.devices)), str(len(s.faults)), str(len(s.expect)), str(s.duration)
        )
    Console().print(table)


@app.command("bench")
def bench(
    devices: Annotated[int, typer.Option(min=1)] = 10_000,
    connections: Annotated[int, typer.Option(min=1)] = 8,
    speed: Annotated[float, typer.Option(help="Simulated seconds per real second.")] = 60.0,
    duration: Annotated[str, typer.Option(help="Device time to simulate.")] = "30m",
    interval: Annotated[str, typer.Option(help="Device time between readings.")] = "1m",
    mqtt_url: Annotated[str, typer.Option(envvar="KIZUNA_MQTT_URL")] = DEFAULT_MQTT_URL,
    seed: Annotated[int, typer.Option()] = 1,
) -> None:
    """Measure a large fleet next to a plain publisher on the same broker; print JSON."""
    from simulator.bench import fleet_bench

    result = fleet_bench(
        mqtt_url,
        devices=devices,
        connections=connections,
        speed=speed,
        duration=_duration(duration) or timedelta(minutes=30),
        interval=_duration(interval) or timedelta(minutes=1),
        seed=seed,
    )
    typer.echo(json.dumps(result, indent=2))


@app.command("devices")
def print_devices(
    count: Annotated[int, typer.Option(help="How many devices.", min=1)] = 36,
    seed: Annotated[int, typer.Option()] = 1,
    uid_prefix: Annotated[str, typer.Option()] = "kz",
) -> None:
    """Print the demo devices (uid, serial, nickname, owner, home) as JSON, for registration."""
    from dataclasses import asdict

    from simulator.households import demo_devices

    typer.echo(
        json.dumps(
            [asdict(d) for d in demo_devices(count, seed=seed, uid_prefix=uid_prefix)],
            ensure_ascii=False,
            indent=2,
        )
    )
