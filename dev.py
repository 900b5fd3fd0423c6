#!/usr/bin/env python3
"""Bootstrap and run Kizuna on a fresh machine with only Python >= 3.11.

    python3 dev.py demo     # embedded database and broker, simulated fleet, API and dashboard
    python3 dev.py test     # lint, type check and the whole test suite

The first run creates .venv and installs Kizuna with its development tools; later runs
reinstall only when pyproject.toml changed. Standard library only, on purpose: this file
runs before any dependency exists.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".kizuna-install-stamp"
LINT_TARGETS = [
    "app",
    "store",
    "ingest",
    "devices",
    "rules",
    "notify",
    "api",
    "dashboard",
    "simulator",
    "bench",
    "tests",
    "dev.py",
]


def say(message: str) -> None:
    print(f"[kizuna] {message}", file=sys.stderr, flush=True)


def run(*command: str | Path) -> None:
    completed = subprocess.run([str(c) for c in command], cwd=ROOT, check=False)
    if completed.returncode != 0:
        say(f"failed ({completed.returncode}): {' '.join(str(c) for c in command)}")
        sys.exit(completed.returncode)


def ensure_environment() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 (this file runs under any python3)
        sys.exit("Kizuna needs Python 3.11 or newer")
    if not (BIN / "python").exists():
        say(f"creating virtual environment in {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    say("installing Kizuna and its dependencies (first run takes a few minutes)")
    run(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(BIN / "python", "-m", "pip", "install", "--quiet", "-e", ".[dev]")
    STAMP.write_text(wanted)


def test(extra: list[str]) -> None:
    say("ruff check")
    run(BIN / "ruff", "check", *LINT_TARGETS)
    say("ruff format --check")
    run(BIN / "ruff", "format", "--check", *LINT_TARGETS)
    say("mypy")
    run(
        BIN / "mypy",
        "app",
        "store",
        "ingest",
        "devices",
        "rules",
        "notify",
        "api",
        "dashboard",
        "simulator",
        "bench",
    )
    say("pytest")
    run(BIN / "python", "-m", "pytest", *extra)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("demo", "test", "kizuna"):
        sys.exit(__doc__)
    command, extra = sys.argv[1], sys.argv[2:]
    ensure_environment()
    if command == "test":
        test(extra)
    elif command == "demo":
        os.execv(BIN / "kizuna", [str(BIN / "kizuna"), "demo", *extra])
    else:
        os.execv(BIN / "kizuna", [str(BIN / "kizuna"), *extra])


if __name__ == "__main__":
    main()
