"""The inspection record: every image as a file, its verdict and review in SQLite (SQLAlchemy), bad images aside.

Layout under the store directory::

    inspection.sqlite            the record (tables inspection and rejected_image)
    images/<day>/<name>.<ext>    each image as it arrived (PNG, JPEG, ...), and <name>.heat.npy, its heat map
    quarantine/<name>.bin        images and payloads that could not be used, byte for byte
    labelled/<label>/<name>.png  reviewed images, one folder per label: the data for retraining

Images are kept as files, not in the historian: the historian holds numbers (the defect-rate tags).
"""

from __future__ import annotations

import csv
import io
import re
import threading
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import RowMapping

DB_FILE = "inspection.sqlite"
PENDING, CONFIRMED, CORRECTED = "pending", "confirmed", "corrected"

metadata = MetaData()
inspection = Table(
    "inspection", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("serial", String(128), nullable=False, index=True),
    Column("station", String(256), nullable=False),
    Column("source", String(16), nullable=False),  # mqtt | http
    Column("ts_ns", BigInteger, nullable=False, index=True),  # when the camera took it
    Column("received_ns", BigInteger, nullable=False),
    Column("image_file", String(512), nullable=False),
    Column("heat_file", String(512)),
    Column("verdict", String(8), nullable=False),
    Column("defect_class", String(64), nullable=False),
    Column("confidence", Float, nullable=False),
    Column("score", Float, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("class_confidence", Float),
    Column("boxes", JSON, nullable=False),
    Column("inference_ms", Float, nullable=False),
    Column("model_version", Integer),
    Column("review", String(16)),  # None | pending | confirmed | corrected
    Column("label", String(64)),  # the reviewer's label
    Column("reviewed_by", String(128)),
    Column("reviewed_ns", BigInteger),
    Column("note", Text),
    Column("mes", String(16)),  # None (no MES running) | recorded | refused
    Column("mes_error", Text),
)
rejected_image = Table(
    "rejected_image", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_ns", BigInteger, nullable=False),
    Column("source", String(16), nullable=False),
    Column("origin", String(512), nullable=False),  # topic or uploaded file name
    Column("serial", String(128)),
    Column("reason", Text, nullable=False),
    Column("size", Integer, nullable=False),
    Column("file", String(512), nullable=False),
)

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(text: str, limit: int = 64) -> str:
    """A file-name fragment of any text (serials come from the wire)."""
    return _UNSAFE.sub("_", text)[:limit] or "_"


@dataclass(frozen=True)
class NewInspection:
    serial: str
    station: str
    source: str
    ts_ns: int
    received_ns: int
    image: bytes
    image_ext: str
    heat: NDArray[np.float64] | None
    verdict: dict[str, Any]
    review: str | None
    model_version: int | None


class InspectionStore:
    """Thread-safe: the service's worker writes, the API reads and records reviews."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(f"sqlite:///{root / DB_FILE}", connect_args={"check_same_thread": False})
        metadata.create_all(self.engine)
        self._lock = threading.Lock()

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ writing

    def add(self, new: NewInspection) -> int:
        day = datetime.fromtimestamp(new.received_ns / 1e9, UTC).strftime("%Y-%m-%d")
        stem = f"{new.received_ns}-{safe_name(new.serial)}"
        folder = self.root / "images" / day
        folder.mkdir(parents=True, exist_ok=True)
        image_rel = f"images/{day}/{stem}.{new.image_ext}"
        (self.root / image_rel).write_bytes(new.image)
        heat_rel = None
        if new.heat is not None:
            heat_rel = f"images/{day}/{stem}.heat.npy"
            np.save(self.root / heat_rel, new.heat.astype(np.float32), allow_pickle=False)
        v = new.verdict
        with self._lock, self.engine.begin() as conn:
            row = conn.execute(insert(inspection).values(
                serial=new.serial, station=new.station, source=new.source, ts_ns=new.ts_ns,
                received_ns=new.received_ns, image_file=image_rel, heat_file=heat_rel, verdict=v["verdict"],
                defect_class=v["defect_class"], confidence=v["confidence"], score=v["score"],
                threshold=v["threshold"], class_confidence=v.get("class_confidence"), boxes=v["boxes"],
                inference_ms=v["inference_ms"], model_version=new.model_version, review=new.review,
            ))
            key = row.inserted_primary_key
            assert key is not None
            return int(key[0])

    def set_mes(self, inspection_id: int, status: str, error: str | None) -> None:
        with self._lock, self.engine.begin() as conn:
            conn.execute(update(inspection).where(inspection.c.id == inspection_id).values(mes=status, mes_error=error))

    def reject(self, source: str, origin: str, serial: str | None, reason: str, payload: bytes,
               received_ns: int) -> int:
        """Keep a bad image (or payload) byte for byte in quarantine/ with the reason."""
        folder = self.root / "quarantine"
        folder.mkdir(parents=True, exist_ok=True)
        rel = f"quarantine/{received_ns}-{safe_name(serial or source)}.bin"
        (self.root / rel).write_bytes(payload)
        with self._lock, self.engine.begin() as conn:
            row = conn.execute(insert(rejected_image).values(
                received_ns=received_ns, source=source, origin=origin[:512], serial=serial, reason=reason[:2000],
                size=len(payload), file=rel,
            ))
            key = row.inserted_primary_key
            assert key is not None
            return int(key[0])

    def review(self, inspection_id: int, label: str, who: str, ts_ns: int, note: str | None,
               image: NDArray[np.uint8]) -> dict[str, Any]:
        """Record a person's label; the image goes to labelled/<label>/ for retraining. Returns the row."""
        row = self.get(inspection_id)
        if row is None:
            raise KeyError(inspection_id)
        status = CONFIRMED if label == row["defect_class"] else CORRECTED
        folder = self.root / "labelled" / safe_name(label)
        folder.mkdir(parents=True, exist_ok=True)
        stem = Path(row["image_file"]).stem
        for old in (self.root / "labelled").glob(f"*/{stem}.png"):  # a second review replaces the first label
            old.unlink()
        from shopfloor.apps.inspection.station import encode_png

        (folder / f"{stem}.png").write_bytes(encode_png(image))
        with self._lock, self.engine.begin() as conn:
            conn.execute(update(inspection).where(inspection.c.id == inspection_id).values(
                review=status, label=label, reviewed_by=who, reviewed_ns=ts_ns, note=note,
            ))
        updated = self.get(inspection_id)
        assert updated is not None
        return updated

    # ------------------------------------------------------------------ reading

    def get(self, inspection_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(inspection).where(inspection.c.id == inspection_id)).mappings().first()
        return _row(row) if row is not None else None

    def latest(self, limit: int = 20, *, verdict: str | None = None, station: str | None = None,
               before_id: int | None = None) -> list[dict[str, Any]]:
        q = select(inspection).order_by(inspection.c.id.desc()).limit(limit)
        if verdict is not None:
            q = q.where(inspection.c.verdict == verdict)
        if station is not None:
            q = q.where(inspection.c.station == station)
        if before_id is not None:
            q = q.where(inspection.c.id < before_id)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(q).mappings()]

    def by_serial(self, serial: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(inspection).where(inspection.c.serial == serial)
                                .order_by(inspection.c.id)).mappings()
            return [_row(r) for r in rows]

    def pending(self, limit: int = 50) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(inspection).where(inspection.c.review == PENDING)
                                .order_by(inspection.c.id).limit(limit)).mappings()
            return [_row(r) for r in rows]

    def pending_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(inspection)
                                    .where(inspection.c.review == PENDING)).scalar_one())

    def rejected(self, limit: int = 50) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(rejected_image).order_by(rejected_image.c.id.desc()).limit(limit)).mappings()
            return [dict(r) for r in rows]

    def rejected_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(rejected_image)).scalar_one())

    def defect_rate(self, start_ns: int, end_ns: int, bucket_ns: int) -> list[dict[str, Any]]:
        """Parts inspected and rejected per time bucket (by the camera's time), with the rate."""
        bucket = ((inspection.c.ts_ns - start_ns) / bucket_ns).cast(Integer)
        q = (select(bucket.label("b"), func.count().label("n"),
                    func.sum((inspection.c.verdict == "fail").cast(Integer)).label("fails"))
             .where(inspection.c.ts_ns >= start_ns, inspection.c.ts_ns < end_ns).group_by("b").order_by("b"))
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [{"ts_ms": (start_ns + int(b) * bucket_ns) // 1_000_000, "inspected": int(n), "rejected": int(f or 0),
                 "rate": (f or 0) / n if n else None} for b, n, f in rows]

    def totals(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            n, fails = conn.execute(select(func.count(), func.sum((inspection.c.verdict == "fail").cast(Integer)))
                                    .select_from(inspection)).one()
        return {"inspected": int(n), "rejected": int(fails or 0)}

    def labelled_zip(self) -> bytes:
        """The reviewed images and a labels.csv (file, label, verdict given, serial, reviewer, time): for retraining."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(inspection).where(inspection.c.review.in_([CONFIRMED, CORRECTED]))
                                .order_by(inspection.c.id)).mappings().all()
        buf = io.BytesIO()
        table = io.StringIO()
        out = csv.writer(table)
        out.writerow(["file", "label", "model_class", "model_verdict", "serial", "station", "reviewed_by",
                      "reviewed_utc"])
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for r in rows:
                rel = f"{safe_name(r['label'])}/{Path(r['image_file']).stem}.png"
                path = self.root / "labelled" / rel
                if not path.is_file():
                    continue
                z.write(path, rel)
                when = datetime.fromtimestamp((r["reviewed_ns"] or 0) / 1e9, UTC).isoformat(timespec="seconds")
                out.writerow([rel, r["label"], r["defect_class"], r["verdict"], r["serial"], r["station"],
                              r["reviewed_by"], when])
            z.writestr("labels.csv", table.getvalue())
        return buf.getvalue()

    def path(self, rel: str) -> Path:
        return self.root / rel

    def purge_files(self, before_ns: int) -> int:
        """Retention: delete the image and heat-map files of inspections received before ``before_ns`` and the
        quarantined payloads kept before it; the rows (verdicts, reasons) stay, with the file names emptied.
        Labelled images stay too: they are the data for retraining. Returns the files deleted."""
        removed = 0
        with self.engine.connect() as conn:
            rows = conn.execute(select(inspection.c.id, inspection.c.image_file, inspection.c.heat_file).where(
                inspection.c.received_ns < before_ns, inspection.c.image_file != "")).all()
            bad = conn.execute(select(rejected_image.c.id, rejected_image.c.file).where(
                rejected_image.c.received_ns < before_ns, rejected_image.c.file != "")).all()
        for _id, *files in [*rows, *bad]:
            for rel in files:
                if rel:
                    path = self.root / rel
                    if path.is_file():
                        path.unlink()
                        removed += 1
        with self._lock, self.engine.begin() as conn:
            if rows:
                conn.execute(update(inspection).where(inspection.c.id.in_([r[0] for r in rows]))
                             .values(image_file="", heat_file=None))
            if bad:
                conn.execute(update(rejected_image).where(rejected_image.c.id.in_([r[0] for r in bad])).values(file=""))
        return removed


def _row(row: RowMapping) -> dict[str, Any]:
    out = dict(row)
    out["ts_ms"] = out["ts_ns"] // 1_000_000
    return out
