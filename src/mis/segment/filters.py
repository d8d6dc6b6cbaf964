"""An ilastik-like multiscale filter bank in torch (CPU or GPU, float32).

Per band of a (C, H, W) image and per scale sigma, the bank computes (names as in
ilastik's "pixel features" dialog):

==============  ==========================================================  =========
name            feature                                                     channels
==============  ==========================================================  =========
``gaussian``    Gaussian smoothing                                          1
``log``         Laplacian of Gaussian (Gxx + Gyy)                           1
``gradmag``     Gaussian gradient magnitude sqrt(Gx^2 + Gy^2)               1
``dog``         difference of Gaussians G(sigma) - G(dog_ratio * sigma)     1
``st_eig``      structure-tensor eigenvalues (gradient at sigma, tensor     2
                smoothed at ``st_outer_ratio * sigma``), largest first
``hess_eig``    Hessian-of-Gaussian eigenvalues, largest first              2
==============  ==========================================================  =========

plus, with ``include_raw``, the band values themselves. Eigenvalues of the symmetric
2x2 tensors are computed in closed form. ``derivatives="kernel"`` (default, as
ilastik/vigra) convolves with Gaussian-derivative kernels; ``"difference"`` takes
central differences of the Gaussian-smoothed image (as scikit-image does): two 1-D
passes per sigma instead of up to nine, slightly less exact at small sigma, halo + 1.
``truncate`` (default 4, scipy's; vigra/ilastik cut at about 3-3.5) sets the kernel
radius ``ceil(truncate * sigma)``. All convolutions are separable, with sampled
Gaussian / Gaussian-derivative kernels truncated at ``ceil(truncate * sigma)`` pixels
(derivative kernels normalised, as in vigra, so that a ramp of slope 1 has derivative
exactly 1 and x^2/2 has second derivative exactly 1). On the CPU the 1-D correlations
run as symmetric shift-and-add (each tap pair is one fused tensor op, several times
faster than ``conv2d`` for one-channel images); on CUDA they run as ``conv2d``. Both
give the same result to float rounding.

Borders: the image is extended by **reflection** (mirror without repeating the edge
pixel, numpy/torch "reflect"); for a composed filter (structure tensor) the
intermediate image is reflected again, as vigra does.

Tiling: :func:`halo` is the largest support of the configured filters in pixels
(``ceil(truncate*sigma)``, plus ``ceil(truncate*st_outer_ratio*sigma)`` for the
structure tensor, plus the CNN receptive-field halo when a CNN is configured).
Features computed on a tile padded by ``halo`` pixels of real neighbours (clipped at the
image border) equal the whole-image features on the tile interior, to float rounding;
:func:`compute_features_tiled` does exactly that and is what chunked prediction over
zarr should mirror.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from mis.imagery.chunks import halo_tiles
from mis.segment.cnn import cnn_feature_names, cnn_halo, cnn_stride, hypercolumns
from mis.segment.config import COMPONENTS, FeatureConfig

__all__ = [
    "compute_features",
    "compute_features_tiled",
    "feature_names",
    "halo",
    "feature_align",
    "prepare_image",
]

# --------------------------------------------------------------------------- kernels


def _radius(sigma: float, truncate: float) -> int:
    return max(1, math.ceil(truncate * sigma))


@lru_cache(maxsize=256)
def _half_kernel(sigma: float, order: int, truncate: float) -> tuple[float, ...]:
    """Taps w[0..r] of a Gaussian (order 0), first (1) or second (2) derivative kernel,
    used as correlation: out[c] = w[0] x[c] + sum_k w[k] (x[c+k] +- x[c-k]) with + for
    even and - for odd orders."""
    r = _radius(sigma, truncate)
    k = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-0.5 * (k / sigma) ** 2)
    g /= g.sum()
    if order == 0:
        w = g
    elif order == 1:
        w = k * g
        w /= np.sum(k * w)  # ramp of slope 1 -> 1
    elif order == 2:
        w = (k**2 - sigma**2) * g
        w -= w.mean()  # zero response to a constant
        w /= np.sum(k**2 * w) / 2.0  # x^2/2 -> 1
    else:
        raise ValueError(order)
    return tuple(float(x) for x in w[r:])


def _full_kernel(sigma: float, order: int, truncate: float) -> np.ndarray:
    h = np.asarray(_half_kernel(sigma, order, truncate))
    sign = -1.0 if order % 2 else 1.0
    return np.concatenate([sign * h[:0:-1], h])


# --------------------------------------------------------------------------- padding


def _reflect_index(n: int, pad: int) -> np.ndarray:
    """Indices of a length n axis extended by ``pad`` on both sides by reflection
    (mirror without repeating the edge), valid for any pad (folds repeatedly)."""
    i = np.arange(-pad, n + pad)
    if n == 1:
        return np.zeros_like(i)
    period = 2 * (n - 1)
    i = np.mod(i, period)
    return np.where(i >= n, period - i, i)


def _pad_reflect(x: torch.Tensor, r: int, dim: int) -> torch.Tensor:
    """Reflect-pad a (C, H, W) tensor by r along dim (-1 or -2)."""
    n = x.shape[dim]
    if r >= n:
        idx = torch.from_numpy(_reflect_index(n, r)).to(x.device)
        return x.index_select(dim, idx)
    # same as F.pad(mode="reflect"), whose CPU kernel is several times slower
    shape = list(x.shape)
    shape[dim] += 2 * r
    out = x.new_empty(shape)
    out.narrow(dim, r, n).copy_(x)
    out.narrow(dim, 0, r).copy_(x.narrow(dim, 1, r).flip(dim))
    out.narrow(dim, r + n, r).copy_(x.narrow(dim, n - 1 - r, r).flip(dim))
    return out


def _correlate(
    x: torch.Tensor, sigma: float, orders: Sequence[int], dim: int, truncate: float, method: str
) -> list[torch.Tensor]:
    """1-D correlations of x (C, H, W) along dim with the kernels of ``orders`` at
    ``sigma``; the input is reflect-padded once and shared by all kernels."""
    r = _radius(sigma, truncate)
    n = x.shape[dim]
    xp = _pad_reflect(x, r, dim)
    if method == "conv":
        w = torch.tensor(
            np.stack([_full_kernel(sigma, o, truncate) for o in orders]), dtype=x.dtype, device=x.device
        )
        shape = (len(orders), 1, 1, 2 * r + 1) if dim == -1 else (len(orders), 1, 2 * r + 1, 1)
        # full float32: cuDNN would otherwise round the operands to TF32 (10-bit mantissa)
        with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
            out = F.conv2d(xp.unsqueeze(1), w.view(shape))
        return [out[:, i] for i in range(len(orders))]
    halves = [_half_kernel(sigma, o, truncate) for o in orders]
    outs: list[torch.Tensor | None] = [None] * len(orders)
    center = xp.narrow(dim, r, n)
    for i, o in enumerate(orders):
        if o % 2 == 0:
            outs[i] = center * halves[i][0]
    need_sum = any(o % 2 == 0 for o in orders)
    need_diff = any(o % 2 == 1 for o in orders)
    s = torch.empty_like(center) if need_sum else None
    d = torch.empty_like(center) if need_diff else None
    for k in range(1, r + 1):
        a = xp.narrow(dim, r + k, n)
        b = xp.narrow(dim, r - k, n)
        if need_sum:
            torch.add(a, b, out=s)
        if need_diff:
            torch.sub(a, b, out=d)
        for i, o in enumerate(orders):
            t = s if o % 2 == 0 else d
            if t is None:  # cannot happen: need_sum / need_diff allocate what the orders use
                raise AssertionError(f"no {'sum' if o % 2 == 0 else 'difference'} buffer for order {o}")
            acc = outs[i]
            if acc is None:
                outs[i] = t * halves[i][k]
            else:
                acc.add_(t, alpha=halves[i][k])
    # every order is set: even ones before the loop, odd ones at k = 1 (the radius is >= 1)
    done = [o for o in outs if o is not None]
    if len(done) != len(orders):
        raise AssertionError(f"{len(orders) - len(done)} of {len(orders)} correlations not computed")
    return done


def _gaussian_derivatives(
    x: torch.Tensor, sigma: float, need: set[str], truncate: float, method: str
) -> dict[str, torch.Tensor]:
    """Requested Gaussian derivatives of x (C, H, W) at sigma: keys among
    g, x, y, xx, yy, xy (x = along width, y = along height)."""
    h_orders = sorted({0 if k in ("g", "y", "yy") else 1 if k in ("x", "xy") else 2 for k in need})
    h = dict(zip(h_orders, _correlate(x, sigma, h_orders, -1, truncate, method), strict=True))  # one per order
    plan: dict[int, list[tuple[int, str]]] = {}
    for key, (ho, vo) in {"g": (0, 0), "y": (0, 1), "yy": (0, 2), "x": (1, 0), "xy": (1, 1), "xx": (2, 0)}.items():
        if key in need:
            plan.setdefault(ho, []).append((vo, key))
    out = {}
    for ho, items in plan.items():
        res = _correlate(h[ho], sigma, [vo for vo, _ in items], -2, truncate, method)
        for (_, key), t in zip(items, res, strict=True):  # one correlation per order
            out[key] = t
    return out


def _difference(g: torch.Tensor, dim: int, order: int) -> torch.Tensor:
    """Central difference of order 1 ((g[c+1] - g[c-1]) / 2) or 2 (g[c+1] - 2 g[c] +
    g[c-1]) along dim, reflect-padded by one pixel."""
    n = g.shape[dim]
    p = _pad_reflect(g, 1, dim)
    a, b = p.narrow(dim, 2, n), p.narrow(dim, 0, n)
    if order == 1:
        return (a - b) * 0.5
    return a + b - 2.0 * g


def _difference_derivatives(
    x: torch.Tensor, sigma: float, need: set[str], truncate: float, method: str
) -> dict[str, torch.Tensor]:
    """Like :func:`_gaussian_derivatives` but derivatives are central differences of
    the Gaussian-smoothed image (scikit-image style): two 1-D passes per sigma
    instead of up to nine, slightly less exact for small sigma."""
    g = _gaussian_derivatives(x, sigma, {"g"}, truncate, method)["g"]
    out = {"g": g}
    if need & {"x", "xy"}:
        out["x"] = _difference(g, -1, 1)
    if "y" in need:
        out["y"] = _difference(g, -2, 1)
    if "xx" in need:
        out["xx"] = _difference(g, -1, 2)
    if "yy" in need:
        out["yy"] = _difference(g, -2, 2)
    if "xy" in need:
        out["xy"] = _difference(out["x"], -2, 1)
    return out


def _sym_eig2(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (largest, smallest) of [[a, b], [b, c]] in closed form."""
    half_tr = (a + c) * 0.5
    disc = torch.sqrt(((a - c) * 0.5) ** 2 + b * b)
    return half_tr + disc, half_tr - disc


# --------------------------------------------------------------------------- public


def prepare_image(image: np.ndarray | torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """(C, H, W) or (H, W) array/tensor -> float32 (C, H, W) tensor on ``device``.
    Integer images are scaled by their dtype's maximum (uint8 /255, uint16 /65535);
    float images are taken as they are."""
    t = torch.from_numpy(np.ascontiguousarray(image)) if isinstance(image, np.ndarray) else image
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if t.ndim != 3:
        raise ValueError(f"image must be (C, H, W) or (H, W), got shape {tuple(t.shape)}")
    if device is not None:
        t = t.to(device)
    if not t.is_floating_point():
        if t.dtype == torch.uint8:
            scale = 255.0
        elif t.dtype == torch.uint16:
            scale = 65535.0
        elif t.dtype == torch.bool:
            scale = 1.0
        else:
            scale = float(torch.iinfo(t.dtype).max)
        t = t.to(torch.float32) / scale
    return t.to(torch.float32)


def _plan(config: FeatureConfig) -> list[tuple[str, float]]:
    return [(f, s) for f, sigmas in config.filters.items() for s in sigmas]


def feature_names(config: FeatureConfig, n_bands: int) -> list[str]:
    """Names of the features :func:`compute_features` returns, in order, e.g.
    ``raw_b0``, ``gaussian_s1.6_b2``, ``st_eig1_s3.5_b0``, ``cnn_s2_c07``."""
    names = []
    if config.include_raw:
        names += [f"raw_b{b}" for b in range(n_bands)]
    for f, s in _plan(config):
        for comp in range(COMPONENTS[f]):
            tag = f if COMPONENTS[f] == 1 else f"{f}{comp + 1}"
            names += [f"{tag}_s{s:g}_b{b}" for b in range(n_bands)]
    if config.cnn is not None:
        names += cnn_feature_names(config.cnn)
    return names


def filter_halo(config: FeatureConfig) -> int:
    """Largest support (pixels) of the filter bank alone (no CNN)."""
    t = config.truncate
    extra = 1 if config.derivatives == "difference" else 0
    h = 0
    for f, s in _plan(config):
        r = _radius(s, t)
        if f in ("log", "gradmag", "hess_eig", "st_eig"):
            r += extra
        if f == "dog":
            r = max(r, _radius(config.dog_ratio * s, t))
        elif f == "st_eig":
            r = r + _radius(config.st_outer_ratio * s, t)
        h = max(h, r)
    return h


def halo(config: FeatureConfig) -> int:
    """Pixels of real neighbours a tile needs on each side so that its interior
    features equal whole-image features: the largest filter support, and with a CNN
    the (stride-aligned) receptive-field halo of ``cnn.cnn_halo``."""
    h = filter_halo(config)
    if config.cnn is not None:
        h = max(h, cnn_halo(config.cnn))
    return h


@torch.no_grad()
def compute_features(
    image: np.ndarray | torch.Tensor,
    config: FeatureConfig | None = None,
    device: torch.device | str | None = None,
    method: Literal["auto", "shift", "conv"] = "auto",
) -> tuple[torch.Tensor, list[str]]:
    """Features (F, H, W) float32 of a (C, H, W) image (grey, RGB or N bands), and
    their names. ``method``: ``shift`` (shift-and-add, fastest on CPU), ``conv``
    (``conv2d``, for CUDA), ``auto`` = conv on CUDA, shift otherwise."""
    config = config or FeatureConfig()
    x = prepare_image(image, device)
    if method == "auto":
        method = "conv" if x.device.type == "cuda" else "shift"
    t = config.truncate
    c = x.shape[0]
    # which derivatives are needed at which sigma
    need: dict[float, set[str]] = {}
    for f, s in _plan(config):
        if f == "gaussian":
            need.setdefault(s, set()).add("g")
        elif f == "dog":
            need.setdefault(s, set()).add("g")
            need.setdefault(config.dog_ratio * s, set()).add("g")
        elif f in ("gradmag", "st_eig"):
            need.setdefault(s, set()).update(("x", "y"))
        elif f == "log":
            need.setdefault(s, set()).update(("xx", "yy"))
        elif f == "hess_eig":
            need.setdefault(s, set()).update(("xx", "yy", "xy"))
    derive = _difference_derivatives if config.derivatives == "difference" else _gaussian_derivatives
    der = {s: derive(x, s, keys, t, method) for s, keys in need.items()}
    feats: list[torch.Tensor] = []
    if config.include_raw:
        feats.append(x)
    for f, s in _plan(config):
        d = der[s]
        if f == "gaussian":
            feats.append(d["g"])
        elif f == "dog":
            feats.append(d["g"] - der[config.dog_ratio * s]["g"])
        elif f == "gradmag":
            feats.append(torch.sqrt(d["x"] * d["x"] + d["y"] * d["y"]))
        elif f == "log":
            feats.append(d["xx"] + d["yy"])
        elif f == "hess_eig":
            feats.extend(_sym_eig2(d["xx"], d["xy"], d["yy"]))
        elif f == "st_eig":
            rho = config.st_outer_ratio * s
            prods = torch.cat([d["x"] * d["x"], d["x"] * d["y"], d["y"] * d["y"]])
            sm = _gaussian_derivatives(prods, rho, {"g"}, t, method)["g"]
            feats.extend(_sym_eig2(sm[:c], sm[c : 2 * c], sm[2 * c :]))
    if config.cnn is not None:
        feats.append(hypercolumns(x, config.cnn))
    out = torch.cat(feats, 0)
    return out, feature_names(config, c)


def feature_align(config: FeatureConfig) -> int:
    """The grid a tile's region must start on for seamless features: the CNN's total
    stride (its pooling grids), 1 without a CNN."""
    if config.cnn is None:
        return 1
    return cnn_stride(config.cnn)


@torch.no_grad()
def compute_features_tiled(
    image: np.ndarray | torch.Tensor,
    config: FeatureConfig | None = None,
    tile: int | tuple[int, int] = 256,
    device: torch.device | str | None = None,
    method: Literal["auto", "shift", "conv"] = "auto",
) -> tuple[torch.Tensor, list[str]]:
    """The same features as :func:`compute_features`, computed tile by tile: each tile
    is read with :func:`halo` pixels of real neighbours (clipped at the image border),
    its features computed and the interior kept. This is the reference for chunked
    prediction. With a CNN, tile regions are aligned to its stride
    (:func:`feature_align`), so any tile size gives the whole image's features."""
    config = config or FeatureConfig()
    x = prepare_image(image, device)
    _, h, w = x.shape
    out = None
    names: list[str] = []
    for (ry, rx), (wy, wx), (iy, ix) in halo_tiles((h, w), tile, halo(config), feature_align(config)):
        f, names = compute_features(x[:, ry, rx], config, method=method)
        if out is None:
            out = torch.empty((f.shape[0], h, w), dtype=f.dtype, device=f.device)
        out[:, wy, wx] = f[:, iy, ix]
    assert out is not None
    return out, names
