"""`kizuna bench dashboard`: server time of the dashboard's heaviest callbacks at fleet scale.

Builds a scratch database with N devices (default 10,000) and M telemetry rows (default
10 million, spread over 7 days) with generate_series, then times the dashboard's callbacks
through Flask's test client (server time: routing, auth, queries and JSON encoding, no
browser). A trivial callback-free request and `SELECT 1` are measured in the same run as
references, so results can be compared across noisy machines by ratio.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import pyotp
import typer

from app.settings import Settings
from dashboard.accounts import LocalAccounts
from dashboard.app import create_dash_app
from devices.catalog import builtin_models
from devices.catalog_sync import sync_product_models
from store.db import connect, open_pool
from store.migrate import upgrade
from store.scratch import scratch_database
from store.telemetry import ensure_slots

DENSE_DEVICE_ROWS = 7 * 24 * 60  # one reading a minute for 7 days
PASSWORD = "bench-password-not-secret"  # noqa: S105 (an in-memory bench account)


def build_fleet(url: str, devices: int, rows: int) -> dict[str, float]:
    """Devices, twins, owners, alerts, dead letters and telemetry; returns seconds per step."""
    timings: dict[str, float] = {}
    with connect(url, autocommit=True) as conn:
        conn.execute("SET statement_timeout = 0")  # bulk building, not a request
        started = time.perf_counter()
        sync_product_models(conn)
        for model in builtin_models().values():
            ensure_slots(conn, model)
        conn.execute(
            """INSERT INTO devices (uid, serial, model_id, firmware, latitude, longitude)
               SELECT 'dev-' || lpad(g::text, 6, '0'), 'SN' || g,
                      (ARRAY['ev','refrigerator','washing_machine','air_conditioner'])[1 + g %% 4],
                      '1.' || (g %% 7), 33 + (g * 7919 %% 1000) / 100.0,
                      130 + (g * 104729 %% 1200) / 100.0
               FROM generate_series(1, %s::int) g""",
            (devices,),
        )
        conn.execute(
            """INSERT INTO device_twins (device_id, reported, last_seen, last_seq, connection)
               SELECT id, jsonb_build_object('soc_pct', jsonb_build_object('v', id % 100)),
                      now() - make_interval(secs => (id * 37) % 900), 1000, 'online'
               FROM devices"""
        )
        conn.execute(
            """INSERT INTO customers (language) SELECT 'ja' FROM generate_series(1, %s::int)""",
            (devices // 2,),
        )
        conn.execute(
            """INSERT INTO device_ownerships (device_id, customer_id, role)
               SELECT d.id, c.id, 'owner' FROM devices d JOIN customers c ON c.id = (d.id + 1) / 2
               WHERE d.id % 2 = 1"""
        )
        rule = conn.execute(
            """INSERT INTO rules (key, source, scope_model_id, spec)
               VALUES ('bench.rule', 'pack', 'ev', '{}') RETURNING id"""
        ).fetchone()
        assert rule is not None
        conn.execute(
            """INSERT INTO alerts (rule_id, device_id, severity, opened_at, dedup_key)
               SELECT %s, id, (ARRAY['info','warning','critical'])[1 + id %% 3], now(), 'b' || id
               FROM devices WHERE id %% 20 = 0""",
            (rule["id"],),
        )
        conn.execute(
            """INSERT INTO ingest_dead_letters (received_at, topic, reason, detail, payload,
                                                payload_size)
               SELECT now() - make_interval(secs => g), 't',
                      (ARRAY['schema', 'json', 'skew'])[1 + g % 3], 'bench', '\\x00', 1
               FROM generate_series(1, 2000) g"""
        )
        timings["registry_s"] = time.perf_counter() - started
        started = time.perf_counter()
        _telemetry(conn, devices, rows)
        timings["telemetry_s"] = time.perf_counter() - started
        started = time.perf_counter()
        # Autovacuum does this for insert-only tables (PostgreSQL 13+); it also summarizes
        # the BRIN ranges the recent-time queries rely on.
        conn.execute("VACUUM ANALYZE")
        timings["vacuum_analyze_s"] = time.perf_counter() - started
    return timings


def _telemetry(conn: Any, devices: int, rows: int) -> None:
    per_device = max(1, (rows - DENSE_DEVICE_ROWS) // devices)
    step_s = 7 * 24 * 3600 / per_device
    # Oldest first, all devices per time step: the physical order ingest produces, which the
    # BRIN index on ts relies on. A hundred steps per statement bounds each transaction.
    for newest in range(per_device, 0, -100):
        conn.execute(
            """INSERT INTO telemetry (device_id, ts, seq, received_at, vals)
               SELECT d, now() - make_interval(secs => s * %(step)s + d %% 60),
                      s, now() - make_interval(secs => s * %(step)s + d %% 60),
                      ARRAY[random() * 100, random() * 500, 1, 0, random() * 50]
               FROM generate_series(%(newest)s::int, %(oldest)s::int, -1) s,
                    generate_series(1, %(devices)s::int) d""",
            {"step": step_s, "newest": newest, "oldest": max(1, newest - 99), "devices": devices},
        )
    # One dense EV: a reading every minute for 7 days (the chart benchmark's subject).
    conn.execute(
        """INSERT INTO telemetry (device_id, ts, seq, received_at, vals)
           SELECT 4, now() - make_interval(mins => s), 1000000 + s,
                  now() - make_interval(mins => s), ARRAY[50 + 40 * sin(s / 300.0), 300, 1, 0, 20]
           FROM generate_series(1, %s::int) s""",
        (DENSE_DEVICE_ROWS,),
    )


def _signed_in_client(app: Any, accounts: LocalAccounts, email: str, secret: str) -> Any:
    client = app.server.test_client()
    response = client.post(
        "/auth/login",
        data={"email": email, "password": PASSWORD, "otp": pyotp.TOTP(secret).now()},
    )
    assert response.status_code == 303 and "error" not in response.headers["Location"]
    return client


def _callback(
    client: Any, output: str, inputs: list[dict[str, Any]], state: list[dict[str, Any]]
) -> Callable[[], None]:
    ids = [o.split(".") for o in output.strip(".").split("...")]
    body = {
        "output": output,
        "outputs": [{"id": i, "property": p} for i, p in ids]
        if len(ids) > 1
        else {"id": ids[0][0], "property": ids[0][1]},
        "inputs": inputs,
        "state": state,
        "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"],
    }

    def call() -> None:
        response = client.post("/_dash-update-component", json=body)
        assert response.status_code == 200, response.status_code

    return call


def _time(call: Callable[[], None], repeat: int) -> dict[str, float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return {
        "first_ms": round(samples[0], 2),
        "median_ms": round(statistics.median(samples), 2),
        "max_ms": round(max(samples), 2),
    }


def measure(url: str, repeat: int) -> dict[str, Any]:
    """Time each heavy callback against the built fleet."""
    settings = Settings(_env_file=None, env="development", database_url=url)
    pool = open_pool(url, settings.store, "bench-dashboard")
    accounts = LocalAccounts()
    email = "bench-operator@example.com"
    secret = accounts.add(email, PASSWORD, role="operator", display_name="Bench")
    try:
        app = create_dash_app(settings, pool=pool, authenticator=accounts)
        client = _signed_in_client(app, accounts, email, secret)
        tz = {"id": "viewer-tz", "property": "data", "value": "Asia/Tokyo"}
        tick = {"id": "tick", "property": "n_intervals", "value": 1}
        lang = [{"id": "lang", "property": "value", "value": "en"}]
        calls: dict[str, Callable[[], None]] = {
            "page_route": _callback(
                client,
                "..page.children...nav.children...account.children..",
                [{"id": "url", "property": "pathname", "value": "/"}, lang[0]],
                [{"id": "url", "property": "search", "value": ""}],
            ),
            "fleet_overview": _callback(
                client, "..fleet-body.children...fleet-updated.children..", [tick, tz], lang
            ),
            "device_chart_7d": _callback(
                client,
                "device-chart.figure",
                [
                    {"id": "device-metric", "property": "value", "value": "soc_pct"},
                    {"id": "device-range", "property": "value", "value": "7d"},
                ],
                [{"id": "device-uid", "property": "data", "value": "dev-000004"}, tz, *lang],
            ),
            "devices_table_last_page_by_last_seen": _callback(
                client,
                "..devices-table.data...devices-table.page_count...devices-table.page_current...devices-total.children..",
                [
                    {"id": "devices-table", "property": "page_current", "value": 10**9},
                    {
                        "id": "devices-table",
                        "property": "sort_by",
                        "value": [{"column_id": "last_seen", "direction": "desc"}],
                    },
                    {"id": "devices-search", "property": "value", "value": None},
                    {"id": "devices-model", "property": "value", "value": None},
                    {"id": "devices-status", "property": "value", "value": None},
                    tz,
                ],
                lang,
            ),
            "map_clustered_all": _callback(
                client,
                "..fleet-map.figure...map-note.children..",
                [{"id": "fleet-map", "property": "relayoutData", "value": None}, tick],
                lang,
            ),
        }
        results = {name: _time(call, repeat) for name, call in calls.items()}
        reference = _time(lambda: _assert_ok(client.get("/_dash-layout")), repeat)
        with pool.connection() as conn:
            select1 = _time(lambda: _discard(conn.execute("SELECT 1").fetchone()), repeat)
    finally:
        pool.close()
    for value in results.values():
        value["ratio_to_layout_request"] = round(value["median_ms"] / reference["median_ms"], 1)
    return {
        "callbacks": results,
        "reference_layout_request": reference,
        "reference_select_1": select1,
    }


def _discard(_: Any) -> None:
    return None


def _assert_ok(response: Any) -> None:
    assert response.status_code == 200


def dashboard(
    database_url: Annotated[
        str | None,
        typer.Option(envvar="KIZUNA_DATABASE_URL", help="Server to measure on (a scratch DB)."),
    ] = None,
    devices: Annotated[int, typer.Option(help="Devices in the fleet.")] = 10_000,
    rows: Annotated[int, typer.Option(help="Telemetry rows over 7 days.")] = 10_000_000,
    repeat: Annotated[int, typer.Option(help="Timed calls per callback.")] = 7,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
) -> None:
    """Fleet overview, 7-day chart, devices table and map callbacks at fleet scale."""
    from app.embedded import embedded_postgres
    from app.logging import configure_logging

    configure_logging("warning")  # stdout carries the JSON result only

    with contextlib.ExitStack() as stack:
        admin = database_url or stack.enter_context(embedded_postgres(Path(".kizuna")))
        url = stack.enter_context(scratch_database(admin, "dash", migrate=False))
        upgrade(url)
        build = build_fleet(url, devices, rows)
        with connect(url) as conn:
            stored = conn.execute("SELECT count(*) AS n FROM telemetry").fetchone()
        result = {
            "benchmark": "dashboard",
            "devices": devices,
            "telemetry_rows": stored["n"] if stored else 0,
            "build": {k: round(v, 1) for k, v in build.items()},
            **measure(url, repeat),
        }
    typer.echo(json.dumps(result, indent=None if as_json else 2))
