"""Device throughput of segmentation, with as few imports as possible (numpy, scipy,
torch, scikit-learn for fitting, pydantic for the feature config; no database, no zarr):
what ``bench/bench_segmentation.py --device cuda`` reports.

* **features + predict** (MPix/s): the default feature candidates
  (:data:`mis.segment.select.CANDIDATES`) with the default random forest (16 trees,
  depth 10) and the MLP, on an N x N RGB image held on the device, in blocks of
  2048 x 2048 (what ``mis predict`` computes per task on a GPU: 4 x 4 chunks), timed
  with the device synchronised; the first block is a warm-up (kernel selection,
  ``torch.compile`` of the forest).
* **whole image vs reading it**: the same image as a chunked store in memory
  (:class:`ChunkStore`: 512 x 512 chunks, each zlib-compressed as a chunk of an
  OME-Zarr store is compressed) -- the time to read (decompress) every chunk once, and
  the time to segment the whole image the way ``mis predict`` does on a GPU (blocks of
  4 x 4 chunks read with their halo by 4 threads, compute serialised on the device while
  the others read, classes and probabilities compressed back into chunks). Target: the
  segmentation takes at most twice the reading.
"""

from __future__ import annotations

import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from mis.segment.classifiers import MLPPixelClassifier, PixelClassifier, RandomForestPixelClassifier, training_data
from mis.segment.config import FeatureConfig
from mis.segment.filters import compute_features, halo
from mis.segment.predict import _labels_and_probability, block_probabilities, plan_blocks
from mis.segment.select import CANDIDATES
from mis.segment.varied import SUITE, make_section

__all__ = ["ChunkStore", "compare_devices", "device_report", "features_predict_rate", "segment_store",
           "tiled_section"]

#: targets of the issue
TARGET_MPIX_S = 100.0
TARGET_READ_RATIO = 2.0
#: GPU-vs-CPU tolerances (see :func:`compare_devices`)
FEATURE_RTOL = 1e-4
PROBA_ATOL = 1e-3
FOREST_AGREEMENT = 0.999
FOREST_MEAN_ATOL = 1e-4


class ChunkStore:
    """A (c, H, W) uint8/uint16 image as zlib-compressed chunks in memory, sliced like a
    zarr array (``store[:, y0:y1, x0:x1]`` decompresses the chunks it touches)."""

    def __init__(self, image: np.ndarray, chunk: int = 512, level: int = 1) -> None:
        self.shape = tuple(int(v) for v in image.shape)
        self.dtype = image.dtype
        self.chunks = (self.shape[0], chunk, chunk)
        c, h, w = self.shape
        self._data: dict[tuple[int, int], tuple[bytes, tuple[int, ...]]] = {}
        for iy in range(0, h, chunk):
            for ix in range(0, w, chunk):
                block = np.ascontiguousarray(image[:, iy : iy + chunk, ix : ix + chunk])
                self._data[(iy // chunk, ix // chunk)] = (zlib.compress(block.tobytes(), level), block.shape)

    def chunk(self, iy: int, ix: int) -> np.ndarray:
        raw, shape = self._data[(iy, ix)]
        return np.frombuffer(zlib.decompress(raw), dtype=self.dtype).reshape(shape)

    def __getitem__(self, key: tuple[slice, slice, slice]) -> np.ndarray:
        _, ys, xs = key
        c, h, w = self.shape
        y0, y1, _ = ys.indices(h)
        x0, x1, _ = xs.indices(w)
        cy = self.chunks[1]
        out = np.empty((c, y1 - y0, x1 - x0), self.dtype)
        for iy in range(y0 // cy, -(-y1 // cy)):
            for ix in range(x0 // cy, -(-x1 // cy)):
                ch = self.chunk(iy, ix)
                ay, ax = iy * cy, ix * cy
                sy0, sy1 = max(y0, ay), min(y1, ay + ch.shape[1])
                sx0, sx1 = max(x0, ax), min(x1, ax + ch.shape[2])
                out[:, sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = ch[:, sy0 - ay : sy1 - ay, sx0 - ax : sx1 - ax]
        return out

    def read_all(self) -> int:
        """Decompress every chunk once (the 'just read it' baseline); returns bytes read."""
        n = 0
        for iy, ix in self._data:
            n += self.chunk(iy, ix).nbytes
        return n


def tiled_section(n: int, tile: int = 2048, seed_index: int = 0) -> tuple[np.ndarray, Any]:
    """An N x N RGB uint8 image made by tiling one suite section of ``tile`` x ``tile``
    (realistic content, generated in seconds), and that section (training data)."""
    spec = [s for s in SUITE if s.n_bands == 3][seed_index]
    sec = make_section(spec, (min(n, tile), min(n, tile)))
    reps = -(-n // sec.image.shape[1])
    big = np.tile(sec.image, (1, reps, reps))[:, :n, :n]
    return np.ascontiguousarray(big), sec


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def fit_models(sec: Any, config: FeatureConfig, dev: torch.device) -> dict[str, PixelClassifier]:
    """The default random forest (16 trees, depth 10) and the MLP, fitted on the
    section's scribbles (features on the CPU), moved to ``dev``."""
    f, names = compute_features(sec.image, config)
    X, y = training_data(f, sec.scribbles)
    models = _classifiers(sec, config, names)
    return {k: models[k].fit(X, y).to(dev) for k in ("rf", "mlp")}


@torch.no_grad()
def features_predict_rate(image: np.ndarray, clf: PixelClassifier, dev: torch.device, block: int = 2048) -> float:
    """MPix/s of features + class probabilities + labels over the image in blocks of
    ``block`` (+ halo), the image already on the device; the first block is a warm-up."""
    x = torch.from_numpy(image).to(dev)
    _, h, w = x.shape
    cfg = clf.feature_config
    if cfg is None:
        raise ValueError(f"{type(clf).__name__} has no feature config: cannot compute its features")
    hal = halo(cfg)

    def one(y0: int, x0: int) -> None:
        ya, yb = max(0, y0 - hal), min(h, y0 + block + hal)
        xa, xb = max(0, x0 - hal), min(w, x0 + block + hal)
        f, _ = compute_features(x[:, ya:yb, xa:xb], cfg, device=dev)
        p = clf.predict_proba(f[:, y0 - ya : min(h, y0 + block) - ya, x0 - xa : min(w, x0 + block) - xa])
        p.argmax(0)

    one(0, 0)
    _sync(dev)
    t = time.perf_counter()
    for y0 in range(0, h, block):
        for x0 in range(0, w, block):
            one(y0, x0)
    _sync(dev)
    return h * w / 1e6 / (time.perf_counter() - t)


def segment_store(store: ChunkStore, clf: PixelClassifier, block: int = 4, workers: int = 4) -> float:
    """Seconds to segment the whole store as ``mis predict`` does on a GPU (blocks of
    ``block`` x ``block`` chunks, ``workers`` threads, outputs compressed as chunks)."""
    blocks = plan_blocks(store.shape, store.chunks, block)
    out: dict[tuple[int, int], tuple[bytes, bytes]] = {}

    def task(b: Any) -> None:
        proba = block_probabilities(store, clf, b)
        lab, best = _labels_and_probability(proba, np.dtype(np.uint8))
        out[b.index] = (zlib.compress(lab.tobytes(), 1), zlib.compress(best.tobytes(), 1))

    task(blocks[0])  # warm-up
    _sync(clf.device or torch.device("cpu"))
    t = time.perf_counter()
    with ThreadPoolExecutor(workers) as ex:
        list(ex.map(task, blocks))
    _sync(clf.device or torch.device("cpu"))
    return time.perf_counter() - t


def _classifiers(sec: Any, config: FeatureConfig, names: list[str]) -> dict[str, PixelClassifier]:
    from mis.segment.classifiers import MultiGaussianClassifier

    return {"rf": RandomForestPixelClassifier(sec.classes, config, names, n_estimators=16, max_depth=10,
                                              random_state=0),
            "mlp": MLPPixelClassifier(sec.classes, config, names, epochs=40),
            "mgc": MultiGaussianClassifier(sec.classes, config, names)}


def compare_devices(sec: Any, dev: torch.device | str, candidates: dict[str, FeatureConfig] | None = None
                    ) -> list[dict[str, Any]]:
    """GPU (``dev``) vs CPU, per feature candidate and classifier fitted on the CPU
    features of ``sec``'s scribbles. Each row: ``feature_rel_err`` (max
    ``|dev - cpu| / (1 + |cpu|)``), ``proba_max_abs``, ``proba_mean_abs``,
    ``label_agreement`` (fraction of pixels), ``clear_labels_equal`` (labels equal
    wherever the CPU's best class leads by > ``PROBA_ATOL``), ``same_input_max_abs``
    (the classifier on the device fed the CPU's features) and ``ok`` against the
    tolerances: features <= ``FEATURE_RTOL``; MLP/MultiGaussian probabilities <=
    ``PROBA_ATOL`` with clear labels equal; the forest (a pixel within float rounding
    of a split may take the other branch in one tree, moving its probability by
    1 / trees) labels agreeing on >= ``FOREST_AGREEMENT`` of the pixels, mean
    probability difference <= ``FOREST_MEAN_ATOL`` and the same features giving the
    same probabilities (<= 1e-6)."""
    rows = []
    for name, cfg in (candidates or CANDIDATES).items():
        f_cpu, names = compute_features(sec.image, cfg, device="cpu")
        f_dev, _ = compute_features(sec.image, cfg, device=dev)
        ferr = float(((f_dev.cpu() - f_cpu).abs() / (1 + f_cpu.abs())).max())
        X, y = training_data(f_cpu, sec.scribbles)
        for kind, clf in _classifiers(sec, cfg, names).items():
            clf.fit(X, y)
            p_cpu = clf.predict_proba(f_cpu)
            clf.to(dev)
            p_dev = clf.predict_proba(f_dev).cpu()
            same = float((clf.predict_proba(f_cpu.to(dev)).cpu() - p_cpu).abs().max())
            clf.to("cpu")
            d = (p_dev - p_cpu).abs()
            top = p_cpu.topk(2, dim=0).values
            clear = (top[0] - top[1]) > PROBA_ATOL
            lab_cpu, lab_dev = p_cpu.argmax(0), p_dev.argmax(0)
            proba_max, proba_mean = float(d.max()), float(d.mean())
            agreement = float((lab_cpu == lab_dev).float().mean())
            clear_equal = bool(torch.equal(lab_cpu[clear], lab_dev[clear]))
            row: dict[str, Any] = {"features": name, "classifier": kind, "feature_rel_err": ferr,
                                   "proba_max_abs": proba_max, "proba_mean_abs": proba_mean,
                                   "label_agreement": agreement, "clear_labels_equal": clear_equal,
                                   "same_input_max_abs": same}
            if kind == "rf":
                ok = agreement >= FOREST_AGREEMENT and proba_mean <= FOREST_MEAN_ATOL and same <= 1e-6
            else:
                ok = proba_max <= PROBA_ATOL and clear_equal
            row["ok"] = bool(ok and ferr <= FEATURE_RTOL)
            rows.append(row)
    return rows


def device_report(dev: torch.device, n: int = 8192) -> tuple[str, bool]:
    """The throughput report (text) on ``dev`` for an ``n`` x ``n`` RGB image, and
    whether the device's predictions equal the CPU's (:func:`compare_devices`)."""
    lines = []
    t = time.perf_counter()
    image, sec = tiled_section(n)
    lines.append(f"image: {n} x {n} RGB uint8 ({n * n / 1e6:.1f} MPix), tiled from suite section "
                 f"'{[s for s in SUITE if s.n_bands == 3][0].name}', made in {time.perf_counter() - t:.1f} s")
    store = ChunkStore(image)
    t = time.perf_counter()
    nbytes = store.read_all()
    t_read = time.perf_counter() - t
    lines.append(f"read every chunk once (zlib, 512 x 512): {t_read:.2f} s ({nbytes / 1e6 / t_read:.0f} MB/s)")
    lines.append("")
    lines.append(f"{'features':<8} {'F':>4} {'halo':>4} {'classifier':<10} {'MPix/s':>8} {'target':>7} "
                 f"{'whole s':>8} {'x read':>7} {'target':>7}")
    for name, cfg in CANDIDATES.items():
        models = fit_models(sec, cfg, dev)
        for kind, clf in models.items():
            rate = features_predict_rate(image, clf, dev)
            t_seg = segment_store(store, clf)
            ratio = t_seg / t_read
            lines.append(f"{name:<8} {clf.n_features:>4} {halo(cfg):>4} {kind:<10} {rate:8.1f} "
                         f"{'MET' if rate >= TARGET_MPIX_S else 'MISSED':>7} {t_seg:8.2f} {ratio:7.2f} "
                         f"{'MET' if ratio <= TARGET_READ_RATIO else 'MISSED':>7}")
    lines.append(f"targets: features + predict >= {TARGET_MPIX_S:.0f} MPix/s; whole-image segmentation <= "
                 f"{TARGET_READ_RATIO:.0f}x reading its chunks")
    lines.append("")
    lines.append(f"{dev} vs cpu on a 384 x 448 section (tolerances: features {FEATURE_RTOL:g} relative; "
                 f"mlp/mgc probabilities {PROBA_ATOL:g}; rf labels >= {100 * FOREST_AGREEMENT:g} %, mean "
                 f"|dp| <= {FOREST_MEAN_ATOL:g})")
    small = make_section(next(s for s in SUITE if s.name == "coarse-texture-pair"), (384, 448))
    rows = compare_devices(small, dev)
    for r in rows:
        lines.append(f"  {r['features']:<8} {r['classifier']:<4} features {r['feature_rel_err']:.1e}  p max "
                     f"{r['proba_max_abs']:.1e} mean {r['proba_mean_abs']:.1e}  labels "
                     f"{100 * r['label_agreement']:.3f} %  {'OK' if r['ok'] else 'FAILED'}")
    ok = all(r["ok"] for r in rows)
    lines.append(f"{dev} predictions {'equal' if ok else 'DIFFER FROM'} the CPU's within the tolerances")
    return "\n".join(lines), ok
