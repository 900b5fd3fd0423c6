"""Washing machine: wash cycles on the household's laundry days, water flow, leaks."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import numpy as np

from simulator.behaviour.base import (
    Behaviour,
    BehaviourContext,
    EmittedEvent,
    MetricValues,
    crossed,
    relax,
    time_within,
)

# (phase, minutes, water flow L/min, power W)
PROGRAM: tuple[tuple[str, float, float, float], ...] = (
    ("fill", 6, 12.0, 12.0),
    ("wash", 30, 0.0, 160.0),
    ("rinse", 16, 10.0, 150.0),
    ("spin", 10, 0.0, 450.0),
)
HEATER_W = 1900.0
HEATING_MIN = 12.0
WASH_TEMP_C = 40.0
ROOM_C = 20.0
LEAK_FLOW_LPM = 0.8


class WashingMachine(Behaviour):
    """A front loader run on laundry days, pausable by the platform."""

    model_id = "washing_machine"
    faults = frozenset({"leak"})

    def __init__(self, context: BehaviourContext, start: datetime) -> None:
        super().__init__(context, start)
        self.cycles = int(self.rng.integers(0, 20))
        self.phase_index: int | None = None  # index into PROGRAM while a cycle runs
        self.phase_elapsed_min = 0.0
        self.paused = False
        self.done_left_min = 0.0
        self.drum_c = ROOM_C
        self.leak_reported = False

    def daily_plan(self, day: date, day_rng: np.random.Generator) -> dict[str, float]:
        """Laundry starts a little after the persona's usual hour on laundry days."""
        if not self.persona.does_laundry(day):
            return {}
        return {"start": self.persona.laundry_h + float(day_rng.uniform(0, 0.75))}

    def step(self, now: datetime, dt_s: float) -> list[EmittedEvent]:
        """Run the programme and the drum's temperature for one step."""
        events: list[EmittedEvent] = []
        if "leak" in self.active_faults and not self.leak_reported:
            self.leak_reported = True
            data: MetricValues = {"water_flow_lpm": LEAK_FLOW_LPM}
            # stamped at the end of the step: never before the moment the leak began
            events.append(EmittedEvent(now, "leak_detected", data))
        if self.phase_index is None and crossed(self.plan(now).get("start"), now, dt_s):
            self.phase_index, self.phase_elapsed_min, self.done_left_min = 0, 0.0, 0.0
            events.append(EmittedEvent(time_within(now, dt_s, 0.05), "cycle_started"))
        if self.phase_index is not None and not self.paused:
            self.phase_elapsed_min += dt_s / 60
            if self.phase_elapsed_min >= PROGRAM[self.phase_index][1]:
                self.phase_index += 1
                self.phase_elapsed_min = 0.0
                if self.phase_index >= len(PROGRAM):
                    self.phase_index = None
                    self.cycles += 1
                    self.done_left_min = 30.0
                    done: MetricValues = {"cycles_since_drum_clean": self.cycles}
                    events.append(EmittedEvent(time_within(now, dt_s, 1.0), "cycle_finished", done))
        elif self.done_left_min > 0:
            self.done_left_min -= dt_s / 60
        heating = self._phase() == "wash" and self.phase_elapsed_min < HEATING_MIN
        self.drum_c = relax(self.drum_c, WASH_TEMP_C if heating else ROOM_C, dt_s, 600)
        return events

    def _phase(self) -> str:
        if self.phase_index is None:
            return "done" if self.done_left_min > 0 else "idle"
        return "paused" if self.paused else PROGRAM[self.phase_index][0]

    def _remaining_min(self) -> float:
        if self.phase_index is None:
            return 0.0
        later = sum(p[1] for p in PROGRAM[self.phase_index + 1 :])
        return later + PROGRAM[self.phase_index][1] - self.phase_elapsed_min

    def raw_metrics(self) -> MetricValues:
        """A full snapshot of the machine."""
        phase = self._phase()
        flow, power = 0.0, 1.0
        if self.phase_index is not None and not self.paused:
            _, _, flow, power = PROGRAM[self.phase_index]
            if phase == "rinse" and self.phase_elapsed_min > 4:
                flow = 0.0
            if phase == "wash" and self.phase_elapsed_min < HEATING_MIN:
                power += HEATER_W
        leaking = "leak" in self.active_faults
        if leaking:
            flow += LEAK_FLOW_LPM
        noise = float(self.rng.normal(0, 0.2))
        return {
            "phase": phase,
            "remaining_min": self._remaining_min(),
            "water_flow_lpm": flow + noise if flow else 0.0,
            "drum_temp_c": self.drum_c,
            "leak_detected": leaking,
            "power_w": power * (1 + 0.02 * noise),
            "cycles_since_drum_clean": self.cycles,
            "door_locked": self.phase_index is not None,
        }

    def command(self, name: str, args: dict[str, Any], now: datetime) -> str | None:
        """Pause, resume, or clean the drum."""
        if name == "pause":
            if self.phase_index is None:
                return "no cycle is running"
            self.paused = True
        elif name == "resume":
            if not self.paused:
                return "not paused"
            self.paused = False
        elif name == "start_drum_clean":
            if self.phase_index is not None:
                return "a cycle is running"
            self.cycles = 0
        else:
            return super().command(name, args, now)
        return None

    def set_fault(self, kind: str, params: dict[str, Any], active: bool) -> None:
        """A leak is detected by the machine's sensor (and reported once as an event)."""
        super().set_fault(kind, params, active)
        if not active:
            self.leak_reported = False
