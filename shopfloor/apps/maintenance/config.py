"""The ``maintenance:`` section of plant.yaml: which machines the maintenance service watches, and how.

Present: the platform runs the maintenance service (shopfloor.services.default_services). The virtual
factory's vibration extension writes this section for its CNCs (shopfloor/sim/vibration.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BearingConfig(_Strict):
    """Rolling-element bearing geometry (any one length unit), for the defect frequencies."""

    n_balls: int = Field(ge=1)
    ball_diameter: float = Field(gt=0)
    pitch_diameter: float = Field(gt=0)
    contact_angle_deg: float = Field(default=0.0, ge=0, lt=90)


class MachineConfig(_Strict):
    """One machine with a spindle bearing: where its tags are and what its vibration tag means."""

    equipment: str = Field(description="Asset path of the machine (its vibration and spindle_speed tags).")
    health: str = Field(description="Asset path of the equipment holding the derived tags (source: derived).")
    rated_rpm: float = Field(gt=0, description="Spindle speed at which the vibration levels below hold.")
    baseline_mm_s: float = Field(ge=0, description="Vibration RMS of a sound bearing at rated speed.")
    idle_mm_s: float = Field(default=0.0, ge=0, description="Background vibration with the spindle stopped.")
    failure_level_mm_s: float = Field(gt=0, description="Vibration over the baseline at which the bearing fails.")
    vibration_tag: str = "vibration"
    speed_tag: str = "spindle_speed"


class ModelChoice(_Strict):
    """A trained model (versioned artifact): a diagnosis model instead of the envelope analysis, or an RUL
    interval calibration instead of the bootstrap interval."""

    name: str = Field(description="Artifact name, e.g. bearing-sim or rul-interval-sim (shopfloor maintenance train).")
    version: int | None = Field(default=None, ge=1, description="None: the latest version.")
    root: str | None = Field(default=None, description="Artifact root; default <data_dir>/models.")


class MaintenanceConfig(_Strict):
    """Bearing diagnosis, health index, RUL and work orders for the listed machines."""

    topic: str = Field(default="shopfloor/vibration/#", description="MQTT topic filter of the vibration windows.")
    bearing: BearingConfig
    envelope_band_hz: tuple[float, float] = Field(description="Band of the structural resonance the strikes ring.")
    model: ModelChoice | None = Field(default=None, description="None: physics-based envelope diagnosis.")
    rul_interval: ModelChoice | None = Field(
        default=None, description="RUL interval calibration (shopfloor maintenance train rul-interval); None: the "
                                  "fit's bootstrap interval, which knows nothing of the duty cycle and is too narrow.")
    machines: list[MachineConfig] = Field(min_length=1)
    min_speed_frac: float = Field(default=0.5, gt=0, le=1.5, description="Indicator only from samples at speed.")
    bucket_s: float = Field(default=60.0, gt=0, description="Indicator points: median over this much sim time.")
    onset_fraction: float = Field(default=0.04, gt=0, lt=1,
                                  description="Indicator above this share of the failure level counts as a trend.")
    max_points: int = Field(default=720, ge=10, description="Indicator points the RUL fit looks back over.")
    horizon_h: float = Field(default=1000.0, gt=0, description="RUL beyond this is reported as this.")
    diagnosis_windows: int = Field(default=6, ge=1, description="Windows averaged into the fault class.")
    work_order_rul_h: float = Field(default=8.0, gt=0, description="Open a work order when the RUL low bound is under.")
    work_order_margin_h: float = Field(default=2.0, ge=0, description="Due this long before the predicted failure.")
    queue_size: int = Field(default=256, ge=1, description="Windows waiting for analysis; beyond, the oldest drop.")
    max_window: int = Field(default=1 << 20, ge=1024, description="Samples in one window at most.")

    @model_validator(mode="after")
    def _distinct(self) -> MaintenanceConfig:
        paths = [m.equipment for m in self.machines]
        if len(set(paths)) != len(paths):
            raise ValueError("maintenance.machines lists an equipment twice")
        if not 0 < self.envelope_band_hz[0] < self.envelope_band_hz[1]:
            raise ValueError("maintenance.envelope_band_hz must be [low, high] with 0 < low < high")
        return self


class WatchedTag(_Strict):
    """A live tag scored for anomalies, one sample at a time, into a derived score tag."""

    tag: str = Field(description="Asset path of the live tag.")
    score: str = Field(description="Asset path of the derived tag (source: {protocol: derived, app: anomaly}) "
                                   "that receives the score, 0 (usual) to 1 (most unusual).")
    detector: Literal["auto", "artime", "ours"] = Field(
        default="auto", description="artime needs the tag's engineering range; auto: artime when the tag has "
                                    "one, else ours (docs/maintenance.md).")
    length: int = Field(default=5000, ge=94, description="ARTime's stream length: sets its probation period "
                                                         "(15 %, at most 750 samples).")


class AnomalyConfig(_Strict):
    """The ``anomaly:`` section: live tags watched by the streaming anomaly detectors (service ``anomaly``)."""

    tags: list[WatchedTag] = Field(min_length=1)
    poll_s: float = Field(default=0.2, gt=0, le=10, description="How often new samples are scored.")

    @model_validator(mode="after")
    def _distinct(self) -> AnomalyConfig:
        scores = [w.score for w in self.tags]
        if len(set(scores)) != len(scores):
            raise ValueError("anomaly.tags writes one score tag twice")
        if {w.tag for w in self.tags} & set(scores):
            raise ValueError("anomaly.tags: a score tag cannot also be watched")
        return self


__all__ = ["AnomalyConfig", "BearingConfig", "MachineConfig", "MaintenanceConfig", "ModelChoice", "WatchedTag"]
