"""Synthetic polished/thin sections with ground truth, for tests and benchmarks.

Two generators, both deterministic for a given ``seed`` and built from numpy, scipy
(a scikit-image dependency) and scikit-image only:

* :func:`synthetic_section` -- an RGB (3, H, W) ``uint8`` "reflected-light" image of
  mineral grains of ``n_classes`` kinds. Grains are warped Voronoi cells; each mineral
  has its own colour *and* texture, and two of them (quartz and sphalerite here) share
  nearly the same colour so that only texture tells them apart. The image is blurred
  (optics) and gets sensor noise. Returns the dense ground truth (H, W) with labels
  ``1..K`` and sparse *scribbles* (H, W): short strokes drawn inside a few grains of
  every class, covering at most ``scribble_fraction`` of the pixels (<= 1 %), 0 =
  unlabelled -- what a user draws in an annotation tool.
* :func:`synthetic_multispectral` -- an (N, H, W) ``uint16`` 12-bit multispectral image
  in which each class has a mean spectrum and a full band-to-band covariance, the
  classes overlapping in every single band but separated in the N-dimensional space
  (the MultiGaussian maximum-likelihood case of seed 000).

Class labels are 1-based and index ``classes`` (a list of concept-like URIs): label
``k`` is ``classes[k - 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

__all__ = [
    "MINERALS",
    "SyntheticSection",
    "synthetic_multispectral",
    "synthetic_section",
    "voronoi_grains",
]

URI_PREFIX = "urn:mis:synthetic:mineral:"

#: name, mean RGB, texture kind, texture strength. Quartz and sphalerite differ only
#: by texture (smooth vs fine speckle); galena has cleavage lamellae; pyrite pits;
#: magnetite a coarse mottling; the rest are extra colours for K > 6.
MINERALS: list[tuple[str, tuple[int, int, int], str, float]] = [
    ("quartz", (112, 112, 118), "smooth", 3.0),
    ("chalcopyrite", (196, 176, 70), "smooth", 4.0),
    ("sphalerite", (118, 116, 118), "speckle", 22.0),
    ("galena", (205, 205, 210), "lamellae", 28.0),
    ("pyrite", (214, 204, 150), "pits", 90.0),
    ("magnetite", (150, 138, 136), "mottled", 26.0),
    ("bornite", (170, 120, 110), "speckle", 12.0),
    ("covellite", (90, 110, 170), "lamellae", 20.0),
    ("hematite", (160, 160, 175), "pits", 60.0),
    ("ilmenite", (130, 125, 150), "mottled", 18.0),
]


@dataclass
class SyntheticSection:
    """A synthetic image with its truth. ``image`` is (C, H, W); labels are 1..K."""

    image: np.ndarray
    truth: np.ndarray
    scribbles: np.ndarray
    classes: list[str]
    grains: np.ndarray = field(repr=False)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def scribble_fraction(self) -> float:
        return float((self.scribbles > 0).mean())


def voronoi_grains(
    shape: tuple[int, int], grain_size: float, rng: np.random.Generator, warp: float = 0.25
) -> np.ndarray:
    """Grain ids (H, W) int32 ``0..n-1``: Voronoi cells of random seeds whose boundaries
    are bent by a smooth random displacement field (``warp`` x ``grain_size`` pixels),
    so grains look like blobs rather than polygons."""
    h, w = shape
    n = max(2, int(round(h * w / (grain_size**2))))
    seeds = rng.random((n, 2)) * (h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if warp > 0:
        s = max(grain_size / 2.5, 1.0)
        for arr in (yy, xx):
            d = ndi.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32), s)
            d *= warp * grain_size / (d.std() + 1e-12)
            arr += d
    _, ids = cKDTree(seeds).query(np.stack([yy.ravel(), xx.ravel()], 1), workers=-1)
    return ids.reshape(h, w).astype(np.int32)


def _texture(kind: str, strength: float, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    h, w = shape
    if kind == "smooth":
        return rng.standard_normal(shape).astype(np.float32) * strength
    if kind == "speckle":
        return rng.standard_normal(shape).astype(np.float32) * strength
    if kind == "mottled":
        t = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 3.0)
        return t * (strength / (t.std() + 1e-12))
    if kind == "pits":
        t = np.zeros(shape, np.float32)
        t[rng.random(shape) < 0.015] = -strength
        return ndi.gaussian_filter(t, 0.8) * 4.0
    if kind == "lamellae":
        return np.zeros(shape, np.float32)  # per grain, see _lamellae
    raise ValueError(f"unknown texture {kind!r}")


def _lamellae(mask_yx: tuple[np.ndarray, np.ndarray], strength: float, rng: np.random.Generator) -> np.ndarray:
    yy, xx = mask_yx
    theta = rng.random() * np.pi
    period = rng.uniform(5.0, 8.0)
    phase = rng.random() * 2 * np.pi
    u = yy * np.cos(theta) + xx * np.sin(theta)
    return (strength * np.sin(2 * np.pi * u / period + phase)).astype(np.float32)


def _scribbles(
    truth: np.ndarray,
    grains: np.ndarray,
    n_classes: int,
    fraction: float,
    rng: np.random.Generator,
    strokes_per_class: int = 6,
) -> np.ndarray:
    """Short thick strokes inside the interior (eroded) of random grains of each class,
    stopping when a class has used its share of the pixel budget."""
    from skimage.draw import line as draw_line
    from skimage.morphology import disk

    h, w = truth.shape
    budget = int(fraction * h * w)
    per_class = max(1, budget // n_classes)
    out = np.zeros_like(truth, dtype=np.uint8 if n_classes < 255 else np.int32)
    objects = ndi.find_objects(grains + 1)
    grain_class = np.zeros(len(objects), np.int64)
    for gid, sl in enumerate(objects):
        if sl is not None:
            grain_class[gid] = np.bincount(truth[sl][grains[sl] == gid]).argmax()
    footprint = disk(1)
    for k in range(1, n_classes + 1):
        gids = np.flatnonzero(grain_class == k)
        rng.shuffle(gids)
        sizes = np.array([(grains[objects[g]] == g).sum() for g in gids])
        # random grains first; then, should a class have no grain with room inside,
        # its largest grains with a thinner margin
        tries = [(g, 4) for g in gids[: strokes_per_class * 3]] + [(g, 1) for g in gids[np.argsort(-sizes)][:3]]
        used = 0
        for gid, margin in tries:
            if used >= per_class or (margin == 1 and used > 0):
                break
            sl = objects[gid]
            inner = ndi.binary_erosion(grains[sl] == gid, structure=disk(margin))
            pts = np.argwhere(inner)
            if len(pts) < (10 if margin > 1 else 1):
                continue
            a, b = pts[rng.integers(len(pts))], pts[rng.integers(len(pts))]
            rr, cc = draw_line(int(a[0]), int(a[1]), int(b[0]), int(b[1]))
            stroke = np.zeros(inner.shape, bool)
            stroke[rr, cc] = True
            stroke = ndi.binary_dilation(stroke, structure=footprint) & inner
            n = int(stroke.sum())
            if n == 0:
                continue
            if used + n > per_class:  # trim the stroke to the budget, keep it a stroke
                keep = np.argwhere(stroke)[: per_class - used]
                stroke[:] = False
                stroke[keep[:, 0], keep[:, 1]] = True
                n = len(keep)
            region = out[sl]
            region[stroke] = k
            used += n
    return out


def synthetic_section(
    shape: tuple[int, int] = (256, 256),
    n_classes: int = 5,
    seed: int = 0,
    grain_size: float = 40.0,
    noise: float = 6.0,
    blur: float = 1.0,
    scribble_fraction: float = 0.005,
    proportions: np.ndarray | None = None,
) -> SyntheticSection:
    """An RGB section (3, H, W) uint8 of ``n_classes`` minerals (see :data:`MINERALS`)
    with dense truth (1..K) and sparse scribbles (<= ``scribble_fraction`` <= 1 %)."""
    if not 2 <= n_classes <= len(MINERALS):
        raise ValueError(f"n_classes must be in 2..{len(MINERALS)}, got {n_classes}")
    if not 0 < scribble_fraction <= 0.01:
        raise ValueError(f"scribble_fraction must be in (0, 0.01], got {scribble_fraction}")
    rng = np.random.default_rng(seed)
    h, w = shape
    grains = voronoi_grains(shape, grain_size, rng)
    n_grains = int(grains.max()) + 1
    p = np.full(n_classes, 1.0 / n_classes) if proportions is None else np.asarray(proportions, float)
    p = p / p.sum()
    grain_class = rng.choice(np.arange(1, n_classes + 1), size=n_grains, p=p)
    grain_class[: n_classes] = np.arange(1, n_classes + 1)  # every class present
    rng.shuffle(grain_class)
    truth = grain_class[grains].astype(np.int32)

    minerals = MINERALS[:n_classes]
    img = np.zeros((3, h, w), np.float32)
    textures = {k: _texture(m[2], m[3], shape, rng) for k, m in enumerate(minerals, start=1)}
    jitter = rng.normal(0.0, 5.0, size=(n_grains, 3)).astype(np.float32)
    objects = ndi.find_objects(grains + 1)
    for gid, sl in enumerate(objects):
        if sl is None:
            continue
        k = int(grain_class[gid])
        name, rgb, kind, strength = minerals[k - 1]
        m = grains[sl] == gid
        tex = textures[k][sl][m]
        if kind == "lamellae":
            yy, xx = np.nonzero(m)
            tex = tex + _lamellae((yy + sl[0].start, xx + sl[1].start), strength, rng)
        for c in range(3):
            img[c][sl][m] = rgb[c] + jitter[gid, c] + tex * (0.8 + 0.1 * c)
    if blur > 0:
        img = ndi.gaussian_filter(img, (0, blur, blur))
    img += rng.normal(0.0, noise, size=img.shape).astype(np.float32)
    image = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    scribbles = _scribbles(truth, grains, n_classes, scribble_fraction, rng)
    classes = [URI_PREFIX + m[0] for m in minerals]
    return SyntheticSection(image=image, truth=truth, scribbles=scribbles, classes=classes, grains=grains)


def synthetic_multispectral(
    shape: tuple[int, int] = (256, 256),
    n_bands: int = 4,
    n_classes: int = 4,
    seed: int = 0,
    grain_size: float = 40.0,
    separation: float = 4.0,
    blur: float = 0.7,
    scribble_fraction: float = 0.005,
    spectra_seed: int = 0,
) -> SyntheticSection:
    """A multispectral section (N, H, W) uint16 (12-bit values).

    Each class gets a mean spectrum and its own full covariance (random correlated
    band noise), drawn from ``spectra_seed`` so that sections of different ``seed``
    show the same minerals. Class means are ``separation`` noise standard deviations apart in the
    N-dimensional space but drawn so that single bands overlap -- what the
    MultiGaussian maximum-likelihood classifier exploits. Labels as in
    :func:`synthetic_section`.
    """
    if n_bands < 2:
        raise ValueError("n_bands must be >= 2")
    rng = np.random.default_rng(seed)
    h, w = shape
    grains = voronoi_grains(shape, grain_size, rng)
    n_grains = int(grains.max()) + 1
    grain_class = rng.integers(1, n_classes + 1, size=n_grains)
    grain_class[:n_classes] = np.arange(1, n_classes + 1)
    rng.shuffle(grain_class)
    truth = grain_class[grains].astype(np.int32)
    sd = 60.0  # digital numbers, per-band noise scale
    srng = np.random.default_rng(spectra_seed)  # the minerals' spectra: same for every seed
    base = srng.uniform(1200, 2800, size=n_bands)
    means, roots = [], []
    for _ in range(n_classes):
        d = srng.standard_normal(n_bands)
        means.append(base + separation * sd * d / np.linalg.norm(d) * np.sqrt(n_bands) / 1.5)
        roots.append((srng.standard_normal((n_bands, n_bands)) * 0.5 + np.eye(n_bands)) * sd / np.sqrt(n_bands))
    flat_img = np.zeros((n_bands, h * w), np.float64)
    flat = truth.ravel()
    for k in range(1, n_classes + 1):
        cov_root = roots[k - 1]
        idx = np.flatnonzero(flat == k)
        noise = cov_root @ rng.standard_normal((n_bands, idx.size))
        flat_img[:, idx] = means[k - 1][:, None] + noise
    img = flat_img.reshape(n_bands, h, w)
    if blur > 0:
        img = ndi.gaussian_filter(img, (0, blur, blur))
    image = np.clip(np.rint(img), 0, 4095).astype(np.uint16)
    scribbles = _scribbles(truth, grains, n_classes, scribble_fraction, rng)
    classes = [f"{URI_PREFIX}phase{k}" for k in range(1, n_classes + 1)]
    return SyntheticSection(image=image, truth=truth, scribbles=scribbles, classes=classes, grains=grains)
