"""Reading images and VOC annotations: good files load, bad ones raise clear errors and are skipped."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shopfloor.apps.inspection.dataset import (
    AnnotationError,
    ImageError,
    decode_image,
    load_neu,
    parse_voc,
    read_image,
)

VOC = """<annotation><filename>{name}.jpg</filename><size><width>200</width><height>200</height></size>
<object><name>{label}</name><bndbox><xmin>10</xmin><ymin>20</ymin><xmax>60</xmax><ymax>90</ymax></bndbox></object>
</annotation>"""


def jpeg_bytes(size: tuple[int, int] = (200, 200), seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    gray = rng.integers(0, 255, (size[1], size[0]), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(gray).convert("RGB").save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def test_decode_three_channel_jpeg_to_gray() -> None:
    img = decode_image(jpeg_bytes())
    assert img.shape == (200, 200) and img.dtype == np.uint8


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "empty file"),
    (b"this is not an image at all", "not a readable image"),
    (jpeg_bytes()[:600], "truncated"),
    (jpeg_bytes((100, 200)), "wrong size 100x200"),
])
def test_bad_images_raise_clear_errors(data: bytes, reason: str) -> None:
    with pytest.raises(ImageError, match=reason) as info:
        decode_image(data, "part-17.jpg")
    assert info.value.source == "part-17.jpg"


def test_any_size_when_asked() -> None:
    assert decode_image(jpeg_bytes((64, 32)), size=None).shape == (32, 64)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="cannot read"):
        read_image(tmp_path / "nope.jpg")


def test_parse_voc_and_its_errors() -> None:
    boxes = parse_voc(VOC.format(name="x", label="patches"))
    assert [(b.label, b.xmin, b.ymin, b.xmax, b.ymax) for b in boxes] == [("patches", 10, 20, 60, 90)]
    with pytest.raises(AnnotationError, match="unknown class 'rust'"):
        parse_voc(VOC.format(name="x", label="rust"))
    with pytest.raises(AnnotationError, match="not valid XML"):
        parse_voc("<annotation><object>")
    with pytest.raises(AnnotationError, match="empty box"):
        parse_voc(VOC.format(name="x", label="patches").replace("<xmax>60", "<xmax>5"))
    with pytest.raises(AnnotationError, match="not a number"):
        parse_voc(VOC.format(name="x", label="patches").replace("<xmin>10", "<xmin>ten"))


def test_load_neu_skips_and_lists_bad_files(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "annotations").mkdir()
    for k, cls in enumerate(("crazing", "scratches")):
        stem = f"{cls}_{k + 1}"
        (tmp_path / "images" / f"{stem}.jpg").write_bytes(jpeg_bytes(seed=k))
        (tmp_path / "annotations" / f"{stem}.xml").write_text(VOC.format(name=stem, label="inclusion"))
    (tmp_path / "images" / "patches_3.jpg").write_bytes(jpeg_bytes()[:500])  # truncated
    (tmp_path / "annotations" / "patches_3.xml").write_text(VOC.format(name="patches_3", label="patches"))
    (tmp_path / "images" / "inclusion_4.jpg").write_bytes(jpeg_bytes())  # no annotation

    data = load_neu(tmp_path)
    assert data.names == ["crazing_1", "scratches_2"]
    assert data.labels.tolist() == [0, 5]          # image label from the file name
    assert data.boxes[1][0].label == "inclusion"   # box label from the annotation
    assert len(data.skipped) == 2 and len(data.data_hash) == 64
    with pytest.raises(AnnotationError, match="missing annotation"):
        load_neu(tmp_path, strict=True)
