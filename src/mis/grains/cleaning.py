"""Class-map cleaning before grains are labelled: a minimum grain size, and grains of one
mineral split along the boundary lines between them; chunk by chunk, equal to the whole image.

Automated mineralogy (QEMSCAN, MLA, TIMA, Mineralogic) never reports raw pixel components
of a classified map: classification noise would become "grains" and touching grains of
one mineral would merge. The ingestion therefore labels grains on a *cleaned* map, in
three steps (:func:`clean_window`), all with 4-connectivity like the labelling itself
(:mod:`mis.grains.labelling`):

1. **Absorb small components.** Every component (any class, background included) of
   fewer than ``min_px`` pixels takes the class that borders it most (4-neighbour pixel
   edges counted), preferring neighbours that are not small themselves; ties go to the
   lower class index. Salt-and-pepper pixels, specks and blobs go back to the grain they
   sit in; small pores inside a grain are filled, as the anchors do. The cleaned map is
   what modal mineralogy, roxels and rock statistics are computed from, so everything a
   run reports is consistent with it.
2. **Boundary cuts (splitting touching grains).** Between two grains of one mineral an
   image shows a dark boundary line, which a classifier labels as a dark non-grain class
   (background, pore/epoxy, unclassified), mostly in fragments that step 1 absorbs.
   Those absorbed *boundary-evidence* pixels, plus grain pixels lying on a straight run of
   at most ``2 * bridge_px + 1`` pixels between two evidence pixels (gaps in the line
   bridged), become **cut** pixels where they separate the same class: along one of the
   four directions the first non-evidence pixel on both sides (within ``bridge_px + 1``)
   is of their own class. Cut pixels keep their class (modal mineralogy, roxels) but
   belong to no grain, so two grains meeting at a boundary line stay two. A line
   between two *different* minerals separates them anyway and is not cut: it joins
   the grain that borders it most.
3. **Minimum grain size.** Grains (components of one class without the cut pixels) of
   fewer than ``min_px`` pixels (slivers between a cut and a border) are not grains:
   their pixels become cut pixels too. Every grain a run writes has ``min_px`` pixels or
   more, which is the size cut-off its statistics are stated over.

Why no distance-transform watershed: touching Voronoi-like grains of one mineral share a
long straight boundary without a neck, which a shape-only split does not find without
over-splitting every elongated grain; and its floods reach across any number of chunks.
The boundary line is the evidence a mineralogist uses, it is local, and so is every step
above.

Seamless over chunks. Each step only looks a bounded distance away: step 1 decides a
component's fate from its pixels and their neighbours, and a component of fewer than
``min_px`` pixels spans fewer than ``min_px`` pixels; steps 2 and 3 look at most
``2 * bridge_px + 1`` and ``min_px`` pixels away. A chunk read with a halo of
:func:`halo` pixels (clipped at the image border) and cleaned on its own is therefore
exactly the whole-image result on the chunk: components that touch the window's edge
inside the image are treated as large, which is right for every pixel farther than the
halo from that edge (tested against :func:`clean_image`, pixel for pixel, with tiles of
a few pixels).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "DEFAULT_MIN_GRAIN_PX",
    "DEFAULT_BRIDGE_PX",
    "GrainRules",
    "RAW_COMPONENTS",
    "check_values",
    "clean_window",
    "clean_image",
    "clean_chunked",
    "read_cleaned",
]

#: Default minimum grain area, in pixels of the image (the default in µm² is this times
#: the pixel area). Chosen on the truth bench (bench/bench_grains.py): classification
#: errors live at the scale of the classifier's features, a few pixels, whatever the
#: pixel size; 16 px (an ECD of 4.5 px) removes specks and blobs of up to ~2.5 px radius.
DEFAULT_MIN_GRAIN_PX = 16
#: Default length of gaps bridged in a boundary line, in pixels on either side.
DEFAULT_BRIDGE_PX = 2

_DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))
_EIGHT = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))


@dataclass(frozen=True)
class GrainRules:
    """How a run turns its class map into grains (stated in the run's provenance).

    ``min_area_um2``: minimum grain area in µm² (None: :data:`DEFAULT_MIN_GRAIN_PX` pixels
    of the image; 0: no cleaning, every raw component is a grain). ``split``: cut same-class
    grains along boundary lines (step 2). ``bridge_px``: gaps in a boundary line bridged.
    """

    min_area_um2: float | None = None
    split: bool = True
    bridge_px: int = DEFAULT_BRIDGE_PX

    def __post_init__(self) -> None:
        if self.min_area_um2 is not None and (not math.isfinite(self.min_area_um2) or self.min_area_um2 < 0):
            raise ValueError(f"minimum grain area must be a finite number >= 0 µm², got {self.min_area_um2!r}")
        if not isinstance(self.bridge_px, (int, np.integer)) or not 0 <= int(self.bridge_px) <= 16:
            raise ValueError(f"bridge must be an integer number of pixels in 0..16, got {self.bridge_px!r}")

    def min_px(self, pixel_size_um: float) -> int:
        """The minimum grain area in whole pixels (at least 1: 1 px = no cleaning)."""
        if self.min_area_um2 is None:
            return DEFAULT_MIN_GRAIN_PX
        p = float(pixel_size_um)
        return max(1, math.ceil(self.min_area_um2 / (p * p) - 1e-9))

    def active(self, pixel_size_um: float) -> bool:
        return self.min_px(pixel_size_um) > 1 or self.split

    def halo(self, pixel_size_um: float) -> int:
        """Pixels read around a chunk so that cleaning it alone equals the whole image
        (see the module docstring): 3 ``min_px`` for steps 1 and 3, ``2 bridge + 2``
        for step 2, and a margin of 2."""
        if not self.active(pixel_size_um):
            return 0
        n = self.min_px(pixel_size_um)
        return 3 * n + (2 * int(self.bridge_px) + 2 if self.split else 0) + 2

    def parameters(self, pixel_size_um: float) -> dict[str, Any]:
        """The rules as the run's provenance and reports state them."""
        n = self.min_px(pixel_size_um)
        p = float(pixel_size_um)
        return {
            "min_grain_area_um2": float(n * p * p) if n > 1 else 0.0,
            "min_grain_px": n,
            "min_grain_area_source": "default (%d px of the image)" % DEFAULT_MIN_GRAIN_PX
            if self.min_area_um2 is None else "user",
            "clean": n > 1,
            "split": bool(self.split),
            "split_method": "boundary lines (dark non-grain pixels between grains of one class)"
            if self.split else None,
            "bridge_px": int(self.bridge_px) if self.split else None,
            "size_statistics": "grains not touching the image border",
            "connectivity": 4,
        }


#: Today's raw components: no cleaning, no split (every component is a grain).
RAW_COMPONENTS = GrainRules(min_area_um2=0.0, split=False)


def check_values(values: np.ndarray, n_classes: int) -> None:
    """Class values must be integers in ``0..n_classes-1`` (ValueError saying which)."""
    v = np.asarray(values)
    if v.dtype.kind not in "ui":
        raise ValueError(f"the label array must hold integers (class indices), not {v.dtype}")
    if v.size and int(v.max()) >= n_classes:
        raise ValueError(f"class value {int(v.max())} is outside the class list (0..{n_classes - 1})")
    if v.size and v.dtype.kind == "i" and int(v.min()) < 0:
        raise ValueError(f"class value {int(v.min())} is negative")


def _label_all(values: np.ndarray) -> tuple[NDArray[np.int32], int]:
    from skimage.measure import label

    lab = label(values.astype(np.int32) + 1, background=0, connectivity=1)
    return lab.astype(np.int32, copy=False), int(lab.max())


def _edge_labels(lab: np.ndarray, open_edges: Sequence[bool]) -> NDArray[np.int32]:
    """Labels on the window edges that lie inside the image (top, bottom, left, right)."""
    parts = [side for side, is_open in zip((lab[0], lab[-1], lab[:, 0], lab[:, -1]), open_edges) if is_open]
    return np.unique(np.concatenate(parts)) if parts else np.empty(0, np.int32)


def _pairs(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All 4-neighbour pixel pairs of ``a`` as two flat arrays (each pair once)."""
    return (np.concatenate([a[:, :-1].ravel(), a[:-1, :].ravel()]),
            np.concatenate([a[:, 1:].ravel(), a[1:, :].ravel()]))


def _absorb_small(values: np.ndarray, min_px: int, k: int, open_edges: Sequence[bool]) -> np.ndarray:
    """Step 1: components under ``min_px`` pixels take their most bordering class."""
    lab, n = _label_all(values)
    count = np.bincount(lab.ravel(), minlength=n + 1)
    small = count < min_px
    small[0] = False
    small[_edge_labels(lab, open_edges)] = False
    if not small.any():
        return values
    la, lb = _pairs(lab)
    va, vb = _pairs(values.astype(np.int64))
    diff = la != lb
    la, lb, va, vb = la[diff], lb[diff], va[diff], vb[diff]
    # each pair borders both sides: (component, neighbour class, neighbour is small)
    comp = np.concatenate([la, lb])
    ncls = np.concatenate([vb, va])
    nsmall = small[np.concatenate([lb, la])]
    sel = small[comp]
    comp, ncls, nsmall = comp[sel], ncls[sel], nsmall[sel]
    ids, inv = np.unique(comp, return_inverse=True)
    hist_all = np.bincount(inv * k + ncls, minlength=ids.size * k).reshape(ids.size, k)
    hist_big = np.bincount(inv[~nsmall] * k + ncls[~nsmall], minlength=ids.size * k).reshape(ids.size, k)
    use_big = hist_big.sum(axis=1) > 0
    choice = np.where(use_big, np.argmax(hist_big, axis=1), np.argmax(hist_all, axis=1))
    lut = np.arange(n + 1, dtype=np.int64)
    lut[:] = -1
    lut[ids] = choice
    new = lut[lab]
    out = values.copy()
    hit = new >= 0
    out[hit] = new[hit].astype(values.dtype)
    return out


def _shift(a: np.ndarray, dy: int, dx: int, fill: Any) -> np.ndarray:
    """``out[y, x] = a[y + dy, x + dx]`` (``fill`` outside)."""
    h, w = a.shape
    out = np.full_like(a, fill)
    ys, yd = (slice(dy, h), slice(0, h - dy)) if dy >= 0 else (slice(0, h + dy), slice(-dy, h))
    xs, xd = (slice(dx, w), slice(0, w - dx)) if dx >= 0 else (slice(0, w + dx), slice(-dx, w))
    out[yd, xd] = a[ys, xs]
    return out


def _cuts(raw: np.ndarray, cleaned: np.ndarray, forms: NDArray[np.bool_], bridge: int) -> NDArray[np.bool_]:
    """Step 2: grain pixels on a boundary line (or bridging a gap in one) between two
    regions of their own class."""
    evidence = ~forms[raw]
    if bridge > 0:
        # evidence within ``bridge`` steps along each of the 8 directions (0 = east,
        # counter-clockwise in 45° steps); a pixel with evidence in two directions at
        # least 135° apart lies in a gap of a line (straight, or turning at a junction)
        near = []
        for dy, dx in _EIGHT:
            seen = np.zeros_like(evidence)
            for s in range(1, bridge + 1):
                seen |= _shift(evidence, s * dy, s * dx, False)
            near.append(seen)
        bridged = np.zeros_like(evidence)
        for i in range(8):
            for j in (i + 3, i + 4, i + 5):
                if j % 8 > i:
                    bridged |= near[i] & near[j % 8]
        evidence = evidence | bridged
    grain = forms[cleaned]
    candidate = evidence & grain
    if not candidate.any():
        return candidate
    reach = bridge + 1
    cut = np.zeros_like(candidate)
    for dy, dx in _DIRECTIONS:
        sides = []
        for sign in (1, -1):
            found = np.full(cleaned.shape, -1, dtype=np.int64)  # class of the first non-evidence pixel
            for s in range(1, reach + 1):
                ev = _shift(evidence, sign * s * dy, sign * s * dx, True)
                cl = _shift(cleaned, sign * s * dy, sign * s * dx, 0).astype(np.int64)
                take = (found < 0) & ~ev
                found[take] = cl[take]
                # outside the image there is no class: mark as "none" so it never matches
                outside = _shift(np.ones(cleaned.shape, bool), sign * s * dy, sign * s * dx, False)
                found[(found < 0) & ~outside] = -2
            sides.append(found)
        own = cleaned.astype(np.int64)
        cut |= (sides[0] == own) & (sides[1] == own)
    return cut & candidate


def _drop_fragments(cleaned: np.ndarray, cut: NDArray[np.bool_], forms: NDArray[np.bool_], min_px: int,
                    open_edges: Sequence[bool]) -> NDArray[np.bool_]:
    """Step 3: grains (components without the cut pixels) under ``min_px`` pixels are cut."""
    from skimage.measure import label

    keep = forms[cleaned] & ~cut
    mapped = np.where(keep, cleaned.astype(np.int32) + 1, 0)
    lab = label(mapped, background=0, connectivity=1)
    count = np.bincount(lab.ravel())
    small = count < min_px
    small[0] = False
    small[_edge_labels(lab, open_edges)] = False
    if not small.any():
        return cut
    return cut | small[lab]


def clean_window(values: np.ndarray, forms_grains: Sequence[bool] | NDArray[np.bool_], rules: GrainRules,
                 pixel_size_um: float, open_edges: Sequence[bool] = (False, False, False, False),
                 ) -> tuple[np.ndarray, NDArray[np.bool_]]:
    """Clean a class map (a whole image, or a chunk with its halo) and find its cut pixels.

    ``forms_grains[c]``: whether class ``c`` forms grains (minerals) or is boundary evidence
    (background, pore/epoxy, unclassified). ``open_edges``: which window edges (top, bottom,
    left, right) lie inside the image: components touching them are taken as large.
    Returns ``(cleaned values, cut mask)``; only pixels farther than ``rules.halo`` from an
    open edge are exact.
    """
    forms = np.asarray(forms_grains, dtype=bool)
    k = forms.size
    v = np.asarray(values)
    check_values(v, k)
    cut = np.zeros(v.shape, dtype=bool)
    if not v.size or not rules.active(pixel_size_um):
        return v, cut
    n = rules.min_px(pixel_size_um)
    cleaned = _absorb_small(v, n, k, open_edges) if n > 1 else v
    if rules.split:
        cut = _cuts(v, cleaned, forms, int(rules.bridge_px))
    if n > 1:
        cut = _drop_fragments(cleaned, cut, forms, n, open_edges)
    return cleaned, cut


def clean_image(values: np.ndarray, forms_grains: Sequence[bool] | NDArray[np.bool_], rules: GrainRules,
                pixel_size_um: float) -> tuple[np.ndarray, NDArray[np.bool_]]:
    """The reference: :func:`clean_window` on the whole image at once."""
    return clean_window(values, forms_grains, rules, pixel_size_um)


def read_cleaned(read: Callable[[int, int, int, int], np.ndarray], box: tuple[int, int, int, int],
                 image_shape: tuple[int, int], forms_grains: Sequence[bool] | NDArray[np.bool_],
                 rules: GrainRules, pixel_size_um: float) -> tuple[np.ndarray, np.ndarray, NDArray[np.bool_]]:
    """One chunk ``box = (y0, x0, h, w)``: its raw values, cleaned values and cut mask,
    from a window of :meth:`GrainRules.halo` pixels around it (clipped at the image);
    ``read(y0, x0, h, w)`` reads a window of the raw class map."""
    y0, x0, h, w = box
    H, W = image_shape
    g = rules.halo(pixel_size_um)
    wy0, wx0 = max(0, y0 - g), max(0, x0 - g)
    wy1, wx1 = min(H, y0 + h + g), min(W, x0 + w + g)
    window = np.asarray(read(wy0, wx0, wy1 - wy0, wx1 - wx0))
    core = (slice(y0 - wy0, y0 - wy0 + h), slice(x0 - wx0, x0 - wx0 + w))
    if g == 0:
        check_values(window, len(forms_grains))
        return window, window, np.zeros(window.shape, dtype=bool)
    cleaned, cut = clean_window(window, forms_grains, rules, pixel_size_um,
                                open_edges=(wy0 > 0, wy1 < H, wx0 > 0, wx1 < W))
    return window[core], cleaned[core], cut[core]


def clean_chunked(values: np.ndarray, tile: Sequence[int], forms_grains: Sequence[bool] | NDArray[np.bool_],
                  rules: GrainRules, pixel_size_um: float) -> tuple[np.ndarray, NDArray[np.bool_]]:
    """:func:`clean_image`, computed chunk by chunk as the ingestion does (for checking)."""
    from mis.grains.labelling import iter_tiles

    v = np.asarray(values)
    H, W = v.shape
    cleaned = np.empty_like(v)
    cut = np.zeros(v.shape, dtype=bool)

    def read(y0: int, x0: int, h: int, w: int) -> np.ndarray:
        return v[y0 : y0 + h, x0 : x0 + w]

    for _, row in iter_tiles((H, W), tile):
        for _iy, _ix, y0, x0, h, w in row:
            _, c, k = read_cleaned(read, (y0, x0, h, w), (H, W), forms_grains, rules, pixel_size_um)
            cleaned[y0 : y0 + h, x0 : x0 + w] = c
            cut[y0 : y0 + h, x0 : x0 + w] = k
    return cleaned, cut
