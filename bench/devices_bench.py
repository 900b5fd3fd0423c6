"""`kizuna bench devices`: bulk CSV import of devices against a plain COPY of the same rows."""

from __future__ import annotations

import io
import json
import os
import time
from typing import Annotated, Any

import typer

from devices.bulk_import import import_devices_csv
from devices.catalog_sync import sync_product_models
from store.db import connect
from store.scratch import scratch_database

MODELS = ("ev", "refrigerator", "washing_machine", "air_conditioner")


def _csv(rows: int, tag: str) -> str:
    lines = [
        f"{tag}{i:07d},{MODELS[i % 4]},{tag}-d{i:07d},1.0.{i % 7},Home {i}" for i in range(rows)
    ]
    return "serial,model_id,uid,firmware,nickname\n" + "\n".join(lines) + "\n"


def _plain_copy_s(url: str, text: str) -> float:
    """Reference: COPY the same CSV into an unconstrained table (no validation, no keys)."""
    with connect(url) as conn:
        conn.execute("CREATE TEMP TABLE raw (s text, m text, u text, f text, n text)")
        started = time.perf_counter()
        with conn.cursor().copy("COPY raw FROM STDIN (FORMAT csv, HEADER true)") as copy:
            copy.write(text)
        conn.commit()
        return time.perf_counter() - started


def _import_s(url: str, text: str) -> tuple[float, int]:
    with connect(url) as conn:
        started = time.perf_counter()
        report = import_devices_csv(conn, io.StringIO(text, newline=""))
        conn.commit()
        return time.perf_counter() - started, report.imported


def run_devices_bench(admin_url: str, rows: int, rounds: int) -> dict[str, Any]:
    """Import `rows` devices `rounds` times (fresh rows each time); best and all rounds."""
    results = []
    with scratch_database(admin_url, "devices") as url:
        with connect(url, autocommit=True) as conn:
            sync_product_models(conn)
        for round_no in range(rounds):
            text = _csv(rows, f"B{round_no}x")
            reference = _plain_copy_s(url, text)
            elapsed, imported = _import_s(url, text)
            results.append(
                {
                    "round": round_no,
                    "rows": imported,
                    "import_s": round(elapsed, 3),
                    "import_rows_per_s": round(imported / elapsed),
                    "plain_copy_s": round(reference, 3),
                    "import_vs_plain_copy": round(elapsed / reference, 1),
                }
            )
    best = min(results, key=lambda r: r["import_s"])
    return {
        "benchmark": "devices_import",
        "rows": rows,
        "target_s": 60,
        "cpu_count": os.cpu_count(),
        "best": best,
        "all_rounds": results,
    }


def devices(
    database_url: Annotated[
        str | None,
        typer.Option(envvar="KIZUNA_DATABASE_URL", help="Server to measure on (a scratch DB)."),
    ] = None,
    rows: Annotated[int, typer.Option(help="Devices per import.")] = 100_000,
    rounds: Annotated[int, typer.Option(help="Imports (each into the growing registry).")] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = True,
) -> None:
    """Bulk-import devices from CSV (validated, all-or-nothing) and compare with a plain COPY."""
    if database_url:
        result = run_devices_bench(database_url, rows, rounds)
    else:
        from pathlib import Path

        from app.embedded import embedded_postgres

        with embedded_postgres(Path(".kizuna")) as url:
            result = run_devices_bench(url, rows, rounds)
    typer.echo(json.dumps(result if as_json else result["best"], indent=2))
