"""`kizuna bench api`: cost of authentication (argon2id login, per-request session check)."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from api.app import create_app
from api.config import ApiConfig
from api.security.passwords import Passwords
from app.settings import Settings
from store.db import connect
from store.scratch import scratch_database

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

PASSWORD = "benchmark passphrase 1234"  # noqa: S105 (a throwaway account in a scratch database)


def _timings_ms(action: Callable[[], Any], count: int) -> dict[str, float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p95_ms": round(samples[int(len(samples) * 0.95) - 1], 2),
        "n": count,
    }


def _argon2(config: ApiConfig, count: int) -> dict[str, float]:
    passwords = Passwords(config)
    hashed = passwords.hash(PASSWORD)
    return _timings_ms(lambda: passwords.verify(hashed, PASSWORD), count)


def run_api_bench(admin_url: str, requests: int) -> dict[str, Any]:
    """Measure argon2id cost and per-request authentication cost against a reference."""
    # Imported here: starlette's test client warns at import time, and `kizuna bench --help`
    # must not pay for it.
    from fastapi.testclient import TestClient

    production = ApiConfig()
    cheap = ApiConfig(argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1)
    result: dict[str, Any] = {
        "argon2id_verify_production_params": _argon2(production, 10),
        "argon2id_verify_minimal_params_reference": _argon2(cheap, 10),
    }
    with scratch_database(admin_url, "api") as url:
        settings = Settings(_env_file=None, database_url=url, api=production)
        with TestClient(create_app(settings)) as client:
            customer_id = _customer(url)
            _create_customer_user(client, customer_id)
            login = lambda: client.post(  # noqa: E731
                "/api/v1/auth/login", json={"email": "bench@example.com", "password": PASSWORD}
            )
            result["login_customer_production_params"] = _timings_ms(login, 10)
            token = login().json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            result["get_me_authenticated"] = _timings_ms(
                lambda: client.get("/api/v1/me", headers=headers), requests
            )
            result["get_me_anonymous_401_reference"] = _timings_ms(
                lambda: client.get("/api/v1/me"), requests
            )
    auth = result["get_me_authenticated"]["p50_ms"]
    reference = result["get_me_anonymous_401_reference"]["p50_ms"]
    result["authenticated_over_anonymous_p50_ratio"] = round(auth / reference, 2)
    argon = result["argon2id_verify_production_params"]["p50_ms"]
    result["argon2id_production_over_minimal_p50_ratio"] = round(
        argon / result["argon2id_verify_minimal_params_reference"]["p50_ms"], 1
    )
    result["cpu_count"] = os.cpu_count()
    return result


def _customer(url: str) -> int:
    with connect(url, autocommit=True) as conn:
        row = conn.execute("INSERT INTO customers DEFAULT VALUES RETURNING id").fetchone()
        assert row is not None
        return int(row["id"])


def _create_customer_user(client: TestClient, customer_id: int) -> None:
    accounts = client.app.state.accounts  # type: ignore[attr-defined]
    pool = client.app.state.pool  # type: ignore[attr-defined]

    async def create() -> None:
        async with pool.connection() as conn:
            await accounts.create_user(
                conn,
                role="customer",
                email="bench@example.com",
                password=PASSWORD,
                customer_id=customer_id,
            )

    assert client.portal is not None
    client.portal.call(create)


def api(
    admin_url: Annotated[
        str | None, typer.Option(help="PostgreSQL URL allowed to create databases.")
    ] = None,
    requests: Annotated[int, typer.Option(min=10, max=10000)] = 200,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
) -> None:
    """Authentication cost: argon2id at production parameters, and the per-request check."""
    url = admin_url or os.environ.get("KIZUNA_DATABASE_URL")
    if not url:
        raise typer.BadParameter("give --admin-url or set KIZUNA_DATABASE_URL")
    result = run_api_bench(url, requests)
    typer.echo(json.dumps(result, indent=None if json_output else 2))
