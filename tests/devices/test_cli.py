"""`kizuna devices ...` commands against the test database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from devices.cli import app


def _last_json(output: str) -> Any:
    """The JSON result line (logs may come before it)."""
    return json.loads(output.strip().splitlines()[-1])


def test_sync_import_and_sweep_from_the_command_line(
    database_url: str, db: Any, tmp_path: Path
) -> None:
    runner = CliRunner()
    env = {"KIZUNA_DATABASE_URL": database_url, "KIZUNA_ENV": "development"}
    synced = runner.invoke(app, ["sync-models"], env=env)
    assert synced.exit_code == 0, synced.output
    assert "ev" in _last_json(synced.output)["product_models"]
    good = tmp_path / "good.csv"
    good.write_text("serial,model_id\nC-1,ev\nC-2,ev\n", encoding="utf-8")
    imported = runner.invoke(app, ["import", str(good)], env=env)
    assert imported.exit_code == 0 and _last_json(imported.output)["imported"] == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("serial,model_id\nC-3,ev\nC-1,ev\n", encoding="utf-8")
    refused = runner.invoke(app, ["import", str(bad)], env=env)
    assert refused.exit_code == 1 and "line 3: serial already registered" in refused.output
    assert db.execute("SELECT count(*) AS n FROM devices").fetchone()["n"] == 2
    swept = runner.invoke(app, ["expire-commands"], env=env)
    assert swept.exit_code == 0 and _last_json(swept.output) == {"expired": 0}
