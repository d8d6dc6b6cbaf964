"""Active learning and label quality (seed 002): ``mis label suggest`` and ``mis label check``.

``suggest`` -- where should the expert label next? The classifier's uncertainty per pixel
(``margin``: 1 - (p1 - p2), the gap between the two most probable classes; ``entropy``:
the class entropy / log K; both 0 = certain, 1 = undecided; from a stored run only
``1 - max probability`` is available) is average-pooled by ``factor`` (8 px), smoothed
with a Gaussian of a quarter region, and the ``k`` highest peaks are taken greedily with
non-maximum suppression: each pick blanks a square of ``spacing`` (default: the region
size) around it, so the regions are spread over the image instead of piling up on one
uncertain grain boundary. Output: a GeoJSON FeatureCollection of square regions in image
pixel coordinates (the convention of ``mis label import``: x = column, y = row, pixel
corners at integers) with rank, score and the predicted class there, and a PNG overview
(the image, the uncertainty in red, numbered boxes).

``check`` -- which labelled pixels are probably wrong? The features of the labelled
pixels (of a stored label set) are sampled (at most ``per_component`` pixels per
connected label stroke/polygon, ``max_samples`` in all), standardised, and each pixel's
``k`` nearest neighbours in feature space (scikit-learn ``NearestNeighbors``) are looked
up among the *other* strokes (pixels of one stroke resemble each other whatever their
label, so they would vouch for each other; a class labelled in one stroke only is checked
against all pixels). A pixel whose neighbours mostly carry another label
(``disagreement >= threshold``) is listed for review with the label its neighbours
suggest; strokes are summarised by their mean disagreement. The check is iterative: the
stroke with the highest mean disagreement (above the threshold) stops voting and the
others are judged again, until none is above -- so a correct stroke whose only
dissenters were a mislabelled stroke is cleared. Output: CSV and GeoJSON
(points at pixel centres).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mis.imagery.imageref import ImageRef, image_ref
from mis.segment.labels import LabelError, read_labels

__all__ = [
    "CheckResult",
    "Region",
    "Suggestions",
    "check_labels",
    "suggest_regions",
    "uncertainty",
]


# =========================================================================== suggest


def uncertainty(proba: torch.Tensor, measure: str = "margin") -> torch.Tensor:
    """(K, ...) probabilities -> uncertainty in [0, 1] (1 = undecided)."""
    if measure == "margin":
        top = torch.topk(proba, 2, dim=0).values
        return 1.0 - (top[0] - top[1])
    if measure == "entropy":
        p = proba.clamp_min(1e-12)
        return -(proba * torch.log(p)).sum(0) / math.log(proba.shape[0])
    raise ValueError(f"unknown uncertainty measure {measure!r}; use margin or entropy")


def _pool(x: torch.Tensor, f: int) -> torch.Tensor:
    """Mean over f x f cells of (C, h, w) (edges: replicate-padded to a multiple of f)."""
    c, h, w = x.shape
    ph, pw = (-h) % f, (-w) % f
    if ph or pw:
        x = torch.nn.functional.pad(x.unsqueeze(0), (0, pw, 0, ph), mode="replicate")[0]
    return torch.nn.functional.avg_pool2d(x.unsqueeze(0), f)[0]


@dataclass
class Region:
    rank: int
    score: float
    x0: int
    y0: int
    x1: int
    y1: int
    predicted: str | None = None  # concept URI most predicted there

    def feature(self, measure: str) -> dict[str, Any]:
        ring = [[self.x0, self.y0], [self.x1, self.y0], [self.x1, self.y1], [self.x0, self.y1], [self.x0, self.y0]]
        return {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {"rank": self.rank, "score": round(self.score, 6), "measure": measure,
                               "predicted_class": self.predicted,
                               "centre_x": (self.x0 + self.x1) / 2, "centre_y": (self.y0 + self.y1) / 2,
                               "width": self.x1 - self.x0, "height": self.y1 - self.y0}}


@dataclass
class Suggestions:
    regions: list[Region]
    measure: str
    factor: int
    uncertainty: np.ndarray  # pooled map (H / factor, W / factor)
    image: ImageRef
    classes: list[str] = field(default_factory=list)

    def geojson(self) -> dict[str, Any]:
        return {"type": "FeatureCollection",
                "mis": {"crs": "image pixels (x = column, y = row, y down)", "measure": self.measure,
                        "image": self.image.image_id if self.image.image_id is not None else self.image.store_uri},
                "features": [r.feature(self.measure) for r in self.regions]}

    def write_geojson(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.geojson(), indent=1))
        return path

    def write_png(self, path: str | Path, max_side: int = 1024) -> Path:
        """The image (a pyramid level no larger than ``max_side``), the uncertainty in
        red, and the numbered regions."""
        from PIL import Image, ImageDraw, ImageFont

        from mis.segment.train import _lowres_level

        low = _lowres_level(self.image.store_uri, max_side).astype(np.float32)
        c, h, w = low.shape
        rgb = low[:3] if c >= 3 else np.repeat(low[:1], 3, 0)
        lo = np.percentile(rgb, 1, axis=(1, 2), keepdims=True)
        hi = np.percentile(rgb, 99, axis=(1, 2), keepdims=True)
        rgb = np.clip((rgb - lo) / np.maximum(hi - lo, 1e-6), 0, 1)
        ut = torch.from_numpy(self.uncertainty[None].astype(np.float32))
        u = torch.nn.functional.interpolate(ut[None], size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()
        top = float(np.percentile(u, 99.5)) if u.size else 1.0
        a = 0.6 * np.clip(u / max(top, 1e-6), 0, 1) ** 2  # the most uncertain areas stand out
        rgb = rgb * (1 - a) + np.stack([a, np.zeros_like(a), np.zeros_like(a)])
        img = Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0))
        draw = ImageDraw.Draw(img)
        font = ImageFont.load_default()
        sy, sx = h / self.image.height, w / self.image.width
        for r in self.regions:
            box = [r.x0 * sx, r.y0 * sy, max(r.x0 * sx + 1, r.x1 * sx - 1), max(r.y0 * sy + 1, r.y1 * sy - 1)]
            draw.rectangle(box, outline=(255, 255, 0), width=2)
            draw.text((box[0] + 3, box[1] + 2), str(r.rank), fill=(255, 255, 0), font=font)
        path = Path(path)
        img.save(path, format="PNG")
        return path


def suggest_regions(
    image: int | str | Path | ImageRef,
    *,
    model: str | Path | None = None,
    run: str | None = None,
    k: int = 10,
    size: int = 128,
    spacing: int | None = None,
    measure: str = "margin",
    factor: int = 8,
    workers: int | None = None,
    device: str | None = None,
    progress: bool = False,
    url: str | None = None,
) -> Suggestions:
    """The ``k`` most uncertain ``size`` x ``size`` regions, spread apart (see the
    module docs). Uncertainty from a model file (computed now) or a stored ``run``."""
    if (model is None) == (run is None):
        raise LabelError("give exactly one of --model or --run")
    if k < 1 or size < 1 or factor < 1:
        raise LabelError("k, size and factor must be >= 1")
    ref = image_ref(image, url)
    _, h, w = ref.shape
    hp, wp = -(-h // factor), -(-w // factor)
    umap = np.zeros((hp, wp), np.float32)
    classes: list[str] = []
    if model is not None:
        from mis.segment.classifiers import load_classifier
        from mis.segment.device import pick_device
        from mis.segment.predict import predict_in_memory

        clf = load_classifier(model, device=pick_device(device))
        classes = list(clf.classes)
        cmap = np.zeros((hp, wp), np.int64)

        def reduce(b: Any, proba: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
            u = _pool(uncertainty(proba, measure)[None], factor)[0]
            pc = _pool(proba, factor).argmax(0)
            return u.float().cpu().numpy(), pc.cpu().numpy()

        if any(s % factor for s in ref.chunks[1:]):
            raise LabelError(f"factor {factor} must divide the chunk size {ref.chunks[1:]}")
        res = predict_in_memory(ref, clf, reduce=reduce, workers=workers, progress=progress)
        from mis.segment.predict import plan_blocks

        for b in plan_blocks(ref.shape, ref.chunks, 1):
            u, pc = res[b.index]
            umap[b.y0 // factor : b.y0 // factor + u.shape[0], b.x0 // factor : b.x0 // factor + u.shape[1]] = u
            cmap[b.y0 // factor : b.y0 // factor + u.shape[0], b.x0 // factor : b.x0 // factor + u.shape[1]] = pc
    else:
        if measure != "margin" and measure != "probability":
            raise LabelError("a stored run has the max probability only: use --model for entropy")
        from mis.segment.predict import prediction_arrays

        if run is None:  # excluded above: exactly one of model / run
            raise LabelError("give exactly one of --model or --run")
        carr, parr, attrs = prediction_arrays(ref.store_uri, run)
        classes = list(attrs["classes"])
        measure = "1 - max probability"
        cy, cx = parr.chunks
        cmap = np.zeros((hp, wp), np.int64)
        for y0 in range(0, h, cy):
            for x0 in range(0, w, cx):
                p = torch.from_numpy(np.asarray(parr[y0 : y0 + cy, x0 : x0 + cx]).astype(np.float32))
                u = _pool(torch.nan_to_num(1.0 - p, nan=0.0)[None], factor)[0].numpy()
                umap[y0 // factor : y0 // factor + u.shape[0], x0 // factor : x0 // factor + u.shape[1]] = u
                c = np.asarray(carr[y0 : y0 + cy : factor, x0 : x0 + cx : factor]).astype(np.int64)
                cmap[y0 // factor : y0 // factor + c.shape[0], x0 // factor : x0 // factor + c.shape[1]] = c
    from scipy import ndimage as ndi

    cells = max(1.0, size / factor)
    smooth = ndi.gaussian_filter(umap, sigma=max(0.5, cells / 4), mode="nearest")
    # a region must fit in the image: restrict centres to where the box fits (if it can)
    half = cells / 2
    valid = np.zeros_like(smooth, bool)
    ylo, yhi = (int(half), max(int(half) + 1, hp - int(half))) if hp > cells else (0, hp)
    xlo, xhi = (int(half), max(int(half) + 1, wp - int(half))) if wp > cells else (0, wp)
    valid[ylo:yhi, xlo:xhi] = True
    score = np.where(valid, smooth, -np.inf)
    gap = max(1, int(round((spacing or size) / factor)))
    regions: list[Region] = []
    for rank in range(1, k + 1):
        i = int(np.argmax(score))
        if not np.isfinite(score.flat[i]):
            break
        py, px = divmod(i, wp)
        cyp, cxp = (py + 0.5) * factor, (px + 0.5) * factor
        x0 = int(round(min(max(0, cxp - size / 2), max(0, w - size))))
        y0 = int(round(min(max(0, cyp - size / 2), max(0, h - size))))
        x1, y1 = min(w, x0 + size), min(h, y0 + size)
        pred = classes[int(cmap[py, px])] if classes and 0 <= int(cmap[py, px]) < len(classes) else None
        regions.append(Region(rank, float(smooth[py, px]), x0, y0, x1, y1, pred))
        score[max(0, py - gap + 1) : py + gap, max(0, px - gap + 1) : px + gap] = -np.inf
    return Suggestions(regions, measure, factor, umap, ref, classes)


# =========================================================================== check


@dataclass
class Suspect:
    row: int
    col: int
    label: str  # URI as labelled
    suggested: str  # URI most neighbours carry
    disagreement: float
    component: int


@dataclass
class CheckResult:
    suspects: list[Suspect]
    components: list[dict[str, Any]]  # per stroke: id, label, suggested, pixels sampled, disagreement, bbox
    sampled: int
    labels_path: str
    image: ImageRef

    def flagged_components(self, threshold: float) -> list[dict[str, Any]]:
        return [c for c in self.components if c["disagreement"] >= threshold]

    def write_csv(self, path: str | Path) -> Path:
        path = Path(path)
        with path.open("w", newline="") as fh:
            wr = csv.writer(fh)
            wr.writerow(["row", "col", "x", "y", "label", "suggested", "disagreement", "component"])
            for s in self.suspects:
                wr.writerow([s.row, s.col, s.col + 0.5, s.row + 0.5, s.label, s.suggested,
                             f"{s.disagreement:.3f}", s.component])
        return path

    def geojson(self) -> dict[str, Any]:
        feats = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [s.col + 0.5, s.row + 0.5]},
                  "properties": {"label": s.label, "suggested": s.suggested,
                                 "disagreement": round(s.disagreement, 3), "component": s.component}}
                 for s in self.suspects]
        return {"type": "FeatureCollection",
                "mis": {"crs": "image pixels (x = column, y = row, y down)", "labels": self.labels_path},
                "features": feats}

    def write_geojson(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.geojson(), indent=1))
        return path


def _components(lab: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected strokes (8-connected, per label value) -> ids 1..n (0 = unlabelled)."""
    from scipy import ndimage as ndi

    out = np.zeros(lab.shape, np.int32)
    n = 0
    for v in np.unique(lab):
        if v == 0:
            continue
        comp, m = ndi.label(lab == v, structure=np.ones((3, 3), bool))
        out[comp > 0] = comp[comp > 0] + n
        n += m
    return out, n


def _votes(ind: np.ndarray, y: np.ndarray, cidx: np.ndarray, excluded: np.ndarray, k: int,
           n_cls: int) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: the fraction of its first ``k`` admissible neighbours (not in an
    excluded stroke; not in its own stroke when its class has other strokes left)
    labelled otherwise, and their majority label."""
    n = len(y)
    alive = ~excluded
    strokes = np.zeros(n_cls + 1, np.int64)
    for v in range(1, n_cls + 1):
        strokes[v] = len(np.unique(cidx[(y == v) & alive[cidx]]))
    nb_c = cidx[ind]
    ok = alive[nb_c] & ((nb_c != cidx[:, None]) | (strokes[y] <= 1)[:, None])
    take = ok & (np.cumsum(ok, axis=1) <= k)
    votes = np.zeros((n, n_cls + 1), np.int64)
    rows = np.repeat(np.arange(n), ind.shape[1])[take.ravel()]
    np.add.at(votes, (rows, y[ind].ravel()[take.ravel()]), 1)
    tot = votes.sum(1)
    agree = votes[np.arange(n), y]
    dis = np.where(tot > 0, 1.0 - agree / np.maximum(tot, 1), 0.0)
    sug = np.where(tot > 0, votes.argmax(1), y)
    return dis, sug


def check_labels(
    image: int | str | Path | ImageRef,
    labels: str = "default",
    *,
    version: int | None = None,
    model: str | Path | None = None,
    features: str = "fast",
    k: int = 10,
    threshold: float = 0.6,
    per_component: int = 50,
    max_samples: int = 20_000,
    seed: int = 0,
    device: str | None = None,
    url: str | None = None,
) -> CheckResult:
    """Labelled pixels whose feature-space neighbours (in other strokes) mostly carry
    another label (see the module docs). Features: the model's (``model``) or a preset."""
    from sklearn.neighbors import NearestNeighbors

    from mis.segment.train import feature_preset, gather_samples

    ref = image_ref(image, url)
    if model is not None:
        from mis.segment.classifiers import load_classifier

        config = load_classifier(model).feature_config
        if config is None:
            raise LabelError(f"{model}: the model has no feature config")
    else:
        config = feature_preset(features, ref.shape[0], ref.store_uri)
    ls = read_labels(ref.store_uri, labels, version)
    lab = ls.read()
    comp, _ = _components(lab)
    samples = gather_samples([ref], labels, config, version=ls.version, device=device, max_per_class=None)
    pos = samples.positions
    if pos is None:
        raise LabelError("the gathered samples carry no pixel positions")
    comp_of = comp[pos[:, 1], pos[:, 2]]
    rng = np.random.default_rng(seed)
    # at most per_component pixels per stroke, then at most max_samples in all
    keep = []
    for c in np.unique(comp_of):
        idx = np.flatnonzero(comp_of == c)
        if len(idx) > per_component:
            idx = rng.choice(idx, per_component, replace=False)
        keep.append(idx)
    sel = np.sort(np.concatenate(keep))
    if len(sel) > max_samples:
        sel = np.sort(rng.choice(sel, max_samples, replace=False))
    X = samples.X[torch.from_numpy(sel)].numpy().astype(np.float64)
    y = samples.y.numpy()[sel]
    cid = comp_of[sel]
    if len(np.unique(y)) < 2:
        raise LabelError(f"{ls.path}: checking needs labels of at least 2 classes")
    X = (X - X.mean(0)) / np.maximum(X.std(0), 1e-12)
    n_cls = len(samples.classes)
    kk = min(len(y) - 1, 3 * k + per_component)
    nn = NearestNeighbors(n_neighbors=kk + 1).fit(X)
    _, ind = nn.kneighbors(X)
    ind = ind[:, 1:]  # drop the pixel itself (first, distance 0)
    comps_u, cidx = np.unique(cid, return_inverse=True)
    disagreement, suggested = _votes(ind, y, cidx, np.zeros(len(comps_u), bool), k, n_cls)
    # iterative cleaning: the worst stroke stops voting, the others are judged again, so a
    # correct stroke that only disagreed with a mislabelled one is cleared
    excluded = np.zeros(len(comps_u), bool)
    final_d, final_s = disagreement.copy(), suggested.copy()
    for _ in range(max(1, len(comps_u) // 2)):
        mean = np.bincount(cidx, weights=disagreement, minlength=len(comps_u)) / np.bincount(cidx)
        mean[excluded] = -1.0
        worst = int(np.argmax(mean))
        if mean[worst] < threshold:
            break
        excluded[worst] = True
        m = cidx == worst
        final_d[m], final_s[m] = disagreement[m], suggested[m]
        disagreement, suggested = _votes(ind, y, cidx, excluded, k, n_cls)
    keep_now = ~excluded[cidx]
    final_d[keep_now], final_s[keep_now] = disagreement[keep_now], suggested[keep_now]
    disagreement, suggested = final_d, final_s
    rows, cols = pos[sel, 1], pos[sel, 2]
    uri = samples.classes
    order = np.argsort(-disagreement, kind="stable")
    suspects = [Suspect(int(rows[i]), int(cols[i]), uri[y[i] - 1], uri[suggested[i] - 1], float(disagreement[i]),
                        int(cid[i])) for i in order if disagreement[i] >= threshold]
    from scipy import ndimage as ndi

    boxes = ndi.find_objects(comp)
    sizes = np.bincount(comp.ravel())
    comps: list[dict[str, Any]] = []
    for c in np.unique(cid):
        m = cid == c
        lab_c = int(np.bincount(y[m]).argmax())
        sug_c = int(np.bincount(suggested[m], minlength=n_cls + 1).argmax())
        sy, sx = boxes[c - 1]
        comps.append({"component": int(c), "label": uri[lab_c - 1], "suggested": uri[sug_c - 1],
                      "sampled": int(m.sum()), "pixels": int(sizes[c]), "disagreement": float(disagreement[m].mean()),
                      "bbox": [int(sx.start), int(sy.start), int(sx.stop), int(sy.stop)]})
    comps.sort(key=lambda d: -d["disagreement"])
    return CheckResult(suspects, comps, int(len(sel)), ls.path, ref)
