"""Run Kizuna components as child processes and stop them all cleanly."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass, field

import structlog

log = structlog.get_logger(__name__)

STOP_TIMEOUT_S = 10.0
OUTPUT_LINES_KEPT = 40


@dataclass
class ChildProcess:
    """One `kizuna serve <component>` child, with the tail of its output kept for errors."""

    name: str
    process: subprocess.Popen[str]
    output: deque[str] = field(default_factory=lambda: deque(maxlen=OUTPUT_LINES_KEPT))

    def pump_output(self, echo: bool) -> None:
        """Keep the last lines of the child's output; echo them when asked."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line.rstrip())
            if echo:
                sys.stderr.write(f"[{self.name}] {line}")


def _die_with_parent() -> None:
    """Linux: deliver SIGTERM to the child when the supervisor dies, even by kill -9."""
    pr_set_pdeathsig = 1
    # Not Linux: children are still stopped by stop_all on a clean exit.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class Supervisor:
    """Starts children, notices when one dies, and stops the rest in reverse order."""

    def __init__(self, env: dict[str, str], echo_output: bool = False) -> None:
        self._env = {**os.environ, **env}
        self._echo = echo_output
        self.children: list[ChildProcess] = []

    def start(self, name: str, *args: str) -> ChildProcess:
        """Start `kizuna <args>` as a child called `name`."""
        process = subprocess.Popen(
            [sys.executable, "-m", "app", *args],
            env=self._env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            # Own process group: Ctrl-C reaches the supervisor, which stops children in order.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        child = ChildProcess(name, process)
        threading.Thread(target=child.pump_output, args=(self._echo,), daemon=True).start()
        self.children.append(child)
        log.info("supervisor.started", component=name, pid=process.pid)
        return child

    def first_dead(self) -> ChildProcess | None:
        """A child that exited on its own, if any."""
        return next((c for c in self.children if c.process.poll() is not None), None)

    def stop_all(self) -> None:
        """SIGTERM every child (last started first), then SIGKILL what is still alive."""
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        for child in reversed(self.children):
            try:
                child.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning("supervisor.kill", component=child.name)
                child.process.kill()
                child.process.wait()
        log.info("supervisor.stopped", children=len(self.children))
