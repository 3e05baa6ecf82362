"""Maintenance models on public data: bearing diagnosis (CWRU), RUL (C-MAPSS), failure (AI4I 2020), NAB.

Each part reads its data set from SHOPFLOOR_DATA (default ../shared/data); a part whose data is missing is
reported as skipped. Protocols (see docs/maintenance.md):
- cwru: 10 classes, 2,048-sample windows; same load = each recording cut in time 70/30; cross load = train
  on every recording of one load, test on every recording of the other (the single normal recording, at
  0 HP, is cut in half in time); accuracy over seeds 0-2 and the confusion matrix of seed 0.
- cmapss: piecewise-linear target capped at 125; each test unit scored once at its last cycle against
  RUL_FDxxx.txt as given (and against the truth capped at 125, as many papers do).
- ai4i: stratified 5-fold CV, seed 0, machine failure from type + 5 measurements + 3 physics features.
- nab: our streaming detector and NAB's windowed Gaussian on the same files, NAB scoring (sweep,
  per-profile threshold optimisation, normalisation with the null detector).

Run: python benchmarks/maintenance.py [--only cwru,cmapss,ai4i,nab] [--out DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from shopfloor.apps.maintenance import anomaly, cwru, failure, metrics, rul
from shopfloor.apps.maintenance.data import DataMissing, data_root
from shopfloor.testing.machine import cpu_model

console = Console(stderr=True, width=140)
PARTS = ("cwru", "cmapss", "ai4i", "nab")
TARGETS = {
    "cwru_same_load_acc": 0.995, "cwru_cross_load_acc": 0.97, "cmapss_fd001_rmse": 12.0,
    "cmapss_fd001_score": 250.0, "ai4i_f1": 0.90, "nab_ratio": 1.8,
}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(matrix: list[list[int]], title: str, path: Path) -> None:
    plt = _plt()
    m = np.array(matrix)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(cwru.CLASSES)), cwru.CLASSES, rotation=45, ha="right")
    ax.set_yticks(range(len(cwru.CLASSES)), cwru.CLASSES)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if m[i, j]:
                colour = "white" if m[i, j] > m.max() / 2 else "black"
                ax.text(j, i, str(m[i, j]), ha="center", va="center", color=colour)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_cwru(out: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    recs = cwru.load_recordings()
    splits = [cwru.same_load_split(recs, 0), cwru.same_load_split(recs, 1),
              cwru.cross_load_split(recs, 0, 1), cwru.cross_load_split(recs, 1, 0)]
    features_s = time.perf_counter() - t0
    results = [cwru.evaluate_split(s) for s in splits]
    for r, tag in zip(results, ("same0", "same1", "cross01", "cross10"), strict=True):
        plot_confusion(r.confusion, f"CWRU {r.name} (seed 0)", out / f"cwru_confusion_{tag}.png")
    same = [a for r in results[:2] for a in r.accuracy]
    cross = [a for r in results[2:] for a in r.accuracy]
    return {
        "splits": [asdict(r) for r in results], "feature_seconds": features_s,
        "same_load_acc": float(np.mean(same)), "same_load_acc_min": float(np.min(same)),
        "cross_load_acc": float(np.mean(cross)), "cross_load_acc_min": float(np.min(cross)),
        "train_seconds": max(r.train_seconds for r in results), "data_sha256": cwru.data_hash(),
    }


def run_cmapss(out: Path) -> dict[str, Any]:
    subsets = rul.available_subsets()
    if not subsets:
        raise DataMissing("no C-MAPSS subset found")
    missing = [s for s in ("FD001", "FD002", "FD003", "FD004") if s not in subsets]
    res: dict[str, Any] = {"subsets": {}, "missing": missing}
    plt = _plt()
    for subset in subsets:
        _, r = rul.evaluate_subset(subset)
        res["subsets"][subset] = asdict(r) | {"data_sha256": rul.data_hash(subset)}
        order = np.argsort(r.truth)
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.plot(np.array(r.truth)[order], "k.-", label="true RUL")
        ax.plot(np.array(r.predicted)[order], "r.", label="predicted at last cycle")
        ax.axhline(rul.RUL_CAP, color="grey", lw=0.5, ls="--")
        ax.set_xlabel("test engine (sorted by true RUL)")
        ax.set_ylabel("cycles")
        ax.set_title(f"C-MAPSS {subset}: RMSE {r.rmse:.2f}, score {r.score:.0f}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / f"cmapss_{subset}.png", dpi=120)
        plt.close(fig)
    return res


def run_ai4i(out: Path) -> dict[str, Any]:
    data = failure.read_ai4i(failure.data_path())
    r = failure.cross_validate(data)
    return asdict(r) | {"data_sha256": failure.data_hash()}


def run_nab(out: Path) -> dict[str, Any]:
    series, n_windows = anomaly.load_corpus()
    detectors: dict[str, Callable[[], anomaly.WindowedGaussian | anomaly.StreamingDetector]] = {
        "ours": anomaly.StreamingDetector, "windowed_gaussian": anomaly.WindowedGaussian,
    }
    res: dict[str, Any] = {"files": len(series), "windows": n_windows}
    scores_of: dict[str, dict[str, np.ndarray]] = {}
    for name, make in detectors.items():
        t0 = time.perf_counter()
        scores_of[name] = {s.name: anomaly.run_detector(make(), s.values) for s in series}
        run_s = time.perf_counter() - t0
        per_profile = {}
        for profile, cost in metrics.PROFILES.items():
            swept = [metrics.sweep(s.name, scores_of[name][s.name], s.windows, cost) for s in series]
            r = metrics.nab_score(swept, cost, profile, n_windows)
            no_anomaly = {k: v for k, v in r.false_alarms.items() if not any(s.windows for s in series if s.name == k)}
            per_profile[profile] = {
                "score": r.normalised, "raw": r.raw, "threshold": r.threshold, "windows_found": r.windows_found,
                "windows_scored": r.windows_total, "false_alarms": sum(r.false_alarms.values()),
                "false_alarms_no_anomaly_files": sum(no_anomaly.values()), "per_file": r.per_file,
            }
        res[name] = {"profiles": per_profile, "seconds": run_s, "records": int(sum(len(s.values) for s in series))}
    standard = {name: res[name]["profiles"]["standard"]["score"] for name in detectors}
    res["ratio_standard"] = standard["ours"] / standard["windowed_gaussian"]
    res["data_sha256"] = anomaly.data_hash()
    plt = _plt()
    target = next((s for s in series if "machine_temperature" in s.name), series[0])
    fig, axes = plt.subplots(3, 1, figsize=(11, 7), sharex=True)
    axes[0].plot(target.values, lw=0.6)
    for a, b in target.windows:
        for ax in axes:
            ax.axvspan(a, b, color="orange", alpha=0.25)
    axes[0].set_title(f"NAB {target.name}: labelled windows shaded")
    for ax, name in zip(axes[1:], detectors, strict=True):
        thr = res[name]["profiles"]["standard"]["threshold"]
        ax.plot(scores_of[name][target.name], lw=0.6)
        ax.axhline(thr, color="red", lw=0.6)
        ax.set_ylabel(name)
    axes[-1].set_xlabel("record")
    fig.tight_layout()
    fig.savefig(out / "nab_machine_temperature.png", dpi=120)
    plt.close(fig)
    return res


RUNNERS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "cwru": run_cwru, "cmapss": run_cmapss, "ai4i": run_ai4i, "nab": run_nab,
}


def table(results: dict[str, Any]) -> Table:
    t = Table(title="Maintenance models on public data")
    for col in ("model", "figure", "measured", "target", "met", "train s"):
        t.add_column(col)

    def row(model: str, figure: str, value: float, target: str, met: bool | None, secs: float | None) -> None:
        t.add_row(model, figure, f"{value:.4g}", target, "" if met is None else ("yes" if met else "NO"),
                  "" if secs is None else f"{secs:.1f}")

    for part, r in results.items():
        if "skipped" in r:
            t.add_row(part, "skipped", r["skipped"], "", "", "")
            continue
        if part == "cwru":
            for s in r["splits"]:
                row("CWRU", f"{s['name']} acc (3 seeds, min)", min(s["accuracy"]), "", None, s["train_seconds"])
            row("CWRU", "same-load accuracy (mean)", r["same_load_acc"], ">= 0.995",
                r["same_load_acc"] >= TARGETS["cwru_same_load_acc"], None)
            row("CWRU", "cross-load accuracy (mean)", r["cross_load_acc"], ">= 0.97",
                r["cross_load_acc"] >= TARGETS["cwru_cross_load_acc"], None)
        elif part == "cmapss":
            for subset, s in r["subsets"].items():
                first = subset == "FD001"
                row(f"C-MAPSS {subset}", "RMSE (truth as given)", s["rmse"], "<= 12.0" if first else "",
                    s["rmse"] <= TARGETS["cmapss_fd001_rmse"] if first else None, s["train_seconds"])
                row(f"C-MAPSS {subset}", "score (truth as given)", s["score"], "<= 250" if first else "",
                    s["score"] <= TARGETS["cmapss_fd001_score"] if first else None, None)
                row(f"C-MAPSS {subset}", "RMSE / score (truth capped 125)", s["rmse_capped_truth"],
                    f"score {s['score_capped_truth']:.0f}", None, None)
            for subset in r["missing"]:
                t.add_row(f"C-MAPSS {subset}", "not in the data folder", "", "", "", "")
        elif part == "ai4i":
            row("AI4I 2020", "machine-failure F1 (5-fold)", r["f1"], ">= 0.90", r["f1"] >= TARGETS["ai4i_f1"],
                r["train_seconds"])
            row("AI4I 2020", "ROC AUC", r["roc_auc"], "", None, None)
            row("AI4I 2020", "precision / recall", r["precision"], f"recall {r['recall']:.3f}", None, None)
        elif part == "nab":
            for det in ("ours", "windowed_gaussian"):
                p = r[det]["profiles"]
                row(f"NAB {det}", "standard / low FP / low FN", p["standard"]["score"],
                    f"{p['reward_low_FP_rate']['score']:.1f} / {p['reward_low_FN_rate']['score']:.1f}", None,
                    r[det]["seconds"])
                row(f"NAB {det}", "false alarms on no-anomaly files", p["standard"]["false_alarms_no_anomaly_files"],
                    "", None, None)
            row("NAB", "ours / windowed Gaussian (standard)", r["ratio_standard"], ">= 1.8",
                r["ratio_standard"] >= TARGETS["nab_ratio"], None)
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {','.join(PARTS)}")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/maintenance"), help="where plots go")
    ap.add_argument("--json", action="store_true", help="print one JSON line on stdout")
    args = ap.parse_args()
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in parts if p not in RUNNERS]
    if unknown:
        ap.error(f"unknown parts {unknown}; choose from {','.join(PARTS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("maintenance benchmark", total=len(parts))
        for part in parts:
            progress.update(task, description=f"{part} ...")
            t0 = time.perf_counter()
            try:
                results[part] = RUNNERS[part](args.out)
            except DataMissing as exc:
                results[part] = {"skipped": str(exc)}
            results[part]["wall_seconds"] = time.perf_counter() - t0
            progress.advance(task)
    meta = {"benchmark": "maintenance", "cpu": cpu_model(), "cores": os.cpu_count(), "data_root": str(data_root()),
            "date": time.strftime("%Y-%m-%d", time.gmtime())}
    if args.json:
        print(json.dumps(meta | {"results": results}, default=float))
    console.print(table(results))
    console.print(f"{meta['cpu']}, {meta['cores']} cores, {meta['date']}; plots in {args.out}")


if __name__ == "__main__":
    main()
