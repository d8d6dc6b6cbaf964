"""A second, independent generator of synthetic sections, and the benchmark suite built on it.

The feature defaults must not be judged on the sections they were tuned on
(:mod:`mis.segment.synthetic`: warped Voronoi grains, five fixed minerals). This
generator shares nothing with that one but numpy and scipy:

* **phases** are either the arg-max of K smooth random fields (interlocking patches,
  ``layout="field"``) or a matrix with elliptical inclusions of log-normal sizes
  (``layout="inclusions"``);
* **textures** are spectral syntheses: band-pass noise of a given scale (``"band"``),
  oriented band-pass noise (``"oriented"``: lamellae, twins), sparse dark pits
  (``"pits"``), or none (``"flat"``), each with an amplitude per phase;
* each connected patch gets a small brightness jitter, then optics blur, a smooth
  **uneven illumination** (gain field + vignetting), sensor noise, quantisation to
  uint8 (grey, RGB) or 12/16-bit uint16 (BSE, multispectral);
* **scribbles** are curved strokes (random walks with momentum) of a given width,
  kept inside the interior of patches, up to a pixel budget per class -- connected
  strokes, so that held-out-stroke cross-validation has something to hold out.

:data:`SUITE` lists the benchmark's sections: texture scale fine to coarse, grain size,
noise, illumination, greyscale (BSE-like) vs colour vs multispectral, pairs separable only
by coarse texture / only by colour / only by one band, scribble densities 0.1 .. 1 %.
Every section has its own seed; :func:`make_section` is deterministic for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage as ndi

from mis.segment.synthetic import SyntheticSection

__all__ = ["Phase", "SectionSpec", "SUITE", "QUICK_SUITE", "make_section"]

URI_PREFIX = "urn:mis:varied:phase:"


@dataclass(frozen=True)
class Phase:
    """One mineral: mean value per band (0..1 of the dtype's range), texture kind,
    scale (px), amplitude (0..1 units) and, for ``oriented``, the angle (radians)."""

    mean: tuple[float, ...]
    texture: str = "flat"
    scale: float = 1.0
    amplitude: float = 0.0
    angle: float = 0.0
    share: float = 1.0  # relative area


@dataclass(frozen=True)
class SectionSpec:
    """A benchmark section: what it tests (``about``), its phases and imaging."""

    name: str
    about: str
    phases: tuple[Phase, ...]
    seed: int
    layout: str = "field"  # field | inclusions
    grain_size: float = 60.0
    noise: float = 0.02  # sensor noise sd, 0..1 units
    blur: float = 0.8
    illumination: float = 0.0  # peak-to-peak relative gain variation
    bit_depth: int = 8  # 8 -> uint8; 12 or 16 -> uint16
    scribble_fraction: float = 0.005
    stroke_width: int = 3
    modality: str = "reflected-light"

    @property
    def n_bands(self) -> int:
        return len(self.phases[0].mean)


# --------------------------------------------------------------------------- fields


def _spectral(shape: tuple[int, int], rng: np.random.Generator, response) -> np.ndarray:
    """White noise filtered in the Fourier domain by ``response(fy, fx)`` (cycles/px),
    normalised to zero mean and unit standard deviation."""
    h, w = shape
    noise = rng.standard_normal(shape).astype(np.float32)
    fy = np.fft.fftfreq(h).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(w).astype(np.float32)[None, :]
    out = np.fft.irfft2(np.fft.rfft2(noise) * response(fy, fx), s=shape).astype(np.float32)
    out -= out.mean()
    return out / (out.std() + 1e-12)


def _lowpass(scale: float):
    return lambda fy, fx: np.exp(-2.0 * (math.pi * scale) ** 2 * (fy**2 + fx**2))


def _bandpass(scale: float, angle: float | None = None, spread: float = 0.25):
    """Energy around the spatial frequency 1 / (2 pi scale): a Gaussian at ``scale``
    minus one at ``2 scale``; ``angle``: only frequencies near that direction."""

    def resp(fy, fx):
        f2 = fy**2 + fx**2
        r = np.exp(-2.0 * (math.pi * scale) ** 2 * f2) - np.exp(-2.0 * (math.pi * 2 * scale) ** 2 * f2)
        if angle is not None:
            theta = np.arctan2(fy, fx)
            d = np.angle(np.exp(2j * (theta - angle))) / 2  # orientation difference, mod pi
            r = r * np.exp(-0.5 * (d / spread) ** 2)
        return r

    return resp


def _texture(p: Phase, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    if p.texture == "flat" or p.amplitude == 0:
        return np.zeros(shape, np.float32)
    if p.texture == "band":
        return p.amplitude * _spectral(shape, rng, _bandpass(p.scale))
    if p.texture == "oriented":
        return p.amplitude * _spectral(shape, rng, _bandpass(p.scale, p.angle))
    if p.texture == "pits":
        t = (rng.random(shape) < 0.02).astype(np.float32)
        t = ndi.gaussian_filter(t, p.scale)
        return -p.amplitude * t / (t.max() + 1e-12)
    raise ValueError(f"unknown texture {p.texture!r}")


def _phase_map(spec: SectionSpec, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Truth 1..K."""
    k = len(spec.phases)
    share = np.array([p.share for p in spec.phases], float)
    share /= share.sum()
    h, w = shape
    if spec.layout == "field":
        fields = np.stack([_spectral(shape, rng, _lowpass(spec.grain_size / 4)) for _ in range(k)])
        # offsets so that the areas follow the shares (a few fixed-point steps)
        off = np.zeros(k, np.float32)
        sub = fields[:, ::8, ::8]
        for _ in range(20):
            frac = np.bincount((sub + off[:, None, None]).argmax(0).ravel(), minlength=k) / sub[0].size
            off += 0.5 * (np.log(share + 1e-9) - np.log(frac + 1e-9)).astype(np.float32) * 0.3
        return ((fields + off[:, None, None]).argmax(0) + 1).astype(np.int32)
    if spec.layout == "inclusions":
        truth = np.ones(shape, np.int32)  # phase 1 is the matrix
        area = h * w * (1 - share[0])
        yy, xx = np.ogrid[0:h, 0:w]
        covered = 0.0
        guard = 0
        while covered < area and guard < 100_000:
            guard += 1
            kk = int(rng.choice(np.arange(2, k + 1), p=share[1:] / share[1:].sum()))
            a = spec.grain_size / 2 * float(np.exp(rng.normal(0, 0.4)))
            b = a * rng.uniform(0.4, 1.0)
            cy, cx, th = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0, math.pi)
            r = int(math.ceil(a)) + 1
            y0, y1, x0, x1 = max(0, int(cy) - r), min(h, int(cy) + r + 1), max(0, int(cx) - r), min(w, int(cx) + r + 1)
            if y0 >= y1 or x0 >= x1:
                continue
            dy, dx = yy[y0:y1] - cy, xx[:, x0:x1] - cx
            u = dx * math.cos(th) + dy * math.sin(th)
            v = -dx * math.sin(th) + dy * math.cos(th)
            m = (u / a) ** 2 + (v / b) ** 2 <= 1
            truth[y0:y1, x0:x1][m] = kk
            covered += math.pi * a * b
        return truth
    raise ValueError(f"unknown layout {spec.layout!r}")


# --------------------------------------------------------------------------- scribbles


def _strokes(truth: np.ndarray, spec: SectionSpec, rng: np.random.Generator) -> np.ndarray:
    """Curved strokes of ``stroke_width`` px inside patch interiors, up to
    ``scribble_fraction`` of the pixels shared equally by the classes."""
    h, w = truth.shape
    k = len(spec.phases)
    edge = np.zeros(truth.shape, bool)
    edge[:-1] |= truth[:-1] != truth[1:]
    edge[1:] |= truth[:-1] != truth[1:]
    edge[:, :-1] |= truth[:, :-1] != truth[:, 1:]
    edge[:, 1:] |= truth[:, :-1] != truth[:, 1:]
    dist = ndi.distance_transform_edt(~edge).astype(np.float32)
    out = np.zeros(truth.shape, np.uint8)
    budget = max(1, int(spec.scribble_fraction * h * w) // k)
    half = (spec.stroke_width - 1) / 2
    offs = [(dy, dx) for dy in range(-int(half) - 1, int(half) + 2) for dx in range(-int(half) - 1, int(half) + 2)
            if dy * dy + dx * dx <= half * half + 0.25]
    for c in range(1, k + 1):
        margin = half + 2
        cand = np.argwhere((truth == c) & (dist > margin + 2))
        if len(cand) == 0:
            cand = np.argwhere((truth == c) & (dist > half + 1))
        if len(cand) == 0:
            cand = np.argwhere(truth == c)
            margin = 0
        used, tries = 0, 0
        while used < budget and tries < 400:
            tries += 1
            y, x = (float(v) for v in cand[rng.integers(len(cand))])
            ang = rng.uniform(0, 2 * math.pi)
            length = int(rng.integers(15, 90))
            pts = []
            for _ in range(length):
                iy, ix = int(round(y)), int(round(x))
                if not (0 <= iy < h and 0 <= ix < w) or truth[iy, ix] != c or dist[iy, ix] < margin:
                    break
                pts.append((iy, ix))
                ang += rng.normal(0, 0.25)
                y += math.sin(ang)
                x += math.cos(ang)
            if len(pts) < 4:
                continue
            new = 0
            for iy, ix in pts:
                for dy, dx in offs:
                    yy, xx = iy + dy, ix + dx
                    if 0 <= yy < h and 0 <= xx < w and truth[yy, xx] == c and out[yy, xx] == 0:
                        out[yy, xx] = c
                        new += 1
                if used + new >= budget:
                    break
            used += new
    return out


# --------------------------------------------------------------------------- the section


def make_section(spec: SectionSpec, shape: tuple[int, int] = (2048, 2048)) -> SyntheticSection:
    """The image (C, H, W) (uint8 for 8 bits, uint16 otherwise), truth 1..K, scribbles
    (0 = unlabelled) of ``spec`` at ``shape``, deterministic for ``spec.seed``."""
    rng = np.random.default_rng(spec.seed)
    truth = _phase_map(spec, shape, rng)
    c = spec.n_bands
    img = np.zeros((c, *shape), np.float32)
    # per-patch brightness jitter: connected patches of each phase
    jitter = np.zeros(shape, np.float32)
    for k, p in enumerate(spec.phases, start=1):
        lab, n = ndi.label(truth == k)
        j = rng.normal(0.0, 0.012, size=n + 1).astype(np.float32)
        j[0] = 0
        jitter += j[lab]
        tex = _texture(p, shape, rng)
        m = truth == k
        for b in range(c):
            img[b][m] = p.mean[b] + tex[m] * (0.9 + 0.2 * b / max(1, c - 1))
    img += jitter
    if spec.blur > 0:
        img = ndi.gaussian_filter(img, (0, spec.blur, spec.blur))
    if spec.illumination > 0:
        h, w = shape
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        ramp = (rng.uniform(-1, 1) * (xx / w - 0.5) + rng.uniform(-1, 1) * (yy / h - 0.5))
        vign = -((yy / h - rng.uniform(0.3, 0.7)) ** 2 + (xx / w - rng.uniform(0.3, 0.7)) ** 2)
        gain = ramp + vign + 0.5 * _spectral(shape, rng, _lowpass(min(h, w) / 8)) * 0.3
        gain = (gain - gain.min()) / (gain.max() - gain.min() + 1e-12)
        img *= (1 - spec.illumination / 2 + spec.illumination * gain)[None]
    img += rng.normal(0.0, spec.noise, size=img.shape).astype(np.float32)
    top = 2**spec.bit_depth - 1
    dtype = np.uint8 if spec.bit_depth <= 8 else np.uint16
    image = np.clip(np.rint(img * top), 0, top).astype(dtype)
    scribbles = _strokes(truth, spec, rng)
    classes = [f"{URI_PREFIX}{spec.name}-{k}" for k in range(1, len(spec.phases) + 1)]
    return SyntheticSection(image=image, truth=truth, scribbles=scribbles, classes=classes, grains=truth)


# --------------------------------------------------------------------------- the suite


_RGB_BASE = (
    Phase((0.45, 0.44, 0.47), "band", 1.0, 0.02),
    Phase((0.75, 0.68, 0.30), "flat"),
    Phase((0.82, 0.82, 0.84), "oriented", 2.5, 0.08, angle=0.6),
    Phase((0.58, 0.50, 0.46), "pits", 1.2, 0.25),
    Phase((0.30, 0.36, 0.55), "band", 3.0, 0.04),
)

SUITE: tuple[SectionSpec, ...] = (
    SectionSpec("rgb-fine", "RGB, five phases with fine textures (0.7-1.5 px)", (
        Phase((0.45, 0.44, 0.47), "band", 0.7, 0.03), Phase((0.50, 0.47, 0.45), "band", 1.5, 0.05),
        Phase((0.75, 0.68, 0.30), "band", 1.0, 0.02), Phase((0.82, 0.82, 0.84), "pits", 0.8, 0.2),
        Phase((0.30, 0.36, 0.55), "flat")), seed=101, grain_size=50),
    SectionSpec("rgb-coarse", "RGB, five phases with coarse textures (4-8 px), large grains", (
        Phase((0.45, 0.44, 0.47), "band", 6.0, 0.05), Phase((0.55, 0.50, 0.45), "band", 4.0, 0.06),
        Phase((0.75, 0.68, 0.30), "band", 8.0, 0.04), Phase((0.82, 0.82, 0.84), "oriented", 5.0, 0.06, angle=1.2),
        Phase((0.30, 0.36, 0.55), "flat")), seed=102, grain_size=140),
    SectionSpec("coarse-texture-pair", "RGB; two phases of identical colour and fine noise, one mottled at 6 px", (
        Phase((0.50, 0.48, 0.46), "flat"), Phase((0.50, 0.48, 0.46), "band", 6.0, 0.06),
        *_RGB_BASE[1:4]), seed=103, grain_size=110, noise=0.025),
    SectionSpec("colour-pair", "RGB; two phases of equal luminance and texture, different hue", (
        Phase((0.55, 0.45, 0.40), "band", 1.0, 0.03), Phase((0.42, 0.49, 0.55), "band", 1.0, 0.03),
        *_RGB_BASE[1:4]), seed=104, grain_size=70),
    SectionSpec("bse-grey", "BSE-like 16-bit greyscale, five phases by mean grey level, two close", (
        Phase((0.20,)), Phase((0.35,)), Phase((0.38,)), Phase((0.60,), "band", 1.0, 0.02),
        Phase((0.85,))), seed=105, grain_size=60, noise=0.03, bit_depth=16, modality="bse"),
    SectionSpec("grey-texture-pair", "greyscale; a pair separable only by texture, small grains", (
        Phase((0.40,), "band", 1.0, 0.06), Phase((0.40,), "band", 3.5, 0.06), Phase((0.65,)),
        Phase((0.15,), "pits", 1.0, 0.1)), seed=106, grain_size=30, noise=0.02, modality="bse"),
    SectionSpec("ms-one-band", "6-band 12-bit multispectral; a pair differing only in band 4", (
        Phase((0.40, 0.45, 0.50, 0.50, 0.55, 0.50)), Phase((0.40, 0.45, 0.50, 0.58, 0.55, 0.50)),
        Phase((0.60, 0.55, 0.50, 0.45, 0.40, 0.45), "band", 1.5, 0.03),
        Phase((0.30, 0.40, 0.60, 0.70, 0.60, 0.40)), Phase((0.70, 0.70, 0.65, 0.60, 0.70, 0.75), "pits", 1.0, 0.2)),
        seed=107, grain_size=70, noise=0.02, bit_depth=12, modality="multispectral"),
    SectionSpec("ms-textured", "8-band 12-bit multispectral, textured phases, uneven light", (
        Phase((0.40,) * 4 + (0.50,) * 4, "band", 2.0, 0.04), Phase((0.50,) * 4 + (0.40,) * 4, "band", 2.0, 0.04),
        Phase((0.45,) * 8, "band", 5.0, 0.05), Phase((0.45,) * 8, "flat"),
        Phase(tuple(0.3 + 0.06 * i for i in range(8)), "band", 1.0, 0.02)),
        seed=108, grain_size=80, noise=0.02, bit_depth=12, illumination=0.2, modality="multispectral"),
    SectionSpec("rgb-uneven-light", "RGB under strong uneven illumination and vignetting (+-30 %)",
                _RGB_BASE, seed=109, grain_size=70, illumination=0.6),
    SectionSpec("rgb-noisy-small", "RGB, heavy sensor noise, small grains (20 px)",
                _RGB_BASE, seed=110, grain_size=22, noise=0.07),
    SectionSpec("rgb-sparse-thin", "RGB, six phases, thin 1 px strokes on 0.1 % of the pixels", (
        *_RGB_BASE, Phase((0.62, 0.40, 0.35), "band", 2.0, 0.03)),
        seed=111, grain_size=60, scribble_fraction=0.001, stroke_width=1),
    SectionSpec("rgb-inclusions-dense", "RGB matrix with elliptical inclusions, wide strokes on 1 % of pixels",
                _RGB_BASE, seed=112, layout="inclusions", grain_size=40, scribble_fraction=0.01, stroke_width=5),
    SectionSpec("bse-inclusions-small", "BSE-like greyscale, small inclusions (4-12 px) in a matrix, 0.3 %", (
        Phase((0.30,), "band", 1.0, 0.02), Phase((0.55,)), Phase((0.75,)), Phase((0.90,))),
        seed=113, layout="inclusions", grain_size=14, noise=0.03, scribble_fraction=0.003, stroke_width=2,
        modality="bse"),
)

#: two small sections that exercise every path (grey/RGB vs multispectral) for ``--quick``
QUICK_SUITE: tuple[SectionSpec, ...] = (
    replace(SUITE[2], grain_size=40),
    replace(SUITE[6], grain_size=40),
)
