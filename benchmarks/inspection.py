"""Visual inspection benchmark on NEU-DET: classification, localisation and anomaly detection.

- classify: stratified 5-fold CV (seed 0) of the texture-descriptor SVM, kernel and C chosen by an inner
  3-fold search on the training folds; accuracy, macro-F1, per-class recall, confusion-matrix plot, training
  time per fold, inference time per image (descriptor + prediction).
- localise: stratified 80/20 split of the images (seed 0, by file class); localiser and image classifier are
  trained on the 80 %; VOC mAP@0.5 (all-point) on the 20 % with the box names as ground truth; example
  images with boxes and heat maps.
- detect: the convolutional detector (optional extra shopfloor[vision], PyTorch's CPU build), trained from
  scratch on the same 80 % and scored on the same 20 % as localise; per-class AP, mAP@0.5, training and
  inference time, example images with boxes and heat maps. With it, `map50` in --json is its figure (the
  LightGBM localiser's is `map50_boxes`).
- anomaly: trained on defect-free images only. NEU: for each class, the other five are "normal" (80 % of
  them train, 20 % are the normal test images) and all images of the left-out class are the anomalies;
  image-level ROC AUC. Synthetic camera parts (shopfloor.apps.inspection.synthetic): image- and pixel-level
  ROC AUC against the injected masks.

Run: python benchmarks/inspection.py [--only classify,localise,detect,anomaly] [--out DIR] [--json]
Descriptors are cached under DIR/cache (keyed by the image bytes and the feature version).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sklearn.model_selection import train_test_split

from shopfloor.apps import artifacts
from shopfloor.apps.inspection.anomaly import AnomalyDetector
from shopfloor.apps.inspection.classify import DefectClassifier, cross_validate, extract_features, out_of_fold_scores
from shopfloor.apps.inspection.dataset import CLASSES, InspectionSet, data_root, load_neu
from shopfloor.apps.inspection.features import FEATURE_VERSION, image_cells, image_features
from shopfloor.apps.inspection.localise import Localiser, LocaliserConfig, upsample
from shopfloor.apps.inspection.metrics import GroundTruth, mean_average_precision, roc_auc
from shopfloor.apps.inspection.synthetic import make_batch

console = Console(stderr=True, width=120)
SHORT = {"crazing": "Cr", "inclusion": "In", "patches": "Pa", "pitted_surface": "PS", "rolled-in_scale": "RS",
         "scratches": "Sc"}


@contextmanager
def progress_bar(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields the advance function."""
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def cached_cells(data: InspectionSet, cache: Path) -> np.ndarray:
    """Per-cell dense channel means of every image (N x C x 25 x 25), cached on disk."""
    path = cache / f"cells-{FEATURE_VERSION}-{data.data_hash[:16]}.npy"
    if path.is_file():
        return np.asarray(np.load(path))
    with progress_bar("dense cells", len(data.images)) as advance:
        rows = []
        for image in data.images:
            rows.append(image_cells(image))
            advance(1)
    cells = np.stack(rows)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, cells)
    return cells


def cached_features(data: InspectionSet, cache: Path) -> np.ndarray:
    path = cache / f"features-{FEATURE_VERSION}-{data.data_hash[:16]}.npz"
    with progress_bar("image descriptors", len(data.images)) as advance:
        return extract_features(data.images, path, advance)


def plot_confusion(confusion: np.ndarray, out: Path, title: str) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    ax.imshow(confusion, cmap="Blues")
    names = [SHORT[c] for c in CLASSES]
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (file class)")
    for i in range(confusion.shape[0]):
        for j in range(confusion.shape[1]):
            ax.text(j, i, str(confusion[i, j]), ha="center", va="center",
                    color="white" if confusion[i, j] > confusion.max() / 2 else "black")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = out / "confusion.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run_classify(data: InspectionSet, out: Path, seed: int, folds: int) -> dict[str, Any]:
    features = cached_features(data, out / "cache")
    with progress_bar("classification CV folds", folds) as advance:
        report = cross_validate(features, data.labels, folds=folds, seed=seed, progress=advance)
    # inference per image from pixels: descriptor + prediction, on the final model
    start = time.perf_counter()
    final = DefectClassifier.train(features, data.labels, CLASSES, seed)
    final_train_s = time.perf_counter() - start
    sample = data.images[:: max(1, len(data.images) // 60)]
    start = time.perf_counter()
    for image in sample:
        final.predict_image(image)
    infer_ms = 1000.0 * (time.perf_counter() - start) / len(sample)
    start = time.perf_counter()
    for image in sample:
        image_features(image)
    descriptor_ms = 1000.0 * (time.perf_counter() - start) / len(sample)
    plot = plot_confusion(report.confusion, out, f"NEU-DET {folds}-fold CV: accuracy {report.accuracy:.4f}, "
                                                 f"macro-F1 {report.macro_f1:.4f}")
    metrics = {
        "accuracy": report.accuracy, "macro_f1": report.macro_f1,
        "per_class_recall": dict(zip(CLASSES, report.per_class_recall, strict=True)),
        "confusion": report.confusion.tolist(), "chosen": [{k: str(v) for k, v in c.items()} for c in report.chosen],
        "train_s_per_fold": report.train_seconds, "final_train_s": final_train_s,
        "infer_ms_per_image": infer_ms, "descriptor_ms_per_image": descriptor_ms,
        "errors": [(data.names[i], CLASSES[int(p)]) for i, p in enumerate(report.predictions)
                   if p != data.labels[i]],
        "plot": str(plot),
    }
    meta = artifacts.save(out / "models", "neu-classifier", final, dataset="neu-det", data_sha256=data.data_hash,
                          train_seconds=final_train_s,
                          metrics={"accuracy": report.accuracy, "macro_f1": report.macro_f1},
                          params={"feature_version": FEATURE_VERSION, "cv": f"stratified {folds}-fold seed {seed}"})
    metrics["artifact"] = f"{meta.name} v{meta.version}"
    return metrics


def plot_detections(data: InspectionSet, picks: list[int], heats: dict[int, np.ndarray],
                    dets: dict[int, list[Any]], out: Path, cell: int,
                    name: str = "localisation_examples.png") -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, axes = plt.subplots(2, len(picks), figsize=(2.4 * len(picks), 5.2))
    for col, i in enumerate(picks):
        top, bottom = axes[0, col], axes[1, col]
        top.imshow(data.images[i], cmap="gray", vmin=0, vmax=255)
        for b in data.boxes[i]:
            top.add_patch(Rectangle((b.xmin, b.ymin), b.xmax - b.xmin, b.ymax - b.ymin, fill=False,
                                    edgecolor="lime", lw=1.2))
        for d in dets[i]:
            if d.score < 0.3:
                continue
            x0, y0, x1, y1 = d.box
            top.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="red", lw=1.0))
            top.text(x0 + 1, y0 + 8, f"{SHORT[CLASSES[d.label]]} {d.score:.2f}", color="red", fontsize=6)
        top.set_title(data.names[i], fontsize=7)
        bottom.imshow(data.images[i], cmap="gray", vmin=0, vmax=255)
        bottom.imshow(upsample(heats[i].max(axis=0), cell), cmap="inferno", alpha=0.55, vmin=0, vmax=1)
        for ax in (top, bottom):
            ax.axis("off")
    fig.suptitle("green: annotated boxes, red: predicted (score >= 0.3); bottom: defect heat map", fontsize=8)
    fig.tight_layout()
    path = out / name
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def localisation_split(data: InspectionSet, seed: int
                       ) -> tuple[np.ndarray, np.ndarray, list[GroundTruth], list[int]]:
    """The split both localisation parts use: stratified 80/20 by file class, the test images' annotated
    boxes as ground truth (image index = position in the test split), and one test image per class to plot."""
    idx = np.arange(len(data.labels))
    train, test = train_test_split(idx, test_size=0.2, stratify=data.labels, random_state=seed)
    truths = [GroundTruth(k, CLASSES.index(b.label), (b.xmin, b.ymin, b.xmax, b.ymax))
              for k, i in enumerate(test) for b in data.boxes[i]]
    picks = [int(test[np.flatnonzero(data.labels[test] == c)[0]]) for c in range(len(CLASSES))]
    return train, test, truths, picks


def run_localise(data: InspectionSet, out: Path, seed: int) -> dict[str, Any]:
    features = cached_features(data, out / "cache")
    cells = cached_cells(data, out / "cache")
    train, test, truths, picks = localisation_split(data, seed)
    config = LocaliserConfig(seed=seed)
    start = time.perf_counter()
    oof = out_of_fold_scores(features[train], data.labels[train], seed=seed)
    classifier = DefectClassifier.train(features[train], data.labels[train], CLASSES, seed)
    classifier_s = time.perf_counter() - start
    start = time.perf_counter()
    with progress_bar("localiser training boxes", len(train)) as advance:
        localiser = Localiser.train(cells[train], [data.boxes[i] for i in train], oof, config, advance)
    localiser_s = time.perf_counter() - start
    scores = classifier.decision_scores(features[test])
    heats: dict[int, np.ndarray] = {}
    dets: dict[int, list[Any]] = {}
    detections = []
    start = time.perf_counter()
    with progress_bar("localising test images", len(test)) as advance:
        for k, i in enumerate(test):
            found, heats[int(i)] = localiser.detect(cells[i], scores[k], k)
            dets[int(i)] = found
            detections.extend(found)
            advance(1)
    heat_ms = 1000.0 * (time.perf_counter() - start) / len(test)
    sample = data.images[test[:20]]
    start = time.perf_counter()
    for image in sample:
        image_cells(image)
        classifier.decision_scores(image_features(image))
    cells_ms = 1000.0 * (time.perf_counter() - start) / len(sample)
    map50, aps = mean_average_precision(detections, truths, len(CLASSES))
    plot = plot_detections(data, picks, heats, dets, out, config.cell)
    meta = artifacts.save(out / "models", "neu-localiser", localiser, dataset="neu-det", data_sha256=data.data_hash,
                          train_seconds=localiser_s, metrics={"map50": map50},
                          params={"feature_version": FEATURE_VERSION, "split": f"stratified 80/20 seed {seed}",
                                  **{k: str(v) for k, v in config.__dict__.items()}})
    return {
        "map50": map50, "ap50": dict(zip(CLASSES, aps, strict=True)), "test_images": len(test),
        "test_boxes": len(truths), "classifier_train_s": classifier_s, "localiser_train_s": localiser_s,
        "infer_ms_per_image": heat_ms + cells_ms, "plot": str(plot), "artifact": f"{meta.name} v{meta.version}",
    }


def run_detect(data: InspectionSet, out: Path, seed: int) -> dict[str, Any]:
    from shopfloor.apps.inspection.detector import CnnDetector, DetectorConfig

    train, test, truths, picks = localisation_split(data, seed)
    config = DetectorConfig(seed=seed)
    start = time.perf_counter()
    with progress_bar("detector training epochs", config.epochs) as advance:
        model = CnnDetector.train(data.images[train], [data.boxes[i] for i in train], config,
                                  progress=lambda epoch, row: advance(1))
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    found, heat_maps = model.detect(data.images[test])
    infer_ms = 1000.0 * (time.perf_counter() - start) / len(test)
    map50, aps = mean_average_precision([d for ds in found for d in ds], truths, len(CLASSES))
    heats = {int(i): heat_maps[k] for k, i in enumerate(test)}
    dets = {int(i): found[k] for k, i in enumerate(test)}
    plot = plot_detections(data, picks, heats, dets, out, 8, "detector_examples.png")
    meta = artifacts.save(out / "models", "neu-detector", model, dataset="neu-det", data_sha256=data.data_hash,
                          train_seconds=train_s, metrics={"map50": map50},
                          params={"split": f"stratified 80/20 seed {seed}",
                                  **{k: str(v) for k, v in config.__dict__.items()}})
    return {
        "map50": map50, "ap50": dict(zip(CLASSES, aps, strict=True)), "test_images": len(test),
        "test_boxes": len(truths), "train_s": train_s, "epochs": config.epochs, "infer_ms_per_image": infer_ms,
        "threads": config.threads, "plot": str(plot), "artifact": f"{meta.name} v{meta.version}",
    }


def plot_anomaly(parts: list[Any], heats: list[np.ndarray], out: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, len(parts), figsize=(2.2 * len(parts), 6.6))
    top = max(float(h.max()) for h in heats)  # one colour scale for all, so good parts look as cool as they are
    for col, (part, heat) in enumerate(zip(parts, heats, strict=True)):
        axes[0, col].imshow(part.image, cmap="gray", vmin=0, vmax=255)
        axes[0, col].set_title(part.kind or "good", fontsize=8)
        axes[1, col].imshow(part.mask, cmap="gray")
        axes[2, col].imshow(heat, cmap="inferno", vmin=0.0, vmax=top)
        for r in range(3):
            axes[r, col].axis("off")
    fig.suptitle("synthetic parts: image, injected mask, anomaly heat map", fontsize=8)
    fig.tight_layout()
    path = out / "anomaly_synthetic.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_anomaly(data: InspectionSet | None, out: Path, seed: int, synthetic: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if data is not None:
        cells = cached_cells(data, out / "cache")
        per_class: dict[str, float] = {}
        train_s: list[float] = []
        with progress_bar("anomaly, left-out classes", len(CLASSES)) as advance:
            for c, name in enumerate(CLASSES):
                normal = np.flatnonzero(data.labels != c)
                train, test_normal = train_test_split(normal, test_size=0.2, stratify=data.labels[normal],
                                                      random_state=seed)
                start = time.perf_counter()
                detector = AnomalyDetector.train(cells[train])
                train_s.append(time.perf_counter() - start)
                test = np.concatenate([test_normal, np.flatnonzero(data.labels == c)])
                scores = np.asarray([detector.image_score(detector.heat_map(cells[i])) for i in test])
                per_class[name] = roc_auc((data.labels[test] == c).astype(int), scores)
                advance(1)
        result["neu_auc_per_left_out_class"] = per_class
        result["neu_auc_mean"] = float(np.mean(list(per_class.values())))
        result["neu_train_s"] = float(np.mean(train_s))
    if synthetic > 0:
        parts_train = make_batch(synthetic, 0, seed=seed + 1)
        parts_test = make_batch(synthetic // 2, synthetic // 2, seed=seed + 2)
        with progress_bar("synthetic parts", len(parts_train) + len(parts_test)) as advance:
            train_cells = []
            for p in parts_train:
                train_cells.append(image_cells(p.image))
                advance(1)
            start = time.perf_counter()
            detector = AnomalyDetector.train(np.stack(train_cells))
            syn_train_s = time.perf_counter() - start
            heats: list[np.ndarray] = []
            syn_scores: list[float] = []
            start = time.perf_counter()
            for p in parts_test:
                heat = detector.heat_map(image_cells(p.image))
                heats.append(upsample(heat, 8))
                syn_scores.append(detector.image_score(heat))
                advance(1)
            infer_ms = 1000.0 * (time.perf_counter() - start) / len(parts_test)
        labels = np.asarray([p.kind != "" for p in parts_test])
        masks = np.stack([p.mask for p in parts_test])
        result["synthetic_image_auc"] = roc_auc(labels.astype(int), np.asarray(syn_scores))
        result["synthetic_pixel_auc"] = roc_auc(masks.astype(int), np.stack(heats))
        result["synthetic_train_s"] = syn_train_s
        result["infer_ms_per_image"] = infer_ms
        picks = [0, 1] + [len(parts_test) // 2 + k for k in range(4)]
        result["plot"] = str(plot_anomaly([parts_test[i] for i in picks], [heats[i] for i in picks], out))
    return result


def ap_table(title: str, part: dict[str, Any]) -> Table:
    """Per-class AP and the mAP of a localisation part, as a table to add its times to."""
    t = Table(title=f"{title} ({part['test_images']} test images, {part['test_boxes']} boxes)")
    t.add_column("class")
    t.add_column("AP@0.5", justify="right")
    for name, ap in part["ap50"].items():
        t.add_row(name, f"{ap:.4f}")
    t.add_row("mAP@0.5", f"{part['map50']:.4f}  (target >= 0.70)")
    return t


def print_tables(res: dict[str, Any]) -> None:
    if "classify" in res:
        c = res["classify"]
        t = Table(title="Defect classification, NEU-DET 1,201 images, stratified 5-fold CV (nested selection)")
        t.add_column("metric")
        t.add_column("value", justify="right")
        t.add_row("accuracy", f"{c['accuracy']:.4f}  (target >= 0.995; AECLBP+SVM 0.9893)")
        t.add_row("macro-F1", f"{c['macro_f1']:.4f}  (target >= 0.995)")
        for name, r in c["per_class_recall"].items():
            t.add_row(f"recall {name}", f"{r:.4f}")
        t.add_row("train s per outer fold (incl. inner search)", f"{np.mean(c['train_s_per_fold']):.1f}")
        t.add_row("final model train s", f"{c['final_train_s']:.1f}")
        t.add_row("inference ms per image (descriptor + SVM)", f"{c['infer_ms_per_image']:.1f}")
        console.print(t)
    if "localise" in res:
        loc = res["localise"]
        t = ap_table("Defect localisation, VOC AP@0.5, stratified 80/20 split seed 0", loc)
        t.add_row("train s (classifier + localiser)",
                  f"{loc['classifier_train_s']:.1f} + {loc['localiser_train_s']:.1f}")
        t.add_row("inference ms per image (cells + heat maps + boxes)", f"{loc['infer_ms_per_image']:.1f}")
        console.print(t)
    if "detect" in res:
        det = res["detect"]
        t = ap_table("Defect localisation by the CNN detector (trained from scratch), VOC AP@0.5, the same split", det)
        t.add_row(f"train s ({det['epochs']} epochs, {det['threads']} threads)", f"{det['train_s']:.1f}")
        t.add_row("inference ms per image (with its three mirror images)", f"{det['infer_ms_per_image']:.1f}")
        console.print(t)
    if "anomaly" in res:
        a = res["anomaly"]
        t = Table(title="Anomaly detection, trained on defect-free images only (ROC AUC)")
        t.add_column("case")
        t.add_column("AUC", justify="right")
        for name, auc in a.get("neu_auc_per_left_out_class", {}).items():
            t.add_row(f"NEU, {name} unseen (trained on the other five)", f"{auc:.4f}")
        if "neu_auc_mean" in a:
            t.add_row("NEU mean", f"{a['neu_auc_mean']:.4f}")
        if "synthetic_image_auc" in a:
            t.add_row("synthetic camera parts, image level", f"{a['synthetic_image_auc']:.4f}")
            t.add_row("synthetic camera parts, pixel level", f"{a['synthetic_pixel_auc']:.4f}")
            t.add_row("inference ms per image", f"{a['infer_ms_per_image']:.1f}")
        console.print(t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--only", default="classify,localise,detect,anomaly",
                    help="comma list of classify,localise,detect,anomaly (detect needs shopfloor[vision])")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/inspection"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--synthetic", type=int, default=60, help="synthetic good training parts (0: skip)")
    ap.add_argument("--json", action="store_true", help="print one JSON line on stdout")
    args = ap.parse_args()
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    unknown = parts - {"classify", "localise", "detect", "anomaly"}
    if "detect" in parts and importlib.util.find_spec("torch") is None:
        console.print("[yellow]PyTorch missing: install shopfloor[vision] for the detector. Skipping detect.")
        parts.discard("detect")
    if unknown:
        ap.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    args.out.mkdir(parents=True, exist_ok=True)
    data: InspectionSet | None
    try:
        data = load_neu()
    except FileNotFoundError as exc:
        console.print(f"[yellow]NEU-DET data missing ({exc}); set SHOPFLOOR_DATA. Skipping the NEU parts.")
        data = None
    res: dict[str, Any] = {}
    if data is not None:
        console.print(f"NEU-DET: {len(data.images)} images from {data_root() / 'neu-det'}, "
                      f"data sha256 {data.data_hash[:16]}..., {len(data.skipped)} skipped")
        if "classify" in parts:
            res["classify"] = run_classify(data, args.out, args.seed, args.folds)
        if "localise" in parts:
            res["localise"] = run_localise(data, args.out, args.seed)
        if "detect" in parts:
            res["detect"] = run_detect(data, args.out, args.seed)
    if "anomaly" in parts and (data is not None or args.synthetic > 0):
        res["anomaly"] = run_anomaly(data, args.out, args.seed, args.synthetic)
    if not res:
        console.print("nothing to measure: data missing")
        return 0
    print_tables(res)
    machine = f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
    if args.json:
        line: dict[str, Any] = {"benchmark": "inspection", "machine": machine}
        if "classify" in res:
            line.update(accuracy=res["classify"]["accuracy"], macro_f1=res["classify"]["macro_f1"])
        if "localise" in res:
            line["map50"] = line["map50_boxes"] = res["localise"]["map50"]
        if "detect" in res:
            line["map50"] = res["detect"]["map50"]
        line.update(res)
        print(json.dumps(line, default=float))
    (args.out / "results.json").write_text(json.dumps(res, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
