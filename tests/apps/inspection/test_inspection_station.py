"""The station's image pipeline on generated images: decoding with clear errors, the camera's message
framing, verdicts with boxes where the injected defect is, the overlay, and the camera's deterministic parts."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shopfloor.apps.inspection.dataset import ImageError
from shopfloor.apps.inspection.station import (
    FAIL,
    PASS,
    MessageError,
    StationModel,
    decode,
    decode_message,
    encode_message,
    encode_png,
    overlay_png,
    train_synthetic,
)
from shopfloor.apps.inspection.synthetic import make_part
from shopfloor.sim.camera import InspectionCamera, picture

SIZE = (200, 200)


@pytest.fixture(scope="module")
def model() -> StationModel:
    return train_synthetic(seed=0, n_train=10, n_calibration=8)


def png(width: int = 200, height: int = 200) -> bytes:
    return encode_png(np.full((height, width), 128, np.uint8))


def test_decode_gives_the_grey_pixels_of_png_and_jpeg() -> None:
    image = make_part(np.random.default_rng(1)).image
    assert np.array_equal(decode(encode_png(image), "t", SIZE, 10**6), image)
    buf = io.BytesIO()
    Image.fromarray(image).convert("RGB").save(buf, format="JPEG", quality=95)
    pixels = decode(buf.getvalue(), "t", SIZE, 10**6)
    assert pixels.shape == (200, 200) and np.abs(pixels.astype(int) - image).mean() < 4


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "empty image"),
    (b"this is not an image at all", "not a readable image"),
    (png()[:300], "truncated or damaged"),
    (png(100, 200), "wrong size 100x200, expected 200x200"),
    (png() + b"\0" * 2000, "over the limit"),
])
def test_unusable_images_raise_with_the_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ImageError, match=reason) as info:
        decode(data, "cam image of SN-1", SIZE, max_bytes=len(png()) + 1000)
    assert info.value.source == "cam image of SN-1"


def test_message_framing_round_trip_and_errors() -> None:
    header = {"serial": "SN-7", "ts_ms": 1_700_000_000_000, "station": "camera1", "format": "png"}
    body = png()
    assert decode_message(encode_message(header, body)) == (header, body)
    with pytest.raises(MessageError, match="no JSON header"):
        decode_message(body)
    with pytest.raises(MessageError, match="not JSON"):
        decode_message(b"{serial: x}\n" + body)
    with pytest.raises(MessageError, match="needs 'serial'"):
        decode_message(json.dumps({"ts_ms": 1}).encode() + b"\n" + body)
    with pytest.raises(MessageError, match="ts_ms"):
        decode_message(json.dumps({"serial": "a", "ts_ms": "soon"}).encode() + b"\n" + body)


def test_defect_free_parts_pass_and_clear_defects_fail_with_a_box_on_the_defect(model: StationModel) -> None:
    rng = np.random.default_rng(42)  # not the training seed
    good = [model.inspect(make_part(rng, "").image) for _ in range(4)]
    assert [v.verdict for v in good].count(PASS) >= 3
    hits = 0
    for kind in ("scratch", "inclusion", "patch"):
        for _ in range(2):
            part = make_part(rng, kind)
            v = model.inspect(part.image)
            if v.verdict != FAIL:
                continue
            assert v.confidence >= 0.5 and v.score > v.threshold and v.boxes
            ys, xs = np.nonzero(part.mask)
            b = v.boxes[0]
            inside = (xs >= b.x0) & (xs < b.x1) & (ys >= b.y0) & (ys < b.y1)
            hits += inside.mean() > 0.3  # the hottest box covers a good part of the injected defect
    assert hits >= 4


def test_overlay_is_a_png_twice_the_size_with_red_on_the_defect(model: StationModel) -> None:
    part = make_part(np.random.default_rng(3), "inclusion")
    v = model.inspect(part.image)
    out = Image.open(io.BytesIO(overlay_png(part.image, v.heat, model.cell_threshold,
                                            [b.as_dict() for b in v.boxes])))
    assert out.size == (400, 400) and out.mode == "RGB"
    rgb = np.asarray(out).astype(int)
    red = (rgb[..., 0] - rgb[..., 1]) > 60
    mask = np.kron(part.mask, np.ones((2, 2), bool))
    assert red[mask].mean() > 3 * red[~mask].mean()


def test_the_camera_takes_the_same_picture_of_the_same_serial() -> None:
    a, b = picture(1, "SN-1", 0.5), picture(1, "SN-1", 0.5)
    assert np.array_equal(a.image, b.image) and a.kind == b.kind
    assert not np.array_equal(picture(2, "SN-1", 0.5).image, a.image)
    kinds = [picture(1, f"SN-{i}", 0.2).kind for i in range(100)]
    assert 8 <= sum(k != "" for k in kinds) <= 35  # the share asked for, give or take chance
    shot = InspectionCamera(1, defect_rate=1.0).take("SN-9", 1_700_000_000_123)
    header, image = decode_message(shot.payload)
    assert header == {"serial": "SN-9", "ts_ms": 1_700_000_000_123, "station": "camera1", "format": "png"}
    assert shot.kind and shot.mask is not None and shot.mask.any()
    assert np.array_equal(decode(image, "t", SIZE, 10**6), picture(1, "SN-9", 1.0).image)


def test_the_camera_replays_a_directory_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "b.png").write_bytes(encode_png(np.full((200, 200), 20, np.uint8)))
    (tmp_path / "a.png").write_bytes(encode_png(np.full((200, 200), 10, np.uint8)))
    (tmp_path / "notes.txt").write_text("not an image")
    camera = InspectionCamera(1, image_dir=tmp_path)
    shots = [decode_message(camera.take(f"S{i}", 1).payload) for i in range(3)]
    assert [int(decode(image, "t", SIZE, 10**6)[0, 0]) for _, image in shots] == [10, 20, 10]
    assert [h["serial"] for h, _ in shots] == ["S0", "S1", "S2"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        InspectionCamera(1, image_dir=tmp_path / "empty")


def test_retention_removes_old_image_files_and_keeps_verdicts_and_labels(tmp_path: Path) -> None:
    from shopfloor.apps.inspection.store import InspectionStore, NewInspection

    store = InspectionStore(tmp_path)
    verdict = {"verdict": "fail", "defect_class": "anomaly", "confidence": 0.7, "score": 30.0, "threshold": 23.0,
               "boxes": [], "inference_ms": 90.0}
    image = png()
    ids = [store.add(NewInspection(f"SN-{t}", "cam", "mqtt", t, t, image, "png", np.zeros((25, 25)), verdict,
                                   "pending", 1)) for t in (1_000, 2_000)]
    store.review(ids[0], "ok", "otto", 1_500, None, decode(image, "t", SIZE, 10**6))
    store.reject("mqtt", "topic", "SN-X", "truncated", b"\x89PNG cut", 1_200)
    store.reject("mqtt", "topic", "SN-Y", "truncated", b"\x89PNG cut", 2_200)
    assert store.purge_files(before_ns=1_800) == 3  # SN-1000's image and heat map, SN-X's payload
    old, new = store.get(ids[0]), store.get(ids[1])
    assert old is not None and new is not None
    assert old["image_file"] == "" and old["heat_file"] is None and old["verdict"] == "fail" and old["label"] == "ok"
    assert (tmp_path / new["image_file"]).read_bytes() == image
    assert len(list((tmp_path / "labelled" / "ok").glob("*.png"))) == 1  # training data stays
    assert [r["file"] == "" for r in store.rejected()] == [False, True]
    assert store.purge_files(before_ns=1_800) == 0
    store.close()
