"""The inspection station's image pipeline: image bytes in, a verdict with boxes and a heat map out.

Pure functions and one model object, no I/O beyond bytes, so that the service (MQTT, HTTP, storage, MES)
and the tests share exactly the same path:

- `decode` checks an image before using it: size limit, decodable, complete, the expected width and height
  (checked from the header, before the pixels are decoded), so a corrupt, truncated or wrong-size image
  raises `ImageError` with the reason.
- `StationModel` is the line's anomaly detector (anomaly.py, trained on defect-free images only) with its
  decision threshold calibrated on held-out defect-free images, plus, when a trained one is given, the NEU
  defect classifier that names the class of a rejected part. `StationModel.inspect` returns a `Verdict`.
- `overlay_png` draws the heat map and boxes over the image for the dashboard.
- `encode_message` / `decode_message`: the camera's MQTT payload, a one-line JSON header, a newline, then the
  encoded image (PNG or JPEG). Plain MQTT 3.1.1, so any broker (the demo's embedded one too) carries it.
"""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, UnidentifiedImageError
from scipy import ndimage

from shopfloor.apps.inspection.anomaly import AnomalyConfig, AnomalyDetector
from shopfloor.apps.inspection.dataset import ImageError
from shopfloor.apps.inspection.features import image_cells
from shopfloor.apps.inspection.synthetic import make_part

GrayImage = NDArray[np.uint8]
FloatArray = NDArray[np.float64]
CELL = 8
MAX_HEADER_BYTES = 4096
PASS, FAIL = "pass", "fail"
OK_CLASS, ANOMALY_CLASS = "ok", "anomaly"


class MessageError(ValueError):
    """An MQTT image message whose framing or header is unusable (the image itself is not looked at)."""


# --------------------------------------------------------------------------------------------------- image bytes

def decode(data: bytes, source: str, size: tuple[int, int], max_bytes: int) -> GrayImage:
    """Grayscale uint8 pixels of an encoded image; ImageError (with the reason) for anything unusable.

    ``size`` is (width, height). The size is checked from the header before the pixels are decoded, so a
    huge or wrong-size image costs nothing; ``load()`` then forces the full decode, so truncation fails here.
    """
    if not data:
        raise ImageError(source, "empty image")
    if len(data) > max_bytes:
        raise ImageError(source, f"image of {len(data)} bytes is over the limit of {max_bytes}")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.size != size:
                raise ImageError(source, f"wrong size {img.size[0]}x{img.size[1]}, expected {size[0]}x{size[1]}")
            img.load()
            return np.asarray(img.convert("L"), dtype=np.uint8).copy()
    except ImageError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageError(source, "not a readable image (PNG, JPEG, BMP or TIFF expected)") from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(source, f"image refused as a decompression bomb ({exc})") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # Pillow's ways of saying damaged or cut short
        raise ImageError(source, f"truncated or damaged image ({exc})") from exc


def encode_png(image: GrayImage | NDArray[np.uint8]) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=False, compress_level=3)
    return buf.getvalue()


def encode_message(header: dict[str, Any], image: bytes) -> bytes:
    """The camera's MQTT payload: compact JSON header (no newline inside), b'\\n', the encoded image."""
    return json.dumps(header, separators=(",", ":")).encode() + b"\n" + image


def decode_message(payload: bytes) -> tuple[dict[str, Any], bytes]:
    """Split a camera payload; MessageError if there is no header line or it is not a JSON object with a serial."""
    cut = payload.find(b"\n", 0, MAX_HEADER_BYTES)
    if cut < 0 or not payload.startswith(b"{"):
        raise MessageError(f"no JSON header line in the first {MAX_HEADER_BYTES} bytes (payload of {len(payload)})")
    try:
        header = json.loads(payload[:cut])
    except ValueError as exc:
        raise MessageError(f"header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise MessageError("header must be a JSON object")
    serial = header.get("serial")
    if not isinstance(serial, str) or not 0 < len(serial) <= 128:
        raise MessageError("header needs 'serial', a string of 1-128 characters")
    ts_ms = header.get("ts_ms")
    bad_ts = not isinstance(ts_ms, int | float) or isinstance(ts_ms, bool) or not math.isfinite(ts_ms)
    if ts_ms is not None and bad_ts:
        raise MessageError("'ts_ms' must be a number of milliseconds")
    return header, payload[cut + 1:]


# --------------------------------------------------------------------------------------------------- the model

@dataclass(frozen=True)
class DefectBox:
    """A region of the heat map above the cell threshold, in pixels (x0, y0 inclusive; x1, y1 exclusive)."""

    x0: int
    y0: int
    x1: int
    y1: int
    score: float

    def as_dict(self) -> dict[str, float | int]:
        return {"x0": self.x0, "y0": self.y0, "x1": self.x1, "y1": self.y1, "score": round(self.score, 3)}


@dataclass(frozen=True)
class Verdict:
    """What the station decided about one image."""

    verdict: str  # pass | fail
    defect_class: str  # ok, anomaly, or the classifier's class name of a rejected part
    confidence: float  # 0.5..1: how sure the verdict is (probability of the verdict given the score)
    score: float  # anomaly score (higher: less like the defect-free images)
    threshold: float
    boxes: tuple[DefectBox, ...]
    heat: FloatArray  # cell heat map (H/8 x W/8), in units of the image score
    class_confidence: float | None = None
    inference_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict, "defect_class": self.defect_class, "confidence": round(self.confidence, 4),
            "score": round(self.score, 4), "threshold": round(self.threshold, 4),
            "boxes": [b.as_dict() for b in self.boxes], "class_confidence": self.class_confidence,
            "inference_ms": round(self.inference_ms, 1),
        }


Classify = Callable[[GrayImage], tuple[str, float]]


@dataclass
class StationModel:
    """Anomaly detector plus its calibration; optionally a classifier for the class of rejected parts.

    Calibration (on defect-free images the detector did not see): the image threshold is the mean plus
    ``k_sigma`` standard deviations of their scores, and the score scale of the confidence is that standard
    deviation; the cell threshold for boxes is the 99.5th percentile of their cell heats.
    """

    detector: AnomalyDetector
    image_size: tuple[int, int]
    threshold: float
    scale: float
    cell_threshold: float
    calibration: dict[str, float] = field(default_factory=dict)
    classifier: Any = None  # a classify.DefectClassifier (pickled artifact), used on rejected parts only

    @classmethod
    def fit(cls, good: list[GrayImage], held_out: list[GrayImage], k_sigma: float = 3.0,
            config: AnomalyConfig | None = None) -> StationModel:
        """Train on ``good`` defect-free images, calibrate on ``held_out`` defect-free ones."""
        if len(good) < 5 or len(held_out) < 5:
            raise ValueError("need at least 5 training and 5 calibration images, all defect-free")
        h, w = good[0].shape
        detector = AnomalyDetector.train(np.stack([image_cells(g, CELL) for g in good]), config)
        heats = [detector.heat_map(image_cells(g, CELL)) for g in held_out]
        scores = np.array([detector.image_score(hm) for hm in heats])
        mu, sd = float(scores.mean()), float(scores.std(ddof=1)) + 1e-6
        cell_thr = float(np.percentile(np.concatenate([hm.ravel() for hm in heats]), 99.5))
        return cls(detector, (w, h), mu + k_sigma * sd, sd, cell_thr,
                   {"mean": mu, "std": sd, "max": float(scores.max()), "k_sigma": k_sigma, "n_train": len(good),
                    "n_calibration": len(held_out)})

    def inspect(self, image: GrayImage) -> Verdict:
        start = time.perf_counter()
        heat = self.detector.heat_map(image_cells(image, CELL))
        score = self.detector.image_score(heat)
        z = (score - self.threshold) / self.scale
        p_defect = 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))
        failed = p_defect >= 0.5
        boxes = defect_boxes(heat, self.cell_threshold) if failed else ()
        defect_class, class_conf = (ANOMALY_CLASS, None) if failed else (OK_CLASS, None)
        if failed and self.classifier is not None:
            name, class_conf = self.classifier.predict_image(image)[:2]
            defect_class = str(name)
        return Verdict(
            verdict=FAIL if failed else PASS, defect_class=defect_class, confidence=max(p_defect, 1.0 - p_defect),
            score=score, threshold=self.threshold, boxes=boxes, heat=heat,
            class_confidence=None if class_conf is None else float(class_conf),
            inference_ms=1000.0 * (time.perf_counter() - start),
        )


def defect_boxes(heat: FloatArray, cell_threshold: float, cell: int = CELL, limit: int = 10) -> tuple[DefectBox, ...]:
    """Bounding boxes (pixels) of the connected regions of hot cells, hottest first."""
    labels, _count = ndimage.label(heat > cell_threshold)
    boxes: list[DefectBox] = []
    for k, region in enumerate(ndimage.find_objects(labels), start=1):
        if region is None:
            continue
        ys, xs = region
        peak = float(heat[region][labels[region] == k].max())
        boxes.append(DefectBox(xs.start * cell, ys.start * cell, xs.stop * cell, ys.stop * cell, peak))
    boxes.sort(key=lambda b: -b.score)
    return tuple(boxes[:limit])


def train_synthetic(seed: int = 0, n_train: int = 40, n_calibration: int = 20, size: int = 200) -> StationModel:
    """The demo's model: trained and calibrated on defect-free synthetic surfaces (synthetic.py) in seconds."""
    rng = np.random.default_rng(seed)
    parts = [make_part(rng, "", size).image for _ in range(n_train + n_calibration)]
    return StationModel.fit(parts[:n_train], parts[n_train:])


# --------------------------------------------------------------------------------------------------- overlay

def overlay_png(image: GrayImage, heat: FloatArray | None, cell_threshold: float | None,
                boxes: list[dict[str, Any]], scale: int = 2) -> bytes:
    """The image in grey with the heat map in red (above the cell threshold) and the boxes, as PNG."""
    gray = image.astype(np.float64)
    rgb = np.stack([gray, gray, gray], axis=-1)
    if heat is not None and cell_threshold is not None and heat.size:
        h, w = image.shape
        up = np.kron(heat, np.ones((h // heat.shape[0], w // heat.shape[1])))
        up = np.pad(up, ((0, h - up.shape[0]), (0, w - up.shape[1])), mode="edge")
        alpha = np.clip((up - cell_threshold) / (cell_threshold + 1e-9), 0.0, 1.0)[..., None] * 0.6
        rgb = rgb * (1 - alpha) + np.array([255.0, 30.0, 30.0]) * alpha
    out = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    if scale > 1:
        out = out.resize((out.width * scale, out.height * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(out)
    for b in boxes:
        draw.rectangle([b["x0"] * scale, b["y0"] * scale, b["x1"] * scale - 1, b["y1"] * scale - 1],
                       outline=(255, 210, 0), width=2)
    buf = io.BytesIO()
    out.save(buf, format="PNG")
    return buf.getvalue()


__all__ = [
    "ANOMALY_CLASS", "FAIL", "OK_CLASS", "PASS", "DefectBox", "MessageError", "StationModel", "Verdict",
    "decode", "decode_message", "defect_boxes", "encode_message", "encode_png", "overlay_png", "train_synthetic",
]
