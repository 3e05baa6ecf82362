"""HTTP API of the inspection station: upload, latest inspections, images and overlays, verdicts by serial,
the review queue, the defect rate, bad images and the labelled data for retraining.

Reads need a viewer; uploading an image and reviewing a verdict need an operator. An upload is
``multipart/form-data`` with the image in a ``file`` field and the part's ``serial`` (optional ``station``,
``ts_ms``), or the raw image as the body (``Content-Type: image/png`` or ``image/jpeg``) with ``?serial=``.
"""

from __future__ import annotations

import math
from email import policy
from email.parser import BytesParser
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from shopfloor.api.deps import PlatformDep, running_service
from shopfloor.api.timeparse import parse_time_ns
from shopfloor.apps.inspection.dataset import ImageError
from shopfloor.apps.inspection.service import InspectionError, InspectionService
from shopfloor.apps.inspection.station import decode, overlay_png
from shopfloor.auth.deps import Operator, require_role
from shopfloor.auth.store import Role
from shopfloor.core.errors import NotReady

router = APIRouter(prefix="/api/inspection", tags=["inspection"], dependencies=[Depends(require_role(Role.VIEWER))])
_MEDIA = {"png": "image/png", "jpg": "image/jpeg", "bmp": "image/bmp", "tif": "image/tiff"}
_HIDDEN = ("image_file", "heat_file")


def get_service(platform: PlatformDep) -> InspectionService:
    service = running_service(platform, "inspection", InspectionService, "inspection")
    if service._store is None:
        raise HTTPException(503, "the inspection service is not running")
    return service


ServiceDep = Annotated[InspectionService, Depends(get_service)]


def _public(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k not in _HIDDEN}
    out["image_url"] = f"/api/inspection/inspections/{row['id']}/image"
    out["overlay_url"] = f"/api/inspection/inspections/{row['id']}/overlay"
    return out


def _row(service: InspectionService, inspection_id: int) -> dict[str, Any]:
    row = service.store.get(inspection_id)
    if row is None:
        raise HTTPException(404, f"no inspection {inspection_id}")
    return row


def _image_row(service: InspectionService, inspection_id: int) -> dict[str, Any]:
    row = _row(service, inspection_id)
    if not row["image_file"]:
        raise HTTPException(410, f"the image of inspection {inspection_id} was removed by retention (the verdict "
                                 "is kept)")
    return row


# ---------------------------------------------------------------------------------------------------- upload

async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the upload of {declared} bytes is over the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the upload is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _form(content_type: str, body: bytes) -> dict[str, tuple[bytes, str | None]]:
    """multipart/form-data fields: name -> (bytes, file name), parsed by the standard library's MIME parser."""
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise HTTPException(422, "the multipart body could not be parsed")
    fields: dict[str, tuple[bytes, str | None]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        fields[name] = (payload if isinstance(payload, bytes) else b"", part.get_filename())
    return fields


@router.post("/images", status_code=201)
async def upload_image(
    request: Request, service: ServiceDep, who: Operator,
    serial: Annotated[str | None, Query(max_length=128, description="The part's serial (raw-body uploads).")] = None,
    station: Annotated[str | None, Query(max_length=128)] = None,
    ts_ms: Annotated[int | None, Query(description="When the image was taken (default: now).")] = None,
) -> dict[str, Any]:
    """Inspect one image of a part: the verdict is stored against its serial and returned (201).

    422 with the reason for an unusable image (counted and kept in quarantine), 503 while the model loads.
    """
    body = await _read_body(request, service.config.max_image_bytes + 65536)
    content_type = request.headers.get("content-type", "")
    filename = "upload"
    if content_type.startswith("multipart/form-data"):
        fields = _form(content_type, body)
        if "file" not in fields:
            raise HTTPException(422, "the form needs the image in a 'file' field")
        data, name = fields["file"]
        filename = name or filename
        serial = fields["serial"][0].decode(errors="replace").strip() if "serial" in fields else serial
        station = fields["station"][0].decode(errors="replace").strip() if "station" in fields else station
        if "ts_ms" in fields:
            try:
                ts_ms = int(fields["ts_ms"][0])
            except ValueError:
                raise HTTPException(422, "ts_ms must be an integer number of milliseconds") from None
    else:
        data = body
    if not serial or len(serial) > 128:
        raise HTTPException(422, "the part's serial (1-128 characters) is required")
    try:
        row = await run_in_threadpool(
            service.inspect_image, data, serial, station=station or "upload",
            ts_ns=ts_ms * 1_000_000 if ts_ms is not None else None, source="http",
            origin=f"upload {filename} by {who.name}",
        )
    except ImageError as exc:
        raise HTTPException(422, str(exc)) from None
    except NotReady as exc:
        raise HTTPException(503, str(exc), {"Retry-After": "5"}) from None
    return _public(row)


# ---------------------------------------------------------------------------------------------------- reading

@router.get("/status")
def status(service: ServiceDep) -> dict[str, Any]:
    """The station: model state and version, calibration, counters, totals, review queue, bad images."""
    model = service.model
    return {
        **service.health(),
        "totals": service.store.totals(),
        "bad_images_kept": service.store.rejected_count(),
        "threshold": model.threshold if model is not None else None,
        "calibration": model.calibration if model is not None else None,
        "classifier": type(model.classifier).__name__ if model is not None and model.classifier is not None else None,
        "review_below": service.config.review_below,
        "station": service.config.station,
    }


@router.get("/inspections")
def latest(
    service: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
    verdict: Annotated[str | None, Query(pattern="^(pass|fail)$")] = None,
    before: Annotated[int | None, Query(description="Only inspections with a smaller id (paging).")] = None,
) -> list[dict[str, Any]]:
    """The latest inspections, newest first."""
    return [_public(r) for r in service.store.latest(limit, verdict=verdict, before_id=before)]


@router.get("/inspections/{inspection_id}")
def one(inspection_id: int, service: ServiceDep) -> dict[str, Any]:
    return _public(_row(service, inspection_id))


@router.get("/inspections/{inspection_id}/image")
def image(inspection_id: int, service: ServiceDep) -> Response:
    """The image as it arrived (410 once removed by retention)."""
    row = _image_row(service, inspection_id)
    path = service.store.path(row["image_file"])
    return Response(path.read_bytes(), media_type=_MEDIA.get(path.suffix.lstrip("."), "application/octet-stream"))


@router.get("/inspections/{inspection_id}/overlay")
def overlay(inspection_id: int, service: ServiceDep) -> Response:
    """The image with the heat map (red, where above the normal cells' 99.5th percentile) and the boxes, PNG."""
    row = _image_row(service, inspection_id)
    data = service.store.path(row["image_file"]).read_bytes()
    pixels = decode(data, row["image_file"], service.config.image_size, 1 << 30)
    heat = np.load(service.store.path(row["heat_file"])) if row["heat_file"] else None
    cell_threshold = service.model.cell_threshold if service.model is not None else None
    png = overlay_png(pixels, None if heat is None else heat.astype(np.float64), cell_threshold, row["boxes"])
    return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})


@router.get("/serials/{serial}")
def by_serial(serial: str, service: ServiceDep) -> dict[str, Any]:
    """Every inspection of a part, oldest first, and the verdict that holds (a review's label wins)."""
    rows = service.store.by_serial(serial)
    if not rows:
        raise HTTPException(404, f"no inspection of serial {serial!r}")
    last = rows[-1]
    reviewed = last["label"] is not None
    final = ("fail" if last["label"] != "ok" else "pass") if reviewed else last["verdict"]
    return {"serial": serial, "verdict": final, "reviewed": reviewed,
            "defect_class": last["label"] if reviewed else last["defect_class"],
            "inspections": [_public(r) for r in rows]}


@router.get("/defect-rate")
def defect_rate(
    service: ServiceDep,
    start: Annotated[str, Query(description="ISO-8601, epoch ms, 'now' or relative like -8h.")] = "-8h",
    end: Annotated[str, Query()] = "now",
    bucket_s: Annotated[float, Query(gt=0, description="Bucket width in seconds.")] = 600.0,
) -> dict[str, Any]:
    """Parts inspected and rejected per bucket, and the defect rate (rejected / inspected)."""
    try:
        now = parse_time_ns("now")
        a, b = parse_time_ns(start, now), parse_time_ns(end, now)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    if b <= a:
        raise HTTPException(422, "end must be after start")
    bucket_ns = int(bucket_s * 1e9)
    if not math.isfinite(bucket_s) or (b - a) / bucket_ns > 10_000:
        raise HTTPException(422, "at most 10,000 buckets: choose a wider bucket")
    return {"start_ms": a // 1_000_000, "end_ms": b // 1_000_000, "bucket_s": bucket_s,
            "buckets": service.store.defect_rate(a, b, bucket_ns)}


@router.get("/rejected")
def rejected(service: ServiceDep, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
    """Images and payloads that could not be used, newest first, with the reason (kept under quarantine/)."""
    return {"count": service.store.rejected_count(), "items": service.store.rejected(limit)}


# ---------------------------------------------------------------------------------------------------- review

class ReviewIn(BaseModel):
    label: str = Field(min_length=1, max_length=64, description="'ok', or the defect ('anomaly' or a class name).")
    note: str | None = Field(default=None, max_length=2000)


@router.get("/review")
def review_queue(service: ServiceDep, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
    """Verdicts less confident than ``review_below``, oldest first, waiting for a person."""
    return {"pending": service.store.pending_count(), "items": [_public(r) for r in service.store.pending(limit)]}


@router.post("/review/{inspection_id}")
def review(inspection_id: int, body: ReviewIn, service: ServiceDep, who: Operator) -> dict[str, Any]:
    """Confirm (the label is the model's class) or correct a verdict; the image is kept with the label."""
    try:
        return _public(service.review(inspection_id, body.label, who.name, body.note))
    except InspectionError as exc:
        raise HTTPException(404 if "no inspection" in str(exc) else 422, str(exc)) from None


@router.get("/labelled.zip")
def labelled(service: ServiceDep) -> Response:
    """The reviewed images, one folder per label, and labels.csv: data for retraining."""
    return Response(service.store.labelled_zip(), media_type="application/zip",
                    headers={"Content-Disposition": 'attachment; filename="inspection-labelled.zip"'})
