"""The virtual factory: a deterministic, faster-than-real-time machining line for demos, tests and benchmarks.

``VirtualFactory`` simulates the machines and describes them (``plant_config()``);
``FactoryPublisher`` publishes them to an MQTT broker (Sparkplug B and plain JSON).
See docs/simulator.md.
"""

from shopfloor.sim.factory import Frame, VirtualFactory
from shopfloor.sim.machines import (
    DOWN,
    IDLE,
    RUNNING,
    SETUP,
    STATES,
    STOP_REASONS,
    CncParams,
    ConveyorParams,
    Device,
    GridParams,
    MeterParams,
    RobotParams,
    Signal,
)

__all__ = [
    "DOWN",
    "IDLE",
    "RUNNING",
    "SETUP",
    "STATES",
    "STOP_REASONS",
    "CncParams",
    "ConveyorParams",
    "Device",
    "Frame",
    "GridParams",
    "MeterParams",
    "RobotParams",
    "Signal",
    "VirtualFactory",
]
