"""The inspection station at the line, end to end: the virtual factory's camera sees the MES's ``produced``
events, its pictures reach the platform over MQTT (and by HTTP upload), each verdict is stored against
the part's serial and found through the API; bad images are counted and kept while the station goes on;
uncertain verdicts wait in the review queue, and a person's labels become data for retraining.

One platform, broker, camera and API server for the module (training the station model is the costly part).
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from typing import Any

import numpy as np
import pytest
from PIL import Image

from shopfloor.apps.inspection.station import decode, encode_message, encode_png
from shopfloor.apps.inspection.synthetic import make_part
from shopfloor.core.samples import SampleBatch
from shopfloor.sim.camera import image_topic
from shopfloor.testing.waiting import wait_for
from tests.apps.inspection.conftest import CNC, SIZE, STATION, Line, json_split, uncertain_images


def test_the_station_appears_in_health_and_trains_its_model_as_a_versioned_artifact(line: Line) -> None:
    status = line.api.get("/api/inspection/status").json()
    assert status["station"] == STATION and status["model_version"] == 1 and status["connected"]
    assert status["threshold"] > status["calibration"]["mean"]
    meta = json.loads((line.tmp / "models" / "inspection-anomaly" / "v1" / "meta.json").read_text())
    assert meta["dataset"].startswith("synthetic defect-free") and meta["train_seconds"] > 0
    assert line.api.get("/health").json()["services"]["inspection"]["state"] == "ready"


def test_each_part_produced_is_photographed_judged_and_its_verdict_stored_against_its_serial(line: Line) -> None:
    serials = [f"SN-{i:04d}" for i in range(1, 11)]  # 10: the defect rate is written from the 10th part on
    line.produce(*serials)
    results = {s: line.verdict(s) for s in serials}
    shots = {s.serial: s for s in line.camera.shots}
    for serial, found in results.items():
        (record,) = found["inspections"]
        assert record["serial"] == serial and record["source"] == "mqtt" and record["station"] == "camera1"
        assert found["verdict"] == record["verdict"] in ("pass", "fail")
        assert 0.5 <= record["confidence"] <= 1.0
        assert record["ts_ms"] == shots[serial].ts_ms  # the camera's time, from the produced event
        image = line.api.get(record["image_url"])  # the image as the camera sent it
        assert image.headers["content-type"] == "image/png"
        assert image.content == json_split(shots[serial].payload)[1]
        if record["verdict"] == "fail":
            assert record["boxes"] and record["score"] > record["threshold"]
    # Each verdict is in the MES too, as the part's inspection event, through the MES recorder.
    for serial, found in results.items():
        record = wait_for(lambda s=serial: (r := line.api.get(f"/api/inspection/serials/{s}").json()
                                            ["inspections"][0])["mes"] and r)
        assert record["mes"] == "recorded", record["mes_error"]
        trace = line.api.get(f"/api/mes/trace/{serial}").json()
        events = [e for n in trace["nodes"] if n["code"] == serial for e in n["events"]]
        (check,) = [e for e in events if e["kind"] == "inspection"]
        assert check["payload"]["characteristic"] == "visual-anomaly"
        assert check["payload"]["passed"] == (found["verdict"] == "pass")
        assert check["equipment"] == STATION
    overlay = line.api.get(results[serials[0]]["inspections"][0]["overlay_url"])
    assert Image.open(io.BytesIO(overlay.content)).size == (400, 400)
    latest = line.api.get("/api/inspection/inspections", params={"limit": 50}).json()
    assert {r["serial"] for r in latest} >= set(serials)
    # The station's derived tags reach the historian: the counter of inspected parts, the defect rate.
    index = line.platform.tag_index
    ids = [index.id_of(f"{STATION}/inspected"), index.id_of(f"{STATION}/defect_rate")]

    def tags() -> dict[int, float] | None:
        batch = line.platform.historian.latest(ids)
        values = dict(zip(batch.tag_id.tolist(), batch.value.tolist(), strict=True))
        return values if values.get(ids[0], 0) >= len(serials) else None

    values = wait_for(tags, 30)
    total = line.api.get("/api/inspection/status").json()["totals"]
    assert values[ids[0]] == total["inspected"]
    assert 0 <= values[ids[1]] <= 100
    rate = line.api.get("/api/inspection/defect-rate", params={"start": "-1h", "bucket_s": 3600}).json()
    assert sum(b["inspected"] for b in rate["buckets"]) == total["inspected"]
    assert sum(b["rejected"] for b in rate["buckets"]) == total["rejected"]


def test_an_image_uploaded_over_http_is_judged_and_stored_against_its_serial(line: Line) -> None:
    part = make_part(np.random.default_rng(5), "inclusion")
    data = encode_png(part.image)
    r = line.api.post("/api/inspection/images", files={"file": ("part.png", data, "image/png")},
                      data={"serial": "SN-HTTP-1", "station": "manual"})
    assert r.status_code == 201, r.text
    record = r.json()
    assert record["serial"] == "SN-HTTP-1" and record["source"] == "http" and record["station"] == "manual"
    assert record["verdict"] == "fail" and record["boxes"]  # an inclusion this size is plain to see
    buf = io.BytesIO()
    Image.fromarray(make_part(np.random.default_rng(6)).image).save(buf, format="JPEG", quality=95)
    raw = line.api.post("/api/inspection/images", params={"serial": "SN-HTTP-2"}, content=buf.getvalue(),
                        headers={"content-type": "image/jpeg"})
    assert raw.status_code == 201, raw.text
    assert line.api.get(raw.json()["image_url"]).headers["content-type"] == "image/jpeg"
    found = line.verdict("SN-HTTP-1")
    assert found["verdict"] == "fail" and found["inspections"][0]["id"] == record["id"]
    assert line.api.get("/api/inspection/serials/SN-NEVER").status_code == 404
    # A serial the MES never heard of: waited for (mes_retry_s), then the MES's refusal is kept on the record.
    refused = wait_for(lambda: (r := line.api.get(f"/api/inspection/inspections/{record['id']}").json())["mes"] and r)
    assert refused["mes"] == "refused" and "SN-HTTP-1" in refused["mes_error"]
    missing = line.api.post("/api/inspection/images", files={"file": ("p.png", data, "image/png")})
    assert missing.status_code == 422 and "serial" in missing.json()["detail"]


def test_bad_images_are_refused_with_the_reason_counted_kept_and_the_station_goes_on(line: Line) -> None:
    before = line.api.get("/api/inspection/rejected").json()["count"]
    good = encode_png(make_part(np.random.default_rng(8)).image)
    topic = image_topic("camera1")
    line.publish(topic, b"\x00\x01 garbage, no header")
    line.publish(topic, encode_message({"serial": "SN-CUT", "ts_ms": 1}, good[: len(good) // 2]))
    small = encode_png(np.zeros((100, 120), np.uint8))
    r = line.api.post("/api/inspection/images", files={"file": ("small.png", small, "image/png")},
                      data={"serial": "SN-SMALL"})
    assert r.status_code == 422 and "wrong size 120x100, expected 200x200" in r.json()["detail"]
    r = line.api.post("/api/inspection/images", files={"file": ("x.png", b"not an image", "image/png")},
                      data={"serial": "SN-JUNK"})
    assert r.status_code == 422 and "not a readable image" in r.json()["detail"]
    line.publish(topic, encode_message({"serial": "SN-AFTER", "ts_ms": int(time.time() * 1000)}, good))
    assert line.verdict("SN-AFTER")["verdict"] in ("pass", "fail")  # still judging
    rejected = wait_for(lambda: (j := line.api.get("/api/inspection/rejected").json())["count"] >= before + 4 and j)
    reasons = {item["serial"]: item["reason"] for item in rejected["items"][:4]}
    assert "no JSON header" in reasons[None]
    assert "truncated or damaged" in reasons["SN-CUT"]
    assert "wrong size" in reasons["SN-SMALL"] and "not a readable image" in reasons["SN-JUNK"]
    kept = {item["serial"]: item for item in rejected["items"][:4]}
    store = line.tmp / "data" / "inspection"
    assert (store / kept["SN-SMALL"]["file"]).read_bytes() == small  # byte for byte, for a look later
    assert (store / kept["SN-CUT"]["file"]).read_bytes() == good[: len(good) // 2]
    assert line.platform.dead_letters.counts["inspection"] >= 4
    health = line.api.get("/health").json()["services"]["inspection"]
    assert health["counts"]["bad images"] >= 4 and health["state"] == "ready"
    assert line.api.get("/api/inspection/inspections/999999").status_code == 404


def test_uncertain_verdicts_wait_for_review_and_labels_are_kept_for_retraining(line: Line) -> None:
    model = line.platform.service("inspection").model  # type: ignore[attr-defined]
    uncertain = uncertain_images(model, 2)
    ids = []
    for i, image in enumerate(uncertain):
        r = line.api.post("/api/inspection/images", params={"serial": f"SN-REV-{i}"}, content=encode_png(image),
                          headers={"content-type": "image/png"})
        assert r.status_code == 201 and r.json()["review"] == "pending"
        ids.append(r.json()["id"])
    queue = line.api.get("/api/inspection/review").json()
    assert {i["id"] for i in queue["items"]} >= set(ids) and queue["pending"] >= 2
    first = line.api.get(f"/api/inspection/inspections/{ids[0]}").json()
    confirm = line.api.post(f"/api/inspection/review/{ids[0]}", json={"label": first["defect_class"]}).json()
    assert confirm["review"] == "confirmed" and confirm["reviewed_by"] == "anonymous"
    second = line.api.get(f"/api/inspection/inspections/{ids[1]}").json()
    flipped = "pits" if second["verdict"] == "pass" else "ok"
    correct = line.api.post(f"/api/inspection/review/{ids[1]}", json={"label": flipped, "note": "seen by eye"})
    assert correct.json()["review"] == "corrected" and correct.json()["label"] == flipped
    assert line.api.get("/api/inspection/serials/SN-REV-1").json()["verdict"] == ("fail" if flipped != "ok" else "pass")
    assert not {i["id"] for i in line.api.get("/api/inspection/review").json()["items"]} & set(ids)
    archive = zipfile.ZipFile(io.BytesIO(line.api.get("/api/inspection/labelled.zip").content))
    rows = archive.read("labels.csv").decode().splitlines()
    assert rows[0].startswith("file,label,model_class")
    labelled = {row.split(",")[4]: row.split(",") for row in rows[1:]}
    assert labelled["SN-REV-1"][1] == flipped
    stored = decode(archive.read(labelled["SN-REV-1"][0]), "zip", SIZE, 10**6)
    assert np.array_equal(stored, uncertain[1])  # the very pixels the person judged
    assert line.api.post(f"/api/inspection/review/{ids[0]}", json={"label": ""}).status_code == 422
    assert line.api.post("/api/inspection/review/999999", json={"label": "ok"}).status_code == 404


def test_parts_rejected_at_inspection_are_scrap_of_the_machine_that_made_them_in_its_oee(line: Line) -> None:
    """The machine counted every part good; the camera's rejections move to its scrap in OEE's quality
    factor, and a person's review that passes a rejected part moves it back."""
    start_ms = time.time_ns() // 1_000_000 - 1
    serials = [f"SN-OEE-{i}" for i in range(8)]
    line.produce(*serials)
    verdicts = {s: line.verdict(s) for s in serials}
    for s in serials:  # each verdict recorded in the MES before OEE is asked
        wait_for(lambda s=s: line.api.get(f"/api/inspection/serials/{s}").json()["inspections"][0]["mes"]
                 == "recorded", 30)
    failed = [s for s, v in verdicts.items() if v["verdict"] == "fail"]
    assert failed and len(failed) < len(serials)  # defect rate 0.5: both kinds among eight parts
    end_ms = time.time_ns() // 1_000_000 + 1
    # The machine's own counters: running all along, eight parts counted good.
    index = line.platform.tag_index
    rows = [("state", start_ms - 1000, 0.0), ("parts_good", start_ms - 1000, 100.0), ("parts_good", end_ms, 108.0)]
    ids = [index.id_of(f"{CNC}/{name}") for name, _, _ in rows]
    assert line.platform.writer.submit(SampleBatch.of(ids, [ts * 1_000_000 for _, ts, _ in rows],
                                                      [v for _, _, v in rows]), timeout=5)
    assert line.platform.writer.flush(10)
    period = {"asset": CNC, "start": str(start_ms), "end": str(end_ms + 1000), "pri": f"{CNC}=1"}

    def oee() -> dict[str, Any]:
        r = line.api.get("/api/mes/oee", params=period)
        assert r.status_code == 200, r.text
        return r.json()["machines"][0]  # type: ignore[no-any-return]

    m = oee()
    assert (m["GQ"], m["SQ"], m["rejected_at_inspection"]) == (8 - len(failed), len(failed), len(failed))
    assert m["quality_ratio"] == pytest.approx((8 - len(failed)) / 8)
    # A person looks at one rejected part and passes it: it is good again, in the shift it was made.
    record = verdicts[failed[0]]["inspections"][0]
    assert line.api.post(f"/api/inspection/review/{record['id']}", json={"label": "ok"}).status_code == 200
    again = wait_for(lambda: (m := oee())["rejected_at_inspection"] == len(failed) - 1 and m, 30)
    assert (again["GQ"], again["SQ"]) == (9 - len(failed), len(failed) - 1)
