"""The ``inspection:`` section of plant.yaml: switches the inspection service on and says how it works."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class InspectionConfig(BaseModel):
    """Where images come from, which models judge them, and what counts as uncertain."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    station: str | None = Field(
        default=None,
        description="Asset path of the camera equipment whose derived tags (inspected, rejected, defect_rate, "
        "anomaly_score, review_pending) the service writes; also the equipment of the MES inspection events.",
    )
    topic: str = Field(default="shopfloor/inspection/+/image", description="MQTT topic filter of the images.")
    image_size: tuple[int, int] = Field(default=(200, 200), description="Expected width and height in pixels.")
    max_image_bytes: int = Field(default=4_000_000, gt=0, description="Larger images are refused.")
    models_dir: str | None = Field(default=None, description="Versioned model artifacts; default <data_dir>/models.")
    anomaly_model: str = Field(default="inspection-anomaly", description="Artifact name of the station model.")
    anomaly_version: int | None = Field(
        default=None, ge=1, description="Load this version; default the latest, trained on synthetic images if none.")
    train_synthetic: bool = Field(
        default=True, description="With no saved model, train one on synthetic defect-free surfaces at start.")
    train_images: int = Field(default=40, ge=5, description="Synthetic defect-free images the detector learns from.")
    calibration_images: int = Field(default=20, ge=5, description="Held-out defect-free images for the threshold.")
    classifier: str | None = Field(
        default="neu-classifier",
        description="Artifact name of a defect classifier that names the class of rejected parts, used if saved.")
    classifier_version: int | None = Field(default=None, ge=1)
    review_below: float = Field(
        default=0.8, ge=0.5, le=1.0, description="Verdicts less confident than this go to the review queue.")
    rate_window: int = Field(default=50, ge=1, description="Parts the defect_rate tag is taken over.")
    store_dir: str | None = Field(default=None, description="Images and the record; default <data_dir>/inspection.")
    retention_days: float | None = Field(
        default=None, gt=0, description="Delete image files (and quarantined payloads) older than this, checked "
        "hourly; verdicts, reviews and labelled images stay. None: keep everything.")
    max_queue: int = Field(default=64, ge=1, description="Images waiting for the model; beyond, the oldest waits in "
                           "the broker (the MQTT thread blocks).")
    mes_retry_s: float = Field(default=10.0, ge=0, description="How long to retry an MES record of an unknown "
                               "serial (the MES may record the part a moment after the camera saw it).")
