"""Bearing fault diagnosis from drive-end vibration: CWRU recordings, leak-free splits, features, classifier.

Ten classes: normal, and inner race / ball / outer race at 0.007, 0.014 and 0.021 in. Each window of 2,048
samples (0.17 s at 12 kHz) becomes a feature vector built in orders of shaft speed (see `window_features`),
so that a model trained at one motor load reads the same lines at another load where the speed differs.

Splits never share samples between training and test: in the same-load protocol each recording is cut in
time (first 70 % train, last 30 % test); in the cross-load protocol the training load's recordings train
and the other load's recordings test. Training windows may overlap each other; test windows do not, and
no window straddles a cut.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import io as sio
from scipy import signal as sps

from shopfloor.apps.maintenance.data import DataMissing, dataset_dir, files_sha256
from shopfloor.apps.maintenance.signal import (
    SKF_6205,
    BearingGeometry,
    SignalError,
    time_statistics,
)

FloatArray = NDArray[np.float64]
FS = 12_000.0
WINDOW = 2048
CLASSES: tuple[str, ...] = (
    "normal", "IR007", "IR014", "IR021", "B007", "B014", "B021", "OR007", "OR014", "OR021",
)
LOCATIONS: tuple[str, ...] = ("normal", "inner", "ball", "outer")
# Envelope bands: below, around and above the drive-end resonances; each gives its own envelope spectrum.
ENVELOPE_BANDS: tuple[tuple[float, float], ...] = ((500.0, 2000.0), (2000.0, 4000.0), (4000.0, 5800.0))
N_SPECTRUM_BANDS = 48


def location_of(label: str) -> str:
    """normal / inner / ball / outer from a 10-class label."""
    return {"n": "normal", "I": "inner", "B": "ball", "O": "outer"}[label[0]]


@dataclass
class Recording:
    """One CWRU recording's drive-end signal at 12 kHz."""

    name: str
    label: str
    load_hp: int
    rpm: float
    signal: FloatArray
    source: Path


def _file_label(stem: str) -> tuple[str, int]:
    m = re.fullmatch(r"(Normal|IR|B|OR)(\d{3})?(?:@6)?_(\d)", stem)
    if not m:
        raise DataMissing(f"not a CWRU file name: {stem}")
    kind, size, load = m.groups()
    return ("normal" if kind == "Normal" else f"{kind}{size}"), int(load)


def read_recording(path: Path) -> Recording:
    """Read one .mat file; the DE variable whose record number matches the RPM variable's is used."""
    label, load = _file_label(path.stem)
    try:
        mat = sio.loadmat(str(path))
    except (OSError, ValueError) as exc:
        raise SignalError(f"{path}: not a readable MATLAB file ({exc})") from None
    rpm_keys = [k for k in mat if re.fullmatch(r"X\d{3}RPM", k)]
    if len(rpm_keys) != 1:
        raise SignalError(f"{path}: expected one XNNNRPM variable, found {rpm_keys}")
    record = rpm_keys[0][1:4]
    de_key = f"X{record}_DE_time"
    if de_key not in mat:
        raise SignalError(f"{path}: no {de_key}")
    x = np.asarray(mat[de_key], dtype=np.float64).ravel()
    rpm = float(np.asarray(mat[rpm_keys[0]]).ravel()[0])
    if label == "normal":  # the baseline exists only at 48 kHz: anti-aliased decimation by 4 (FIR, zero phase)
        x = np.asarray(sps.decimate(x, 4, ftype="fir", zero_phase=True), dtype=np.float64)
    return Recording(path.stem, label, load, rpm, x, path)


def load_recordings(root: Path | None = None, loads: Sequence[int] = (0, 1)) -> list[Recording]:
    """Every recording of the given loads (the normal baseline exists at 0 HP only)."""
    folder = dataset_dir("cwru", root, required=["Normal_0.mat"])
    recs = []
    for path in sorted(folder.glob("*.mat")):
        label, load = _file_label(path.stem)
        if load in loads or label == "normal":
            recs.append(read_recording(path))
    if not recs:
        raise DataMissing(f"no CWRU recordings for loads {list(loads)} in {folder}")
    return recs


def data_hash(root: Path | None = None) -> str:
    """sha256 over the CWRU files used."""
    return files_sha256(dataset_dir("cwru", root).glob("*.mat"))


def windows(x: FloatArray, start: int, stop: int, step: int, size: int = WINDOW) -> FloatArray:
    """Windows of `size` samples fully inside [start, stop), every `step` samples."""
    starts = np.arange(start, stop - size + 1, step)
    if starts.size == 0:
        return np.empty((0, size))
    return np.asarray(np.stack([x[s:s + size] for s in starts]), dtype=np.float64)


def window_features(
    x: FloatArray, fs: float, shaft_hz: float, geometry: BearingGeometry = SKF_6205
) -> FloatArray:
    """Feature vector of one window (see `feature_matrix`)."""
    row: FloatArray = feature_matrix(np.asarray(x, dtype=np.float64)[None, :], shaft_hz, fs, geometry)[0]
    return row


def envelope_targets(geometry: BearingGeometry = SKF_6205) -> list[float]:
    """Orders read in the envelope spectrum: harmonics of BPFO, BPFI, BSF, 2xBSF, then FTF and 1x/2x shaft."""
    orders = geometry.orders()
    targets = [orders["bpfo"] * h for h in (1, 2, 3)] + [orders["bpfi"] * h for h in (1, 2, 3)]
    targets += [orders["bsf"] * h for h in (1, 2, 3)] + [2 * orders["bsf"] * h for h in (1, 2)]
    return [*targets, orders["ftf"], 1.0, 2.0]


def feature_matrix(
    segments: FloatArray, shaft_hz: float, fs: float = FS, geometry: BearingGeometry = SKF_6205
) -> FloatArray:
    """Feature vectors of windows (rows): time statistics, spectral shape, envelope lines at the defect orders.

    - time statistics of the raw window (energy, impulsiveness), signed log;
    - the amplitude spectrum pooled into bands, as log shares of the total (shape, not level: the level
      moves with load);
    - for each envelope band, the envelope-spectrum amplitude at harmonics of BPFO, BPFI, BSF and 2xBSF and
      at FTF and 1x/2x shaft speed, divided by the median of that envelope spectrum (a line-to-floor ratio,
      independent of the overall level), in log; and the envelope's RMS in that band.
    """
    segs = np.asarray(segments, dtype=np.float64)
    if segs.ndim != 2 or segs.shape[1] < 256:
        raise SignalError(f"need windows as rows of at least 256 samples, got shape {segs.shape}")
    if not np.all(np.isfinite(segs)):
        raise SignalError("windows hold NaN or infinite samples")
    n = segs.shape[1]
    tstats = np.stack([time_statistics(w) for w in segs])
    centred = segs - segs.mean(axis=1, keepdims=True)
    hann = np.hanning(n)
    spec = np.abs(np.fft.rfft(centred * hann, axis=1)) * 2.0 / hann.sum()
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    idx = np.searchsorted(freqs, np.linspace(0.0, fs / 2.0, N_SPECTRUM_BANDS + 1))
    power = np.stack([np.sum(spec[:, idx[i]:idx[i + 1]] ** 2, axis=1) for i in range(N_SPECTRUM_BANDS)], axis=1)
    shape = np.log10(power / np.maximum(power.sum(axis=1, keepdims=True), 1e-30) + 1e-12)
    resolution = fs / n
    usable = (freqs > 5.0) & (freqs < 600.0)
    lines = []
    for band in ENVELOPE_BANDS:
        sos = sps.butter(4, band, btype="bandpass", fs=fs, output="sos")
        env = np.abs(sps.hilbert(sps.sosfiltfilt(sos, centred, axis=1), axis=1))
        env -= env.mean(axis=1, keepdims=True)
        es = np.abs(np.fft.rfft(env * hann, axis=1)) * 2.0 / hann.sum()
        floor = np.median(es[:, usable], axis=1) + 1e-12
        for order in envelope_targets(geometry):
            f0 = order * shaft_hz
            tol = max(1.5 * resolution, 0.015 * f0)
            lo, hi = np.searchsorted(freqs, [f0 - tol, f0 + tol])
            amp = es[:, lo:hi + 1].max(axis=1) if hi >= lo else np.zeros(len(segs))
            lines.append(np.log10(amp / floor + 1e-6))
        lines.append(np.log10(np.sqrt(np.mean(es[:, usable] ** 2, axis=1)) + 1e-12))
    signed_log = np.log10(np.abs(tstats) + 1e-9) * np.sign(tstats)
    return np.asarray(np.concatenate([signed_log, shape, np.stack(lines, axis=1)], axis=1), dtype=np.float64)


@dataclass
class Split:
    """Feature matrices and labels of a train/test split, with what it is."""

    name: str
    x_train: FloatArray
    y_train: NDArray[np.int64]
    x_test: FloatArray
    y_test: NDArray[np.int64]
    train_groups: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, dtype=np.int64))


def _rows(rec: Recording, start: int, stop: int, step: int) -> tuple[FloatArray, NDArray[np.int64]]:
    segs = windows(rec.signal, start, stop, step)
    feats = feature_matrix(segs, rec.rpm / 60.0) if len(segs) else np.empty((0, 0))
    return feats, np.full(len(feats), CLASSES.index(rec.label), dtype=np.int64)


def same_load_split(recs: Sequence[Recording], load: int, train_share: float = 0.7, train_step: int = 512) -> Split:
    """Each recording of a load cut in time: first `train_share` trains (overlapping windows), the rest tests
    (non-overlapping windows). Windows never straddle the cut."""
    xs_tr, ys_tr, xs_te, ys_te, groups = [], [], [], [], []
    for gid, rec in enumerate(r for r in recs if r.load_hp == load or r.label == "normal"):
        cut = int(len(rec.signal) * train_share)
        x, y = _rows(rec, 0, cut, train_step)
        xs_tr.append(x)
        ys_tr.append(y)
        groups.append(np.full(len(y), gid))
        x, y = _rows(rec, cut, len(rec.signal), WINDOW)
        xs_te.append(x)
        ys_te.append(y)
    return Split(f"same load {load} HP", np.concatenate(xs_tr), np.concatenate(ys_tr), np.concatenate(xs_te),
                 np.concatenate(ys_te), np.concatenate(groups))


def cross_load_split(recs: Sequence[Recording], train_load: int, test_load: int, train_step: int = 512) -> Split:
    """Fault recordings at `train_load` train, those at `test_load` test. The only normal recording (0 HP)
    is cut in half in time: first half trains, second half tests (no 1 HP normal baseline in this copy)."""
    xs_tr, ys_tr, xs_te, ys_te, groups = [], [], [], [], []
    for gid, rec in enumerate(recs):
        if rec.label == "normal":
            half = len(rec.signal) // 2
            x, y = _rows(rec, 0, half, train_step)
            xs_tr.append(x)
            ys_tr.append(y)
            groups.append(np.full(len(y), gid))
            x, y = _rows(rec, half, len(rec.signal), WINDOW)
            xs_te.append(x)
            ys_te.append(y)
        elif rec.load_hp == train_load:
            x, y = _rows(rec, 0, len(rec.signal), train_step)
            xs_tr.append(x)
            ys_tr.append(y)
            groups.append(np.full(len(y), gid))
        elif rec.load_hp == test_load:
            x, y = _rows(rec, 0, len(rec.signal), WINDOW)
            xs_te.append(x)
            ys_te.append(y)
    return Split(f"train {train_load} HP -> test {test_load} HP", np.concatenate(xs_tr), np.concatenate(ys_tr),
                 np.concatenate(xs_te), np.concatenate(ys_te), np.concatenate(groups))


def make_classifier(seed: int = 0) -> Any:
    """Extremely randomised trees: as accurate as the others tried (random forest, RBF SVM, logistic
    regression all scored the same on time-split validation inside the training load) and the fastest."""
    from sklearn.ensemble import ExtraTreesClassifier

    return ExtraTreesClassifier(n_estimators=300, n_jobs=1, random_state=seed)


@dataclass
class BearingDiagnoser:
    """A fitted classifier over `feature_matrix` vectors of 2,048-sample windows at 12 kHz."""

    model: Any
    geometry: BearingGeometry = SKF_6205

    @classmethod
    def train(cls, x: FloatArray, y: NDArray[np.int64], seed: int = 0) -> BearingDiagnoser:
        return cls(make_classifier(seed).fit(x, y))

    def diagnose(self, segments: FloatArray, shaft_hz: float, fs: float = FS) -> list[tuple[str, float]]:
        """(class, confidence) per window."""
        prob = self.model.predict_proba(feature_matrix(segments, shaft_hz, fs, self.geometry))
        best = prob.argmax(axis=1)
        return [(CLASSES[int(self.model.classes_[b])], float(prob[i, b])) for i, b in enumerate(best)]


@dataclass
class SplitResult:
    """Accuracy of one protocol over seeds, and the confusion matrix of the first seed."""

    name: str
    n_train: int
    n_test: int
    accuracy: list[float]
    macro_f1: list[float]
    location_accuracy: list[float]
    train_seconds: float
    confusion: list[list[int]]


def evaluate_split(split: Split, seeds: Sequence[int] = (0, 1, 2)) -> SplitResult:
    """Train on the split's training side once per seed, test on its test side."""
    from sklearn.metrics import confusion_matrix, f1_score

    acc, f1, loc = [], [], []
    seconds = 0.0
    confusion: list[list[int]] = []
    to_loc = np.array([LOCATIONS.index(location_of(c)) for c in CLASSES])
    for seed in seeds:
        t0 = time.perf_counter()
        model = BearingDiagnoser.train(split.x_train, split.y_train, seed)
        seconds = max(seconds, time.perf_counter() - t0)
        pred = model.model.predict(split.x_test)
        acc.append(float(np.mean(pred == split.y_test)))
        f1.append(float(f1_score(split.y_test, pred, average="macro")))
        loc.append(float(np.mean(to_loc[pred] == to_loc[split.y_test])))
        if not confusion:
            confusion = confusion_matrix(split.y_test, pred, labels=range(len(CLASSES))).tolist()
    return SplitResult(split.name, len(split.y_train), len(split.y_test), acc, f1, loc, seconds, confusion)


def all_windows(recs: Sequence[Recording], train_step: int = 512) -> tuple[FloatArray, NDArray[np.int64]]:
    """Features of every recording end to end: what a production model trains on."""
    xs, ys = [], []
    for rec in recs:
        x, y = _rows(rec, 0, len(rec.signal), train_step)
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)
