"""Errors raised by the simulator.

SimulatorError
├── ScenarioError        a scenario file that cannot be used (bad YAML, unknown device or fault)
├── ProvisioningError    a provisioning file that cannot be read or lacks a device
└── UnknownModelError    a product model the simulator has no behaviour for
"""


class SimulatorError(Exception):
    """Base of every simulator error."""


class ScenarioError(SimulatorError):
    """A scenario file that cannot be used."""


class ProvisioningError(SimulatorError):
    """A provisioning file that cannot be read or lacks a device."""


class UnknownModelError(SimulatorError):
    """A product model the simulator has no behaviour for."""
