"""The `kizuna` command itself: quick commands stay quiet, benchmarks load only when asked."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest


def _kizuna(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed console script (as a person would), every warning made visible."""
    script = Path(sys.executable).with_name("kizuna")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "app"]
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def test_version_prints_the_version_and_nothing_on_stderr() -> None:
    result = _kizuna("version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == version("kizuna")
    assert result.stderr == ""


def test_importing_the_cli_does_not_import_the_benchmarks() -> None:
    probe = "import sys, app.cli; print(sorted(m for m in sys.modules if m.startswith('bench')))"
    result = subprocess.run(
        [sys.executable, "-W", "default", "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert result.stderr == ""


@pytest.mark.parametrize("args", [("--help",), ("bench", "--help")], ids=" ".join)
def test_help_still_lists_the_lazy_benchmarks_without_warnings(args: tuple[str, ...]) -> None:
    result = _kizuna(*args)
    assert result.returncode == 0, result.stderr
    assert ("bench" if args == ("--help",) else "api") in result.stdout
    assert result.stderr == ""
