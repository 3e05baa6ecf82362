"""Reading inspection images and Pascal-VOC annotations, with clear errors for bad files.

Images are decoded with Pillow and converted to 8-bit grayscale (NEU stores grayscale in three identical
JPEG channels). A file that is not an image, is cut short, or has the wrong size raises `ImageError` naming
the file and the reason, so that a station can count it, keep it aside and go on.
"""

from __future__ import annotations

import hashlib
import io
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from shopfloor.core.errors import ShopfloorError

CLASSES: tuple[str, ...] = (
    "crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches",
)
NEU_SIZE = (200, 200)

GrayImage = NDArray[np.uint8]


class ImageError(ShopfloorError):
    """An image that cannot be used: not decodable, truncated, or not the expected size."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class AnnotationError(ShopfloorError):
    """A Pascal-VOC file that cannot be parsed or names an unknown class or an impossible box."""


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels, VOC convention (inclusive corners), with its class name."""

    label: str
    xmin: float
    ymin: float
    xmax: float
    ymax: float


@dataclass
class InspectionSet:
    """Images (N x H x W uint8), their image-level class index, their boxes and their file stems."""

    images: NDArray[np.uint8]
    labels: NDArray[np.int64]
    boxes: list[list[Box]]
    names: list[str]
    classes: tuple[str, ...] = CLASSES
    data_hash: str = ""
    skipped: list[str] = field(default_factory=list)


def data_root() -> Path:
    """Where the public data sets live: $SHOPFLOOR_DATA, else ../shared/data beside the repository."""
    env = os.environ.get("SHOPFLOOR_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def decode_image(data: bytes, source: str = "<bytes>", size: tuple[int, int] | None = NEU_SIZE) -> GrayImage:
    """Decode image bytes to grayscale uint8; raise ImageError if corrupt, truncated or of the wrong size.

    `size` is (width, height); None accepts any size.
    """
    if not data:
        raise ImageError(source, "empty file")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # forces the full decode: truncated data fails here, not later
            if size is not None and img.size != size:
                raise ImageError(source, f"wrong size {img.size[0]}x{img.size[1]}, expected {size[0]}x{size[1]}")
            gray = img.convert("L")
            return np.asarray(gray, dtype=np.uint8).copy()
    except UnidentifiedImageError as exc:
        raise ImageError(source, "not a readable image") from exc
    except OSError as exc:  # Pillow reports truncated or damaged streams as OSError
        raise ImageError(source, f"truncated or damaged image ({exc})") from exc


def read_image(path: Path, size: tuple[int, int] | None = NEU_SIZE) -> GrayImage:
    """Read one image file as grayscale uint8 (see `decode_image`)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(str(path), f"cannot read ({exc.strerror})") from exc
    return decode_image(data, str(path), size)


def _number(node: ET.Element, tag: str, source: str) -> float:
    child = node.find(tag)
    if child is None or child.text is None:
        raise AnnotationError(f"{source}: <bndbox> without <{tag}>")
    try:
        return float(child.text)
    except ValueError as exc:
        raise AnnotationError(f"{source}: <{tag}> is not a number: {child.text!r}") from exc


def parse_voc(text: str | bytes, source: str = "<xml>", classes: Sequence[str] = CLASSES) -> list[Box]:
    """Parse the objects of a Pascal-VOC annotation; every box must name a known class and have positive size."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise AnnotationError(f"{source}: not valid XML ({exc})") from exc
    boxes: list[Box] = []
    for obj in root.findall("object"):
        name_node = obj.find("name")
        name = (name_node.text or "").strip() if name_node is not None else ""
        if name not in classes:
            raise AnnotationError(f"{source}: unknown class {name!r}")
        bnd = obj.find("bndbox")
        if bnd is None:
            raise AnnotationError(f"{source}: object {name!r} without <bndbox>")
        x0, y0, x1, y1 = (_number(bnd, t, source) for t in ("xmin", "ymin", "xmax", "ymax"))
        if x1 <= x0 or y1 <= y0:
            raise AnnotationError(f"{source}: empty box ({x0}, {y0}, {x1}, {y1})")
        boxes.append(Box(name, x0, y0, x1, y1))
    return boxes


def files_hash(paths: Iterable[Path]) -> str:
    """sha256 over the names and bytes of the files, in sorted order: the data version stored with a model."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def load_neu(root: Path | None = None, strict: bool = False) -> InspectionSet:
    """Load NEU-DET (`images/<class>_<n>.jpg` + `annotations/<class>_<n>.xml`).

    The image label is the file-name prefix; box labels are the annotation's names (they can differ, see
    PROVENANCE.md). Bad files are skipped and listed in `skipped` unless `strict`, which raises instead.
    """
    base = (root or data_root() / "neu-det")
    image_dir, ann_dir = base / "images", base / "annotations"
    if not image_dir.is_dir():
        raise FileNotFoundError(f"no NEU-DET images at {image_dir}")
    paths = sorted(image_dir.glob("*.jpg"), key=lambda p: _sort_key(p.stem))
    images: list[GrayImage] = []
    labels: list[int] = []
    boxes: list[list[Box]] = []
    names: list[str] = []
    skipped: list[str] = []
    used: list[Path] = []
    for path in paths:
        prefix = path.stem.rsplit("_", 1)[0]
        xml_path = ann_dir / f"{path.stem}.xml"
        try:
            if prefix not in CLASSES:
                raise AnnotationError(f"{path}: file name does not start with a known class")
            img = read_image(path)
            if not xml_path.is_file():
                raise AnnotationError(f"{xml_path}: missing annotation")
            img_boxes = parse_voc(xml_path.read_bytes(), str(xml_path))
        except (ImageError, AnnotationError) as exc:
            if strict:
                raise
            skipped.append(str(exc))
            continue
        images.append(img)
        labels.append(CLASSES.index(prefix))
        boxes.append(img_boxes)
        names.append(path.stem)
        used.extend((path, xml_path))
    if not images:
        raise FileNotFoundError(f"no usable NEU-DET images under {base}")
    return InspectionSet(np.stack(images), np.asarray(labels, dtype=np.int64), boxes, names,
                         data_hash=files_hash(used), skipped=skipped)


def _sort_key(stem: str) -> tuple[str, int]:
    prefix, _, number = stem.rpartition("_")
    return (prefix, int(number) if number.isdigit() else -1)
