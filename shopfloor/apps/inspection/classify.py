"""Defect classification: texture descriptors + an SVM chosen by nested cross-validation.

The model family is fixed in code (signed square root of the features, which turns histogram bins into a
Hellinger-like space, then standardisation, then an SVM); the kernel and C are chosen by an inner 3-fold grid
search run on the training folds only, so the outer 5-fold figures never see their test fold while choosing.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.calibration import CalibratedClassifierCV
from sklearn.metrics import confusion_matrix, f1_score, recall_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import SVC

from shopfloor.apps.inspection.features import FEATURE_VERSION, image_features

FloatArray = NDArray[np.float64]
Progress = Callable[[int], None]

PARAM_GRID: list[dict[str, list[Any]]] = [
    {"svm__kernel": ["linear"], "svm__C": [0.001, 0.003, 0.01, 0.03]},
    {"svm__kernel": ["rbf"], "svm__C": [10.0, 30.0, 100.0], "svm__gamma": ["scale"]},
]


def signed_sqrt(x: FloatArray) -> FloatArray:
    """sign(x) * sqrt(|x|): histogram bins compared like the Hellinger kernel, large values tamed."""
    return np.sign(x) * np.sqrt(np.abs(x))


def extract_features(images: NDArray[np.uint8], cache: Path | None = None, progress: Progress | None = None
                     ) -> FloatArray:
    """Descriptors of every image (N x D); reused from `cache` (an .npz) when it holds the same images."""
    key = f"{FEATURE_VERSION}:{images.shape}:{hashlib.sha256(images.tobytes()).hexdigest()}"
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as stored:
            if str(stored["key"]) == key:
                return np.asarray(stored["features"], dtype=np.float64)
    rows: list[FloatArray] = []
    for image in images:
        rows.append(image_features(image))
        if progress is not None:
            progress(1)
    features = np.stack(rows)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, features=features, key=np.asarray(key))
    return features


def make_search(seed: int = 0, inner_folds: int = 3) -> GridSearchCV:
    """The model and its inner hyper-parameter search (refit on the whole training set it is given)."""
    pipe = Pipeline([
        ("sqrt", FunctionTransformer(signed_sqrt)),
        ("scale", StandardScaler()),
        ("svm", SVC(random_state=seed)),
    ])
    return GridSearchCV(pipe, PARAM_GRID, cv=StratifiedKFold(inner_folds, shuffle=True, random_state=seed),
                        scoring="accuracy", n_jobs=1)


@dataclass
class ClassificationReport:
    """Outer cross-validation result: out-of-fold predictions, metrics and the per-fold choices and timings."""

    predictions: NDArray[np.int64]
    accuracy: float
    macro_f1: float
    per_class_recall: list[float]
    confusion: NDArray[np.int64]
    chosen: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: list[float] = field(default_factory=list)
    predict_ms_per_image: float = 0.0


def cross_validate(features: FloatArray, labels: NDArray[np.int64], folds: int = 5, seed: int = 0,
                   progress: Progress | None = None) -> ClassificationReport:
    """Stratified k-fold CV with every choice (kernel, C) made by the inner search on the training folds."""
    outer = StratifiedKFold(folds, shuffle=True, random_state=seed)
    predictions = np.full(len(labels), -1, dtype=np.int64)
    chosen: list[dict[str, Any]] = []
    train_seconds: list[float] = []
    predict_seconds = 0.0
    for train, test in outer.split(features, labels):
        search = make_search(seed)
        start = time.perf_counter()
        search.fit(features[train], labels[train])
        train_seconds.append(time.perf_counter() - start)
        chosen.append(dict(search.best_params_))
        start = time.perf_counter()
        predictions[test] = search.predict(features[test])
        predict_seconds += time.perf_counter() - start
        if progress is not None:
            progress(1)
    n_classes = int(labels.max()) + 1
    return ClassificationReport(
        predictions=predictions,
        accuracy=float((predictions == labels).mean()),
        macro_f1=float(f1_score(labels, predictions, average="macro")),
        per_class_recall=[float(r) for r in recall_score(labels, predictions, average=None,
                                                         labels=list(range(n_classes)))],
        confusion=confusion_matrix(labels, predictions, labels=list(range(n_classes))).astype(np.int64),
        chosen=chosen,
        train_seconds=train_seconds,
        predict_ms_per_image=1000.0 * predict_seconds / len(labels),
    )


def out_of_fold_scores(features: FloatArray, labels: NDArray[np.int64], folds: int = 5, seed: int = 0
                       ) -> FloatArray:
    """SVM decision values of each image from a model that did not see it (inputs for a second stage)."""
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return np.asarray(cross_val_predict(make_search(seed), features, labels, cv=cv, method="decision_function"),
                      dtype=np.float64)


@dataclass
class DefectClassifier:
    """A trained classifier: image in, class and a confidence out (SVM with sigmoid-calibrated probabilities)."""

    model: CalibratedClassifierCV
    search_best: Pipeline
    classes: tuple[str, ...]

    @classmethod
    def train(cls, features: FloatArray, labels: NDArray[np.int64], classes: tuple[str, ...],
              seed: int = 0) -> DefectClassifier:
        """Choose kernel and C by inner CV, then refit on everything with sigmoid-calibrated probabilities."""
        search = make_search(seed)
        search.fit(features, labels)
        calibrated = CalibratedClassifierCV(search.best_estimator_, method="sigmoid",
                                            cv=StratifiedKFold(3, shuffle=True, random_state=seed), ensemble=False)
        calibrated.fit(features, labels)
        return cls(calibrated, search.best_estimator_, classes)

    def decision_scores(self, features: FloatArray) -> FloatArray:
        """The SVM's decision values (N x classes) of the model chosen by the inner search."""
        return np.asarray(self.search_best.decision_function(np.atleast_2d(features)), dtype=np.float64)

    def probabilities(self, features: FloatArray) -> FloatArray:
        """Class probabilities (N x classes) of precomputed descriptors."""
        return np.asarray(self.model.predict_proba(np.atleast_2d(features)), dtype=np.float64)

    def predict_image(self, image: NDArray[np.uint8]) -> tuple[str, float, FloatArray]:
        """Class name, its probability, and all class probabilities of one grayscale image."""
        proba = self.probabilities(image_features(image))[0]
        k = int(np.argmax(proba))
        return self.classes[k], float(proba[k]), proba
