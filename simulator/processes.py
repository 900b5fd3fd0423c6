"""Very large fleets: the devices split over several processes, numbers summed by the parent."""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

import psutil

from simulator.fleet import Fleet, FleetOptions, FleetStats
from simulator.models import DeviceSpec
from simulator.provisioning import load_provisioning

SUMMED = (
    "devices",
    "messages",
    "readings",
    "events",
    "acks",
    "duplicates",
    "malformed",
    "bytes",
    "connects",
    "connection_failures",
)


def cpu_seconds(process: psutil.Process | None = None) -> float:
    """User + system CPU time of a process (this one by default)."""
    times = (process or psutil.Process()).cpu_times()
    return float(times.user + times.system)


def _child(
    index: int,
    specs: list[DeviceSpec],
    options: FleetOptions,
    provisioning: Path | None,
    reports: mp.Queue[dict[str, Any]],
    stop: MpEvent,
) -> None:
    """One process's share of the fleet; reports its numbers about once a second."""
    import threading

    if provisioning is not None:
        options = replace(options, credentials=load_provisioning(provisioning).password)
    local_stop = threading.Event()
    last = 0.0

    def progress(stats: FleetStats) -> None:
        nonlocal last
        if stop.is_set():
            local_stop.set()
        if time.monotonic() - last >= 1.0:
            last = time.monotonic()
            reports.put({"index": index, "cpu_s": cpu_seconds(), **stats.as_dict()})

    stats = Fleet(specs, options).run(local_stop, progress)
    reports.put({"index": index, "final": True, "cpu_s": cpu_seconds(), **stats.as_dict()})


def run_processes(
    specs: Sequence[DeviceSpec],
    options: FleetOptions,
    processes: int,
    *,
    provisioning: Path | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run the fleet split over `processes` processes; return the summed numbers."""
    context = mp.get_context("spawn")
    reports: mp.Queue[dict[str, Any]] = context.Queue()
    stop = context.Event()
    slices = [list(specs[i::processes]) for i in range(processes)]
    children = [
        context.Process(
            target=_child, args=(i, part, options, provisioning, reports, stop), daemon=True
        )
        for i, part in enumerate(slices)
        if part
    ]
    started = time.monotonic()
    for child in children:
        child.start()
    latest: dict[int, dict[str, Any]] = {}
    finished: set[int] = set()
    while len(finished) < len(children):
        if should_stop():
            stop.set()
        try:
            report = reports.get(timeout=0.5)
        except queue.Empty:
            if not any(c.is_alive() for c in children):
                break
            continue
        latest[report["index"]] = report
        if report.get("final"):
            finished.add(report["index"])
        if progress:
            progress(_sum(latest, time.monotonic() - started))
    for child in children:
        child.join(10)
    return _sum(latest, time.monotonic() - started) | {"processes": len(children)}


def _sum(latest: dict[int, dict[str, Any]], elapsed: float) -> dict[str, Any]:
    total: dict[str, Any] = {key: sum(r.get(key, 0) for r in latest.values()) for key in SUMMED}
    total["elapsed_s"] = round(elapsed, 2)
    total["messages_per_s"] = round(total["messages"] / elapsed, 1) if elapsed else 0.0
    total["readings_per_s"] = round(total["readings"] / elapsed, 1) if elapsed else 0.0
    total["cpu_s"] = round(sum(r.get("cpu_s", 0.0) for r in latest.values()), 2)
    times = [r["sim_time"] for r in latest.values() if r.get("sim_time")]
    total["sim_time"] = min(times) if times else None
    starts = [r["sim_start"] for r in latest.values() if r.get("sim_start")]
    total["sim_start"] = min(starts) if starts else None
    return total
