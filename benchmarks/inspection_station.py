"""The inspection station at the line, measured on the virtual factory's camera pictures.

The station model is trained as the demo trains it (station.train_synthetic with the demo's defaults:
40 defect-free synthetic surfaces, 20 more to calibrate the threshold), then judges the camera's pictures
of N serials (sim/camera.py: deterministic per seed and serial; defective with probability --defect-rate),
whose injected defects and masks are known. Reported: training time, false rejects (defect-free parts
rejected), rejected share of the defective parts by kind, share of verdicts sent to review (confidence
below 0.8, the default review_below), how often the hottest box covers the injected defect, inference
time per picture (wall and CPU), and the CPU the camera spends per picture.

Run: python benchmarks/inspection_station.py [--parts 400] [--defect-rate 0.25] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import Counter

import numpy as np

from shopfloor.apps.inspection.station import FAIL, train_synthetic
from shopfloor.sim.camera import InspectionCamera, picture
from shopfloor.testing.machine import cpu_model

REVIEW_BELOW = 0.8


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", type=int, default=400, help="camera pictures judged")
    ap.add_argument("--defect-rate", type=float, default=0.25, help="share of parts the camera makes defective")
    ap.add_argument("--seed", type=int, default=1, help="the camera's seed (the demo's is 1)")
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    args = ap.parse_args()

    t0, c0 = time.perf_counter(), time.process_time()
    model = train_synthetic(0, 40, 20)
    train_s, train_cpu_s = time.perf_counter() - t0, time.process_time() - c0

    camera = InspectionCamera(args.seed, defect_rate=args.defect_rate)
    c0 = time.process_time()
    for i in range(50):
        camera.take(f"SN-CPU-{i}", 0)
    camera_ms = 1000 * (time.process_time() - c0) / 50

    judged: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    review = hits = boxed = 0
    times: list[float] = []
    cpu: list[float] = []
    for i in range(args.parts):
        part = picture(args.seed, f"SN-{i:06d}", args.defect_rate)
        c0 = time.process_time()
        v = model.inspect(part.image)
        cpu.append(1000 * (time.process_time() - c0))
        times.append(v.inference_ms)
        kind = part.kind or "none"
        judged[kind] += 1
        rejected[kind] += v.verdict == FAIL
        review += v.confidence < REVIEW_BELOW
        if part.kind and v.verdict == FAIL and v.boxes:
            boxed += 1
            b = v.boxes[0]
            ys, xs = np.nonzero(part.mask)
            inside = (xs >= b.x0) & (xs < b.x1) & (ys >= b.y0) & (ys < b.y1)
            hits += bool(inside.mean() >= 0.5)
    defective = sum(n for k, n in judged.items() if k != "none")
    result = {
        "machine": cpu_model(), "python": platform.python_version(), "parts": args.parts,
        "defect_rate": args.defect_rate, "train_s": round(train_s, 2), "train_cpu_s": round(train_cpu_s, 2),
        "threshold": round(model.threshold, 3),
        "false_reject_rate": round(rejected["none"] / max(judged["none"], 1), 4),
        "defect_recall": round(sum(rejected[k] for k in judged if k != "none") / max(defective, 1), 4),
        "recall_by_kind": {k: round(rejected[k] / n, 3) for k, n in sorted(judged.items()) if k != "none"},
        "review_share": round(review / args.parts, 4),
        "box_on_defect": round(hits / max(boxed, 1), 4),
        "inference_ms_median": round(float(np.median(times)), 1),  # wall time: the machine's load shows here
        "inference_cpu_ms_median": round(float(np.median(cpu)), 1),
        "camera_cpu_ms_per_picture": round(camera_ms, 1),
        "judged": dict(judged),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
