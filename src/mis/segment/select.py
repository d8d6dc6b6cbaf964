"""Choose the feature set from the user's own scribbles: ``mis train --features auto``.

A default tuned on one kind of section does not transfer (coarse textures need large
scales, colour-only pairs need none, noisy images need smoothing). So instead of one
fixed preset, a small family of candidate feature sets (:data:`CANDIDATES`, from colour
alone to multi-scale intensity / edge / texture banks comparable in coverage to
scikit-image's sigma 1..16) is scored by **cross-validation over held-out strokes**:

* the labelled pixels are grouped into strokes -- 8-connected components of labelled
  pixels (:func:`stroke_groups`) -- because neighbouring pixels of one stroke are
  near-duplicates: a pixel-wise split would score memorisation, not generalisation;
* strokes are dealt into ``folds`` folds class by class (so each fold holds strokes of
  every class that has enough of them); a class with fewer strokes than folds has its
  strokes cut into pieces along their length first;
* every candidate is trained on the other folds' pixels and predicts the held-out
  strokes (a small random forest, one per candidate and fold, fitted in parallel
  threads; at most ``max_per_class`` pixels per class and fold);
  its score is the macro F1 of all held-out predictions pooled;
* candidates within ``tolerance`` (0.02) of the best score count as tied and the
  cheapest of those (:func:`filter_cost`, then the smallest halo) is chosen. Scribbles
  lie inside grains, so held-out strokes never test the pixels next to a grain
  boundary, where large-scale filters mix neighbouring grains; on the benchmark suite
  the larger feature sets won the cross-validation by a few thousandths and then lost
  on the dense truth by a few hundredths -- so more scales must earn their place by a
  clear margin.

All candidates share their global settings (truncation, derivative scheme,
structure-tensor ratio), so the features of the **union** of the candidates are
computed once and each candidate is a subset of its columns -- the same numbers its own
config would give. The choice, the scores, the number of folds and strokes are recorded
in the model file (``metadata["feature_selection"]``) and printed by ``mis train``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from mis.segment.config import FeatureConfig
from mis.segment.filters import feature_names, filter_halo

__all__ = ["CANDIDATES", "Selection", "candidate_columns", "filter_cost", "select_features", "stroke_groups",
           "union_config"]

#: trees of the cross-validation forests (depth 10, as the default classifier)
CV_TREES = 10


def _candidate(filters: dict[str, tuple[float, ...]]) -> FeatureConfig:
    """A candidate with the settings every candidate shares (no raw band, truncation
    3 sigma, structure-tensor outer scale 3 sigma, difference derivatives)."""
    return FeatureConfig(filters=filters, include_raw=False, truncate=3.0, st_outer_ratio=3.0,
                         derivatives="difference")


#: The candidate family, cheapest first: ``gaussian`` is colour/intensity at that
#: smoothing, ``gradmag`` edges, ``hess_eig`` blob/ridge shape, ``st_eig`` at sigma s
#: texture energy (gradient energy integrated over 3 s). ``broad`` covers what
#: scikit-image's ``multiscale_basic_features`` covers (intensity, edges, Hessian texture
#: at sigma 1, 2, 4, 8, 16).
CANDIDATES: dict[str, FeatureConfig] = {
    "colour": _candidate({"gaussian": (1.0,)}),
    "edges": _candidate({"gaussian": (1.0,), "gradmag": (1.0, 2.0, 4.0)}),
    "fine": _candidate({"gaussian": (1.0,), "st_eig": (0.7,)}),
    "medium": _candidate({"gaussian": (1.0, 2.0, 4.0), "gradmag": (2.0, 4.0), "st_eig": (0.7,)}),
    "broad": _candidate({f: (1.0, 2.0, 4.0, 8.0, 16.0) for f in ("gaussian", "gradmag", "hess_eig")}),
}


def union_config(candidates: dict[str, FeatureConfig]) -> FeatureConfig:
    """One config computing every filter/scale of every candidate (their global
    settings must agree, so that columns are interchangeable)."""
    first = next(iter(candidates.values()))
    keys = ("include_raw", "truncate", "st_outer_ratio", "dog_ratio", "derivatives")
    filters: dict[str, set[float]] = {}
    for name, c in candidates.items():
        if any(getattr(c, k) != getattr(first, k) for k in keys) or c.cnn is not None:
            raise ValueError(f"candidate {name!r}: global feature settings differ from the others'")
        for f, sig in c.filters.items():
            filters.setdefault(f, set()).update(sig)
    return FeatureConfig(filters={f: tuple(s) for f, s in filters.items()}, **{k: getattr(first, k) for k in keys})


def candidate_columns(candidate: FeatureConfig, union: FeatureConfig, n_bands: int) -> list[int]:
    """Indices of the candidate's features among the union's (by feature name)."""
    pos = {n: i for i, n in enumerate(feature_names(union, n_bands))}
    return [pos[n] for n in feature_names(candidate, n_bands)]


def filter_cost(config: FeatureConfig) -> float:
    """Kernel taps per pixel and band of the filter bank (a machine-independent
    measure of its compute): one Gaussian per scale (derivatives are differences of it
    or Gaussian-derivative kernels of the same size), the structure tensor's three
    products smoothed at ``st_outer_ratio`` x sigma, a second Gaussian per DoG."""
    t = config.truncate
    taps = lambda s: 2 * math.ceil(t * s) + 1  # noqa: E731
    scales = {s for sig in config.filters.values() for s in sig}
    cost = sum(2 * taps(s) for s in scales)
    cost += sum(3 * 2 * taps(config.st_outer_ratio * s) for s in config.filters.get("st_eig", ()))
    cost += sum(2 * taps(config.dog_ratio * s) for s in config.filters.get("dog", ()))
    return float(cost + 4 * sum(len(s) for s in config.filters.values()))


def stroke_groups(positions: np.ndarray) -> np.ndarray:
    """Stroke id per labelled pixel: 8-connected components of the pixels
    ``positions`` (N, 3) = (image number, row, column)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pos = np.asarray(positions, np.int64)
    n = len(pos)
    if n == 0:
        return np.zeros(0, np.int64)
    w = int(pos[:, 2].max()) + 3
    h = int(pos[:, 1].max()) + 3
    key = (pos[:, 0] * h + pos[:, 1] + 1) * w + pos[:, 2] + 1
    order = np.argsort(key)
    sk = key[order]
    rows, cols = [], []
    for dy, dx in ((0, 1), (1, -1), (1, 0), (1, 1)):
        nk = key + dy * w + dx
        j = np.searchsorted(sk, nk)
        j[j >= n] = n - 1
        hit = sk[j] == nk
        rows.append(np.flatnonzero(hit))
        cols.append(order[j[hit]])
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r), np.int8), (r, c)), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)


def _fold_plan(groups: np.ndarray, y: np.ndarray, positions: np.ndarray, folds: int,
               rng: np.random.Generator) -> np.ndarray:
    """Fold id per pixel: strokes dealt class by class (a stroke's class is its most
    frequent label); a class with fewer strokes than folds has each stroke cut into
    pieces along its main axis."""
    fold = np.full(len(y), -1, np.int64)
    if len(y) == 0:
        return fold
    order = np.argsort(groups, kind="stable")
    members = np.split(order, np.flatnonzero(np.diff(groups[order])) + 1)
    major = np.array([np.bincount(y[m]).argmax() for m in members])
    for k in np.unique(major):
        strokes = [members[i] for i in np.flatnonzero(major == k)]
        cut = -(-folds // len(strokes))
        pieces: list[np.ndarray] = []
        for idx in strokes:
            if cut > 1 and len(idx) >= cut:
                p = positions[idx, 1:].astype(np.float64)
                p -= p.mean(0)
                axis = np.linalg.svd(p, full_matrices=False)[2][0]
                t = np.argsort(p @ axis)
                pieces += [idx[t[s]] for s in np.array_split(np.arange(len(idx)), cut)]
            else:
                pieces.append(idx)
        start = int(rng.integers(folds))
        for j, i in enumerate(rng.permutation(len(pieces))):
            fold[pieces[i]] = (start + j) % folds
    return fold


@dataclass
class Selection:
    """What :func:`select_features` chose, and why."""

    name: str
    config: FeatureConfig
    scores: dict[str, float]
    folds: int
    strokes: int
    columns: list[int]
    tolerance: float

    def summary(self) -> str:
        """``macro F1 of held-out strokes (4 folds, 120 strokes): colour 0.981, ...``"""
        s = ", ".join(f"{k} {v:.3f}" for k, v in self.scores.items())
        return f"macro F1 of held-out strokes ({self.folds} folds, {self.strokes} strokes): {s}"

    def to_metadata(self) -> dict:
        return {"chosen": self.name, "scores": self.scores, "folds": self.folds, "strokes": self.strokes,
                "tolerance": self.tolerance,
                "method": f"group k-fold over 8-connected strokes, macro F1 of held-out strokes, random forest "
                          f"{CV_TREES} trees depth 10; the cheapest candidate within the tolerance of the best"}


def _macro_f1(y: np.ndarray, p: np.ndarray, k: int) -> float:
    cm = np.bincount(y * (k + 1) + p, minlength=(k + 1) ** 2).reshape(k + 1, k + 1)[1:, 1:]
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(0) + cm.sum(1)
    present = cm.sum(1) > 0
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(f1[present].mean()) if present.any() else 0.0


def select_features(
    X: torch.Tensor,
    y: torch.Tensor,
    positions: np.ndarray,
    n_bands: int,
    candidates: dict[str, FeatureConfig] | None = None,
    *,
    folds: int = 4,
    max_per_class: int = 2000,
    tolerance: float = 0.02,
    seed: int = 0,
) -> Selection:
    """Score every candidate by held-out-stroke cross-validation (see the module docs).
    ``X`` (N, F) are the features of :func:`union_config` of ``candidates`` at the
    labelled pixels, ``y`` (N,) labels 1..K, ``positions`` (N, 3) (image, row, column)."""
    from sklearn.ensemble import RandomForestClassifier

    candidates = candidates or CANDIDATES
    union = union_config(candidates)
    Xn = X.numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
    yn = y.numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if Xn.shape[1] != len(feature_names(union, n_bands)):
        raise ValueError(
            f"X has {Xn.shape[1]} columns, the union of the candidates {len(feature_names(union, n_bands))}"
        )
    rng = np.random.default_rng(seed)
    groups = stroke_groups(positions)
    fold = _fold_plan(groups, yn, positions, folds, rng)
    k = int(yn.max())
    cols = {name: candidate_columns(c, union, n_bands) for name, c in candidates.items()}
    # per fold: a class-balanced subsample of the training pixels (speed), the test pixels
    plans = []
    for f in range(folds):
        test = np.flatnonzero(fold == f)
        train = np.flatnonzero(fold != f)
        if len(test) == 0 or len(train) == 0:
            continue
        keep = []
        for c in np.unique(yn[train]):
            idx = train[yn[train] == c]
            keep.append(idx if len(idx) <= max_per_class else rng.choice(idx, max_per_class, replace=False))
        tsub = test
        if len(test) > max_per_class * k:
            tsub = np.sort(rng.choice(test, max_per_class * k, replace=False))
        plans.append((np.sort(np.concatenate(keep)), tsub))

    def fold_predictions(task: tuple[str, int]) -> np.ndarray:
        name, i = task
        train, test = plans[i]
        rf = RandomForestClassifier(n_estimators=CV_TREES, max_depth=10, n_jobs=1, random_state=seed)
        columns = np.asarray(cols[name], dtype=np.intp)
        rf.fit(Xn[np.ix_(train, columns)], yn[train])
        return rf.predict(Xn[np.ix_(test, columns)]).astype(np.int64)

    # (candidate, fold) fits in threads: scikit-learn builds trees without the GIL, and
    # one thread per fit avoids joblib's per-fit start-up and synchronisation
    from concurrent.futures import ThreadPoolExecutor

    tasks = [(name, i) for name in cols for i in range(len(plans))]
    with ThreadPoolExecutor(max(1, min(len(tasks), os.cpu_count() or 1))) as ex:
        preds = dict(zip(tasks, ex.map(fold_predictions, tasks), strict=True))
    if not plans:
        raise ValueError("cross-validation needs labelled pixels in at least two folds")
    truth = np.concatenate([yn[test] for _, test in plans])
    scores = {name: _macro_f1(truth, np.concatenate([preds[(name, i)] for i in range(len(plans))]), k)
              for name in cols}
    best = max(scores.values())
    tied = [n for n in candidates if scores[n] >= best - tolerance]
    name = min(tied, key=lambda n: (filter_cost(candidates[n]), filter_halo(candidates[n])))
    return Selection(name, candidates[name], scores, len(plans), int(len(np.unique(groups))), cols[name], tolerance)
