"""Property-based fuzzing of every operation in the OpenAPI schema: no 5xx, errors as problems.

The app is served by uvicorn over real HTTP on the test database; schemathesis generates
valid and invalid requests per operation (bounded: a few examples each) as an operator and
as a customer (with a real device of theirs in `{device_uid}` paths).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from api.app import create_app
from api.config import ApiConfig
from app.embedded import free_port
from tests.api.conftest import FAST_API_CONFIG, TestUser
from tests.conftest import make_test_settings

EXAMPLES_PER_MODE = {"positive": 2, "negative": 1}
# Ending the fuzzing session itself would only turn later cases into 401s.
SKIPPED = {("POST", "/api/v1/auth/logout"), ("POST", "/api/v1/auth/logout-all")}
PROBLEM = "application/problem+json"


@pytest.fixture
def served(
    database_url: str, mqtt_url: str, topic_prefix: str, tmp_path: Path
) -> Iterator[tuple[str, Any, Any]]:
    """The app behind uvicorn on a free port; its base URL and the app."""
    test_settings = make_test_settings(
        database_url, mqtt_url, topic_prefix, tmp_path, api=ApiConfig(**FAST_API_CONFIG)
    )
    app = create_app(test_settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", app, test_settings
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _content_type(response: Any) -> str:
    # schemathesis responses map each header name to a list of values.
    value = response.headers.get("content-type") or [""]
    return str(value[0] if isinstance(value, list) else value)


def _check(label: str, response: Any, failures: list[str]) -> None:
    if response.status_code >= 500:
        failures.append(f"{label}: {response.status_code} {response.text[:200]}")
    elif response.status_code >= 400 and not _content_type(response).startswith(PROBLEM):
        failures.append(f"{label}: {response.status_code} not problem+json")


def _runner(
    label: str,
    examples: int,
    strategy: Any,
    base_url: str,
    headers: dict[str, str],
    failures: list[str],
) -> Any:
    # Generate only: findings are collected, never raised, so nothing is shrunk or retried.
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        try:
            response = case.call(base_url=base_url, headers=headers, timeout=30)
        except Exception as exc:
            failures.append(f"{label}: request failed: {exc!r}"[:300])
            return
        _check(label, response, failures)

    return run


def _fuzz(
    operation: Any,
    base_url: str,
    headers: dict[str, str],
    path: dict[str, str],
    failures: list[str],
    modes: tuple[GenerationMode, ...],
) -> None:
    fixed = {k: v for k, v in path.items() if "{" + k + "}" in operation.path}
    for mode in modes:
        label = f"{operation.method.upper()} {operation.path} ({mode.value})"
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed or None)
        try:
            _runner(label, EXAMPLES_PER_MODE[mode.value], strategy, base_url, headers, failures)()
        except Unsatisfiable:  # no invalid request exists for this operation
            continue
        except Exception as exc:  # generation trouble is a finding too
            failures.append(f"{label}: {exc!r}"[:300])


@pytest.mark.slow
def test_no_operation_answers_5xx_to_generated_requests(
    served: tuple[str, Any, Any], make_fuzz_users: Any
) -> None:
    base_url, app, test_settings = served
    # Users are made through a second app instance: the served one keeps its own pool.
    operator, customer, device_uid = make_fuzz_users(create_app(test_settings))
    schema = schemathesis.openapi.from_dict(app.openapi())
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        path = {"device_uid": device_uid}
        both = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        _fuzz(operation, base_url, operator.headers, path, failures, both)
        # Invalid input is refused before role checks matter: valid requests suffice here.
        _fuzz(operation, base_url, customer.headers, path, failures, (GenerationMode.POSITIVE,))
    assert not failures, "\n".join(failures)


@pytest.fixture
def make_fuzz_users(database_url: str, db: Any) -> Any:
    """Factory building an operator, a customer and their device on the served app."""
    from fastapi.testclient import TestClient

    from tests.api.conftest import insert_customer, insert_device

    def factory(app: Any) -> tuple[TestUser, TestUser, str]:
        with TestClient(app) as client:
            users = []
            for role in ("operator", "customer"):
                customer_id = insert_customer(db) if role == "customer" else None
                users.append(_user(client, role, customer_id))
        device = insert_device(db, users[1].customer_id)
        return users[0], users[1], device

    return factory


def _user(client: Any, role: str, customer_id: int | None) -> TestUser:
    import secrets

    import pyotp

    from tests.api.conftest import PASSWORD

    accounts = client.app.state.accounts
    pool = client.app.state.pool
    secret = pyotp.random_base32() if role != "customer" else None
    email = f"fuzz-{role}-{secrets.token_hex(3)}@example.com"

    async def create() -> tuple[Any, Any]:
        async with pool.connection() as conn:
            user = await accounts.create_user(
                conn,
                role=role,
                email=email,
                password=PASSWORD,
                customer_id=customer_id,
                totp_secret=secret,
            )
            return user, await accounts.issue_session(conn, user["id"])

    user, tokens = client.portal.call(create)
    return TestUser(
        id=user["id"],
        public_id=str(user["public_id"]),
        role=role,
        email=email,
        password=PASSWORD,
        totp_secret=secret,
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        customer_id=customer_id,
    )
