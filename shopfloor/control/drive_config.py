"""The ``drive:`` section of plant.yaml: vehicles that operators drive remotely (docs/drive.md).

Only pydantic here (the plant schema imports this module). The deadman's timeout and latency budget
are the vehicle's own settings (its firmware enforces them); the platform is told them so that the
console can show them and send heartbeats well inside the timeout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from shopfloor.sim.vehicle import LocoSpec

VehicleName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)]
TopicPart = Annotated[str, Field(pattern=r"^[^#+]+$", max_length=200)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VehicleDrive(Strict):
    """One remotely driven vehicle: where its commands go and what its firmware enforces."""

    name: VehicleName = Field(description="The vehicle's id in the URL /api/ws/drive/{name} and in its topics.")
    equipment: str = Field(description="Asset path of the vehicle's equipment (its tags).")
    group: TopicPart = Field(description="Sparkplug group of the vehicle's edge node.")
    node: TopicPart = Field(description="Sparkplug edge node id.")
    device: TopicPart = Field(description="Sparkplug device id (DCMD goes to group/node/device).")
    prefix: TopicPart = Field(default="shopfloor/vehicles", description="Link and camera topics: {prefix}/{name}/...")
    heartbeat_ms: int = Field(default=100, ge=10, le=2000, description="The console's heartbeat period.")
    timeout_ms: int = Field(default=600, ge=20, le=10_000, description="The vehicle's deadman timeout.")
    latency_budget_ms: int = Field(default=300, ge=5, le=10_000, description="The vehicle's round-trip budget.")
    max_speed: float = Field(gt=0, le=50, description="Highest set-point, m/s (either direction).")
    jog_speed: float = Field(default=0.5, gt=0, le=50, description="Set-point of the jog buttons, m/s.")
    command: str | None = Field(
        default=None, description="The control command type (kind drive) each drive set-point is checked against."
    )

    @model_validator(mode="after")
    def _check(self) -> VehicleDrive:
        if self.heartbeat_ms * 2 > self.timeout_ms:
            raise ValueError(f"vehicle {self.name}: heartbeat_ms must be at most half of timeout_ms")
        if self.jog_speed > self.max_speed:
            raise ValueError(f"vehicle {self.name}: jog_speed is above max_speed")
        return self


class DriveConfig(Strict):
    """The ``drive:`` section: the vehicles; the drive service runs when there is at least one."""

    vehicles: list[VehicleDrive] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> DriveConfig:
        names = [v.name for v in self.vehicles]
        if len(set(names)) != len(names):
            raise ValueError("duplicate vehicle names in drive.vehicles")
        return self

    def vehicle(self, name: str) -> VehicleDrive | None:
        return next((v for v in self.vehicles if v.name == name), None)


def drive_section(existing: dict[str, Any] | None, vehicle: str, equipment: str, spec: LocoSpec, prefix: str,
                  group: str, command: str | None) -> dict[str, Any]:
    """The ``drive:`` section of a plant dict with one more vehicle (the sim's extension adds its loco)."""
    section: dict[str, Any] = dict(existing or {})
    vehicles = list(section.get("vehicles", []))
    vehicles.append({
        "name": vehicle, "equipment": equipment, "group": group, "node": f"{vehicle}-plc", "device": vehicle,
        "prefix": prefix, "heartbeat_ms": 100, "timeout_ms": round(spec.heartbeat_timeout_s * 1000),
        "latency_budget_ms": round(spec.latency_budget_s * 1000), "max_speed": spec.max_speed,
        "jog_speed": min(0.5, spec.max_speed), "command": command,
    })
    section["vehicles"] = vehicles
    return section


__all__ = ["DriveConfig", "VehicleDrive", "drive_section"]
