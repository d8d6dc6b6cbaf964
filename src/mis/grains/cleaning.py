"""Class-map cleaning before grains are labelled: a minimum grain size, and grains of one
mineral split along the boundary lines between them; chunk by chunk, equal to the whole image.

Automated mineralogy (QEMSCAN, MLA, TIMA, Mineralogic) never reports raw pixel components
of a classified map: classification noise would become "grains" and touching grains of
one mineral would merge. The ingestion therefore labels grains on a *cleaned* map
(:func:`clean_window`), with 4-connectivity like the labelling itself
(:mod:`mis.grains.labelling`):

0. **Uncertain pixels.** A pixel is *uncertain* when the classifier's probability of its
   class is under ``confidence`` (default 0.5: another class is about as likely), or when
   it belongs to a dark non-grain structure (background, pore/epoxy, unclassified)
   thinner than ``boundary_um`` (default 3 µm, at least 3 px: a square opening removes
   it): a grain-boundary groove, not a pore. Uncertain pixels take the class most
   frequent among their certain 8-neighbours, ring by ring for up to ``fill_px`` rings.
   Boundary lines thus go back to the grains on either side (modal mineralogy counts
   them, as the true grains hold them) and low-confidence blobs shrink to what the
   classifier was sure of.
1. **Absorb small components.** Every component (any class, background included) of
   fewer than ``min_px`` pixels, and every one under ``UNSURE_FACTOR x min_px`` pixels
   most of whose pixels were uncertain, takes the class that borders it most
   (4-neighbour pixel edges counted), preferring neighbours that are not small
   themselves; ties go to the lower class index. Salt-and-pepper pixels, specks and
   blobs go back to the grain they sit in; small pores inside a grain are filled, as the
   anchors do. The cleaned map is what modal mineralogy, roxels and rock statistics are
   computed from, so everything a run reports is consistent with it.
2. **Boundary cuts (splitting touching grains).** *Evidence* of a boundary: non-grain and
   uncertain pixels, plus pixels in gaps of a line of uncertain pixels (uncertain pixels
   within ``bridge_px`` in two directions at least 135° apart), kept where they form
   8-connected sets of :data:`MIN_LINE_PX` or more (lines, not specks). The evidence is
   thinned (scikit-image ``thin``, bounded iterations) to its one-pixel centre line; a
   centre-line pixel of a mineral that no other mineral borders is **cut**, and cuts are
   carried two pixels on along their line so that they reach a boundary with another
   mineral (no gap at a T-junction). Cut pixels keep their class (modal mineralogy,
   roxels) but belong to no grain: an 8-connected line of them separates 4-connected
   grains, so two grains meeting at a boundary line stay two. A line between two
   *different* minerals separates them anyway and is not cut.
3. **Minimum grain size.** Grains (components of one class without the cut pixels) of
   fewer than ``min_px`` pixels, and *slivers* (under ``SLIVER_FACTOR x min_px`` pixels,
   beside a cut and no more than ``2 SLIVER_PX`` pixels thick: what a cut along a noisy
   line chops off a grain) are not grains: their pixels become cut pixels too. Every
   grain a run writes has ``min_px`` pixels or more, which is the size cut-off its
   statistics are stated over.

2b. **Distance-transform split (watershed saddles).** Where the boundary line is faint
   (a 1.5 µm groove at 5 µm per pixel shows as scattered dashes) or absent, grains of
   one mineral are split by shape, as QEMSCAN/MLA/ImageJ separate touching particles: the
   watershed line of the distance transform between two h-maxima markers runs through a
   *saddle*. It is found locally (:func:`_necks`): the distance to the nearest evidence
   or other mineral, clipped at :data:`WATERSHED_REACH_PX`; a saddle is a pixel least on
   a line through it, both of whose sides rise within the reach to maxima at least
   ``watershed_h`` px above it (the h-maxima markers), with its distance at most
   ``watershed_neck`` of the smaller maximum (a neck, relative to the grain's radius),
   and bounded across on both sides. An elongated grain has no saddle along its axis
   (no rise); a bent or irregular one has none deeper than ``h``. Saddles join the
   boundary evidence; across a pass wider than :data:`WIDE_NECK_PX` and bounded by lines
   (not specks of noise) the line is drawn from side to side. Measured on the truth
   bench; what it does not reach (junctions of thin wedges, lines wholly invisible
   between equal-sized grains) stays merged.

Seamless over chunks. Each step only looks a bounded distance away: step 0 ``fill_px``
and ``boundary_px`` pixels; step 1 decides a component's fate from its pixels and their
neighbours, and a component of fewer than ``m`` pixels spans fewer than ``m``; step 2
looks ``bridge_px``, :data:`MIN_LINE_PX` and twice the thinning iterations away, its
split three reaches and :data:`ANCHOR_PX`; step 3 ``min_px``. A chunk read with a halo
of :meth:`GrainRules.halo` pixels (clipped at the image border) and cleaned on its own
is therefore exactly the whole-image result on the chunk: components that touch the
window's edge inside the image are taken as large, and lines are mirrored only at the
image border, which is right for every pixel farther than the halo from an inner edge
(tested against :func:`clean_image`, pixel for pixel, with tiles of a few pixels, and
through the ingestion).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mis.imagery.chunks import tile_rows

__all__ = [
    "DEFAULT_MIN_GRAIN_PX",
    "DEFAULT_BRIDGE_PX",
    "GrainRules",
    "RAW_COMPONENTS",
    "BadValue",
    "check_values",
    "clean_window",
    "clean_image",
    "clean_chunked",
    "read_cleaned",
    "window_reader",
    "describe_rules",
]

#: Default minimum grain area, in pixels of the image (the default in µm² is this times
#: the pixel area). Chosen on the truth bench (bench/bench_grains.py): classification
#: errors live at the scale of the classifier's features, a few pixels, whatever the
#: pixel size; 16 px (an ECD of 4.5 px) removes specks and blobs of up to ~2.5 px radius.
DEFAULT_MIN_GRAIN_PX = 16
#: Default length of gaps bridged in a boundary line, in pixels on either side. Measured on
#: the truth bench: 1 px splits fewer grains falsely under heavy noise but leaves the gaps
#: of faint lines (2 µm per pixel and coarser) open; 2 px does better on the suite.
DEFAULT_BRIDGE_PX = 2
#: Default confidence: a pixel whose class probability is under 0.5 has another class
#: (or several) about as likely as its own; its class is taken from its certain neighbours.
DEFAULT_CONFIDENCE = 0.5
#: Default reach of that fill, in pixels (classification blobs are a few pixels across).
DEFAULT_FILL_PX = 3
#: Widest dark line taken for a grain boundary rather than a pore (µm; at least 3 px):
#: grain-boundary grooves of polished sections are 1-3 µm wide.
DEFAULT_BOUNDARY_UM = 3.0
#: A component of which the classifier was unsure for most pixels is noise up to this
#: many times the minimum grain area (classification blobs; a grain it is sure of stays).
UNSURE_FACTOR = 3
#: Grains beside a cut under this many times the minimum grain area are slivers that a
#: cut along a noisy line chopped off a grain, not grains.
SLIVER_FACTOR = 3
#: ... and thin: no pixel farther than this from the sliver's edge.
SLIVER_PX = 2.0
#: Distance-transform split: the h of its h-maxima markers, in pixels (a grain's distance
#: maximum must stand this far above the saddle to the next grain).
DEFAULT_WATERSHED_H_PX = 2.0
#: ... and the saddle (half the neck's width) must be at most this share of the smaller
#: grain's radius (its distance maximum).
DEFAULT_WATERSHED_NECK = 0.5
#: How far the split looks for the two maxima either side of a saddle, in pixels.
WATERSHED_REACH_PX = 12
#: The distance-transform split marks a saddle's centre; it draws the watershed line across
#: a pass only where the pass is at least this half-width (px) and bounded by lines, pores
#: or other minerals on both sides: narrower passes between specks of classification noise
#: are everywhere in a noisy map (drawn across, they cut grains apart: +25..45 % counts
#: under heavy noise on the truth bench), and the narrow gaps of a faint line are closed
#: by their centres and the line's dashes around them.
WIDE_NECK_PX = 2.5
#: Evidence in 8-connected sets of fewer pixels is a speck (noise), not a line, when a
#: pass is bounded (a classification blob is up to ~20 px; measured: 8 vs 3 px, 8 better).
ANCHOR_PX = 8
#: A gap in a line of uncertain pixels is bridged between pixels that are part of a line
#: or dark (a groove's pixel): a lone mineral pixel of low confidence (salt-and-pepper
#: noise) is no end of a line. Measured on the
#: truth bench: bridging from isolated uncertain pixels cut grains apart along chains of
#: noise (counts +40..70 % under heavy noise).
SEED_PX = 2
#: Boundary evidence comes in lines: 8-connected sets of fewer pixels are specks, not lines.
MIN_LINE_PX = 3

_EIGHT = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))


@dataclass(frozen=True)
class GrainRules:
    """How a run turns its class map into grains (stated in the run's provenance).

    ``min_area_um2``: minimum grain area in µm² (None: :data:`DEFAULT_MIN_GRAIN_PX` pixels
    of the image; 0: none; with ``split=False`` as well nothing is cleaned and every raw
    component is a grain, :data:`RAW_COMPONENTS`). ``split``: cut same-class grains along
    boundary lines (step 2). ``bridge_px``: gaps in a boundary line bridged.
    ``confidence``: pixels whose class probability is below it are *uncertain* (step 0;
    0 = ignore the probability). ``fill_px``: how far (in pixels) uncertain pixels are
    filled from their certain neighbours.
    """

    min_area_um2: float | None = None
    split: bool = True
    bridge_px: int = DEFAULT_BRIDGE_PX
    confidence: float = DEFAULT_CONFIDENCE
    fill_px: int = DEFAULT_FILL_PX
    boundary_um: float = DEFAULT_BOUNDARY_UM
    watershed: bool = True
    watershed_h: float = DEFAULT_WATERSHED_H_PX
    watershed_neck: float = DEFAULT_WATERSHED_NECK

    def __post_init__(self) -> None:
        if self.min_area_um2 is not None and (not math.isfinite(self.min_area_um2) or self.min_area_um2 < 0):
            raise ValueError(f"minimum grain area must be a finite number >= 0 µm², got {self.min_area_um2!r}")
        for name, hi in (("bridge_px", 16), ("fill_px", 16)):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not 0 <= int(v) <= hi:
                raise ValueError(f"{name} must be an integer number of pixels in 0..{hi}, got {v!r}")
        if not (isinstance(self.boundary_um, (int, float)) and 0.0 <= float(self.boundary_um) <= 1000.0):
            raise ValueError(f"boundary width must be in 0..1000 µm, got {self.boundary_um!r}")
        if not (isinstance(self.watershed_h, (int, float)) and 0.0 <= float(self.watershed_h) <= WATERSHED_REACH_PX):
            raise ValueError(f"watershed h must be in 0..{WATERSHED_REACH_PX} px, got {self.watershed_h!r}")
        if not (isinstance(self.watershed_neck, (int, float)) and 0.0 < float(self.watershed_neck) <= 1.0):
            raise ValueError("watershed neck must be a share of the grain radius in (0, 1], "
                             f"got {self.watershed_neck!r}")
        if not (isinstance(self.confidence, (int, float)) and 0.0 <= float(self.confidence) < 1.0):
            raise ValueError(f"confidence must be a probability in [0, 1), got {self.confidence!r}")

    def min_px(self, pixel_size_um: float) -> int:
        """The minimum grain area in whole pixels (at least 1: 1 px = no cleaning)."""
        if self.min_area_um2 is None:
            return DEFAULT_MIN_GRAIN_PX
        p = float(pixel_size_um)
        return max(1, math.ceil(self.min_area_um2 / (p * p) - 1e-9))

    def boundary_px(self, pixel_size_um: float) -> int:
        """Side of the square opening that tells boundary lines from pores: non-grain
        structures narrower than it are lines (0: none are)."""
        if self.boundary_um <= 0:
            return 0
        return 2 * math.ceil(float(self.boundary_um) / (2 * float(pixel_size_um)) - 1e-9) + 1

    def thinning(self, pixel_size_um: float) -> int:
        """Thinning iterations that reduce a boundary line to its centre line."""
        return max(self.boundary_px(pixel_size_um), 3) // 2 + 1

    def active(self, pixel_size_um: float) -> bool:
        return self.min_px(pixel_size_um) > 1 or self.split

    def halo(self, pixel_size_um: float) -> int:
        """Pixels read around a chunk so that cleaning it alone equals the whole image
        (see the module docstring): ``boundary_px + fill_px`` for step 0, ``(UNSURE_FACTOR
        + 1) min_px`` for step 1 (a component and its neighbours), ``2 bridge + 2 thinning +
        MIN_LINE_PX + SEED_PX + 4`` for step 2 (and ``3 WATERSHED_REACH_PX + ANCHOR_PX + 4``
        for its distance-transform split: distances, rays, and the line drawn across),
        ``SLIVER_FACTOR min_px`` for step 3, and a margin."""
        if not self.active(pixel_size_um):
            return 0
        n = self.min_px(pixel_size_um)
        split = (2 * int(self.bridge_px) + 2 * self.thinning(pixel_size_um) + MIN_LINE_PX + SEED_PX + 4
                 + (3 * WATERSHED_REACH_PX + ANCHOR_PX + 4 if self.watershed else 0)) if self.split else 0
        return (self.boundary_px(pixel_size_um) + int(self.fill_px) + (UNSURE_FACTOR + 1) * n + split
                + SLIVER_FACTOR * n + 4)

    def parameters(self, pixel_size_um: float) -> dict[str, Any]:
        """The rules as the run's provenance and reports state them."""
        n = self.min_px(pixel_size_um)
        p = float(pixel_size_um)
        return {
            "min_grain_area_um2": float(n * p * p) if n > 1 else 0.0,
            "min_grain_px": n,
            "min_grain_area_source": f"default ({DEFAULT_MIN_GRAIN_PX} px of the image)"
            if self.min_area_um2 is None else "user",
            "clean": n > 1,
            "uncertain_noise_px": UNSURE_FACTOR * n if n > 1 else 0,
            "sliver_px": SLIVER_FACTOR * n if n > 1 and self.split else 0,
            "sliver_width_px": 2 * SLIVER_PX if n > 1 and self.split else 0,
            "confidence": float(self.confidence),
            "fill_px": int(self.fill_px),
            "boundary_um": float(self.boundary_um),
            "boundary_px": self.boundary_px(pixel_size_um),
            "split": bool(self.split),
            "split_method": "boundary lines (dark non-grain or uncertain pixels between grains of one class)"
            if self.split else None,
            "bridge_px": int(self.bridge_px) if self.split else None,
            "watershed": bool(self.split and self.watershed),
            "watershed_h_px": float(self.watershed_h) if self.split and self.watershed else None,
            "watershed_neck": float(self.watershed_neck) if self.split and self.watershed else None,
            "watershed_reach_px": WATERSHED_REACH_PX if self.split and self.watershed else None,
            "size_statistics": "grains not touching the image border",
            "connectivity": 4,
        }


def describe_rules(parameters: dict[str, Any]) -> str:
    """The grain rules of a run (:meth:`GrainRules.parameters`) in one sentence, as
    reports and pages state them."""
    if not parameters:
        return "grains: raw 4-connected components of the class map (no rules recorded)"
    if parameters.get("clean"):
        by_default = str(parameters.get("min_grain_area_source", "")).startswith("default")
        source = "default" if by_default else "set by the user"
        text = (f"grains: cleaned class map, minimum grain area {parameters['min_grain_area_um2']:.4g} µm² "
                f"({parameters['min_grain_px']} px, {source}); smaller components absorbed by their surroundings")
    else:
        text = "grains: raw 4-connected components of the class map (no minimum grain area)"
    if parameters.get("split"):
        text += ("; touching grains of one mineral split along boundary lines "
                 f"(gaps up to {parameters['bridge_px']} px bridged)")
        if parameters.get("watershed"):
            text += (" and at necks of the distance transform (watershed saddles: markers "
                     f"{parameters['watershed_h_px']:g} px above the saddle, "
                     f"neck at most {parameters['watershed_neck']:g} of the smaller grain's radius, "
                     f"within {parameters['watershed_reach_px']} px)")
    return text + "; sizes (D10/D50/D90 of the area-weighted ECD) over grains not touching the image border"


#: Today's raw components: no cleaning, no split (every component is a grain).
RAW_COMPONENTS = GrainRules(min_area_um2=0.0, split=False)


class BadValue(ValueError):
    """A class map holds a value that is no class index; ``pixel`` is where (row, col of
    the array checked), None for a wrong dtype."""

    def __init__(self, message: str, pixel: tuple[int, int] | None = None) -> None:
        super().__init__(message)
        self.pixel = pixel


def check_values(values: np.ndarray, n_classes: int) -> None:
    """Class values must be integers in ``0..n_classes-1`` (:class:`BadValue` saying which
    and where)."""
    v = np.asarray(values)
    if v.dtype.kind not in "ui":
        raise BadValue(f"the label array must hold integers (class indices), not {v.dtype}")
    if not v.size:
        return
    hi, lo = int(v.max()), int(v.min())
    if hi >= n_classes or lo < 0:
        bad = hi if hi >= n_classes else lo
        y, x = (int(i) for i in np.unravel_index(int(np.argmax(v == bad)), v.shape))
        raise BadValue(f"class value {bad} is " + (f"outside the class list (0..{n_classes - 1})" if bad >= 0
                                                   else "negative"), (y, x))


def _label_all(values: np.ndarray) -> tuple[NDArray[np.int32], int]:
    from skimage.measure import label

    lab = label(values.astype(np.int32) + 1, background=0, connectivity=1)
    return lab.astype(np.int32, copy=False), int(lab.max())


def _edge_labels(lab: np.ndarray, open_edges: Sequence[bool]) -> NDArray[np.int32]:
    """Labels on the window edges that lie inside the image (top, bottom, left, right)."""
    parts = [side for side, is_open in zip((lab[0], lab[-1], lab[:, 0], lab[:, -1]), open_edges, strict=True)
             if is_open]
    return np.unique(np.concatenate(parts)) if parts else np.empty(0, np.int32)


def _pairs(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All 4-neighbour pixel pairs of ``a`` as two flat arrays (each pair once)."""
    return (np.concatenate([a[:, :-1].ravel(), a[:-1, :].ravel()]),
            np.concatenate([a[:, 1:].ravel(), a[1:, :].ravel()]))


def _absorb_small(values: np.ndarray, min_px: int, k: int, open_edges: Sequence[bool],
                  uncertain: NDArray[np.bool_] | None = None) -> np.ndarray:
    """Step 1: components under ``min_px`` pixels, and those under ``UNSURE_FACTOR *
    min_px`` of which most pixels were uncertain, take their most bordering class
    (preferring neighbours of at least ``min_px`` pixels)."""
    lab, n = _label_all(values)
    count = np.bincount(lab.ravel(), minlength=n + 1)
    tiny = count < min_px
    tiny[0] = False
    tiny[_edge_labels(lab, open_edges)] = False
    small = tiny.copy()
    if uncertain is not None and uncertain.any():
        unsure = np.bincount(lab.ravel(), weights=uncertain.ravel(), minlength=n + 1)
        small |= (count < UNSURE_FACTOR * min_px) & (2 * unsure > count)
        small[0] = False
        small[_edge_labels(lab, open_edges)] = False
    if not small.any():
        return values
    la, lb = _pairs(lab)
    va, vb = _pairs(values.astype(np.int64))
    diff = la != lb
    la, lb, va, vb = la[diff], lb[diff], va[diff], vb[diff]
    # each pair borders both sides: (component, neighbour class, neighbour under min_px)
    comp = np.concatenate([la, lb])
    ncls = np.concatenate([vb, va])
    nsmall = tiny[np.concatenate([lb, la])]
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


def _fill_uncertain(values: np.ndarray, uncertain: NDArray[np.bool_], k: int, reach: int,
                    ) -> np.ndarray:
    """Step 0: uncertain pixels take the class most frequent among their certain
    8-neighbours (ties: the lower class index), ring by ring, ``reach`` times; those
    with no certain pixel within reach keep their class. Computed at the uncertain
    pixels only."""
    h, w = values.shape
    out = values.copy()
    flat = out.reshape(-1)
    pending = uncertain.copy().reshape(-1)
    idx = np.flatnonzero(pending)
    for _ in range(reach):
        if not idx.size:
            break
        r, c = np.divmod(idx, w)
        votes = np.zeros(idx.size * k, dtype=np.int32)
        for dy, dx in _EIGHT:
            rr, cc = r + dy, c + dx
            ok = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
            nb = rr[ok] * w + cc[ok]
            good = ~pending[nb]
            at = np.flatnonzero(ok)[good]
            votes += np.bincount(at * k + flat[nb[good]].astype(np.int64), minlength=votes.size).astype(np.int32)
        tally = votes.reshape(idx.size, k)
        has = tally.max(axis=1) > 0
        if not has.any():
            break
        flat[idx[has]] = np.argmax(tally[has], axis=1).astype(values.dtype)
        pending[idx[has]] = False
        idx = idx[~has]
    return out


def _lines(evidence: NDArray[np.bool_], open_edges: Sequence[bool], min_px: int = MIN_LINE_PX) -> NDArray[np.bool_]:
    """Evidence in 8-connected sets of at least :data:`MIN_LINE_PX` pixels (lines, not specks)."""
    from skimage.measure import label

    lab = label(evidence, background=0, connectivity=2)
    count = np.bincount(lab.ravel())
    keep = count >= min_px
    keep[0] = False
    keep[_edge_labels(lab, open_edges)] = True
    keep[0] = False
    return keep[lab]


def _bridge(evidence: NDArray[np.bool_], uncertain: NDArray[np.bool_], bridge: int) -> NDArray[np.bool_]:
    """Evidence plus the pixels in gaps of a line of uncertain pixels (not between pores):
    those with uncertain pixels within ``bridge`` steps in two directions at least 135°
    apart (a straight line, or one turning at a junction)."""
    near = []
    for dy, dx in _EIGHT:  # 0 = east, counter-clockwise in 45° steps
        seen = np.zeros_like(uncertain)
        for s in range(1, bridge + 1):
            seen |= _shift(uncertain, s * dy, s * dx, False)
        near.append(seen)
    bridged = evidence.copy()
    for i in range(8):
        for j in (i + 3, i + 4, i + 5):
            if j % 8 > i:
                bridged |= near[i] & near[j % 8]
    return bridged


def _necks(evidence: NDArray[np.bool_], specks: NDArray[np.bool_], cleaned: np.ndarray,
           forms: NDArray[np.bool_], reach: int, h: float, neck: float) -> NDArray[np.bool_]:
    """Step 2b: saddles of the distance transform between two grains of one mineral (the
    watershed line of a distance-transform watershed with h-maxima markers, found
    locally). The distance is to the nearest boundary evidence (non-grain or uncertain
    pixel, dashes of a faint line included), or other-mineral pixel, clipped at ``reach``;
    a grain pixel ``p`` is a neck when, along some line through it, its distance is the
    least of its two neighbours' on that line and, within ``reach`` pixels of the grain
    on either side, the distance rises to maxima ``M1, M2`` with ``min(M) - d(p) >= h``
    (two markers deeper than ``h``) and ``d(p) <= neck x min(M)`` (the neck narrower than
    that share of the smaller grain's radius). An elongated grain has no saddle along its
    axis; a gap in a faint boundary line between two grains, or the waist of two touching
    discs, is one."""
    from scipy.ndimage import distance_transform_edt

    inside = forms[cleaned] & ~evidence
    same = cleaned
    for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):  # pixels beside another mineral are no interior
        nb = _shift(same, dy, dx, 0)
        ok = _shift(np.ones(same.shape, dtype=bool), dy, dx, False)
        inside &= ~ok | (nb == same) | ~forms[nb]
    d = np.minimum(distance_transform_edt(inside).astype(np.float32), np.float32(reach))
    out = np.zeros(d.shape, dtype=bool)
    cand = inside & (d <= neck * reach)
    if not cand.any():
        return out
    # computed at the candidates only, on arrays padded by the reach (no bounds to check):
    # a ray leaves the grain at the image border (interior False, distance 0 there)
    from scipy.ndimage import binary_erosion

    pad = reach + 1
    w = d.shape[1] + 2 * pad
    rows, cols = np.nonzero(cand)
    idx = (rows + pad) * w + cols + pad
    dc = d[rows, cols]
    d_pad = np.pad(d, pad).ravel()
    d_inf = np.pad(d, pad, constant_values=np.inf).ravel()
    in_pad = np.pad(inside, pad).ravel()
    # steps to the first pixel that is no interior (or beside one: a diagonal line is a
    # staircase a diagonal step can miss), along each of the 8 directions; beyond the image
    # border the grain is taken to go on (reach + 1: none)
    def steps_to(bound: NDArray[np.bool_]) -> dict[tuple[int, int], NDArray[np.float32]]:
        core = binary_erosion(~bound, structure=np.ones((3, 3), dtype=bool), border_value=1)
        not_core = ~np.pad(core, pad, constant_values=True).ravel()
        out = {}
        for dy, dx in _EIGHT:
            f = np.full(idx.size, reach + 1, dtype=np.float32)
            for t in range(reach, 0, -1):
                f[not_core[idx + t * (dy * w + dx)]] = t
            out[dy, dx] = f
        return out

    first = steps_to(~inside)
    # ... and to the first pixel of a line, a boundary or a pore (no lone speck of noise)
    first_line = steps_to(~inside & ~specks)
    mark = np.zeros(in_pad.size, dtype=bool)
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        step = dy * w + dx
        side = []
        for sgn in (1, -1):
            alive = np.ones(idx.size, dtype=bool)
            best = np.zeros(idx.size, dtype=np.float32)
            for t in range(1, reach + 1):
                at = idx + sgn * t * step
                alive &= in_pad[at]
                np.maximum(best, np.where(alive, d_pad[at], 0), out=best)
            side.append(best)
        m = np.minimum(side[0], side[1])
        lowest = (dc <= d_inf[idx + step]) & (dc <= d_inf[idx - step])
        # a pass between two stretches of boundary: bounded across, on both sides, within
        # about its half-width (not the strip between a pore and the image border)
        across = 1.5 * dc + 2.5
        bounded = (first[-dx, dy] <= across) & (first[dx, -dy] <= across)
        hit = lowest & bounded & (m - dc >= h) & (dc <= neck * m)
        # the watershed line runs across the pass, from line to line (between specks of
        # noise, only its centre is marked: it closes no boundary)
        mark[idx[hit]] = True
        hit &= (first_line[-dx, dy] <= across) & (first_line[dx, -dy] <= across) & (dc >= WIDE_NECK_PX)
        for vy, vx in ((-dx, dy), (dx, -dy)):
            reach_v = first_line[vy, vx]
            for t in range(1, reach + 1):
                sel = hit & (t <= reach_v)
                if not sel.any():
                    break
                mark[idx[sel] + t * (vy * w + vx)] = True
    return (mark & in_pad).reshape(d.shape[0] + 2 * pad, w)[pad:-pad, pad:-pad]


def _cuts(evidence: NDArray[np.bool_], cleaned: np.ndarray, forms: NDArray[np.bool_], thinning: int,
          open_edges: Sequence[bool]) -> NDArray[np.bool_]:
    """Step 2: the centre line of boundary evidence where it separates two grains of one
    mineral."""
    from skimage.morphology import thin

    if not (evidence & forms[cleaned]).any():
        return np.zeros_like(evidence)
    # a one-pixel (8-connected) centre line separates 4-connected grains; the rest of a
    # thick line goes back to the grains on either side (bounded iterations: local)
    # (lines run on beyond the image border: mirrored there, so thinning does not shorten them)
    t, b, lf, rt = (0 if is_open else thinning for is_open in open_edges)
    padded = np.pad(evidence, ((t, b), (lf, rt)), mode="symmetric")
    line = thin(padded, max_num_iter=thinning)[t : t + evidence.shape[0], lf : lf + evidence.shape[1]]
    line &= forms[cleaned]
    # cut where no other mineral borders the line pixel: a line between two grains of one
    # mineral (between two minerals it separates them anyway and goes to the grains)
    # (computed at the line pixels only)
    h, w = line.shape
    idx = np.flatnonzero(line)
    r, c = np.divmod(idx, w)
    flat, flat_line = cleaned.reshape(-1), line.reshape(-1)
    own = flat[idx]
    other = np.zeros(idx.size, dtype=bool)
    for dy, dx in _EIGHT:
        rr, cc = r + dy, c + dx
        ok = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        nb = rr[ok] * w + cc[ok]
        cls = flat[nb]
        other[ok] |= ~flat_line[nb] & forms[cls] & (cls != own[ok])
    cut = np.zeros_like(line)
    cut.reshape(-1)[idx[~other]] = True
    # a cut ends where its line meets a boundary with another mineral: carried on
    # along the line for two pixels, so that it reaches that boundary (no gap at a T)
    from scipy.ndimage import binary_dilation

    return binary_dilation(cut, structure=np.ones((3, 3), dtype=bool), iterations=2, mask=line)


def _drop_fragments(cleaned: np.ndarray, cut: NDArray[np.bool_], forms: NDArray[np.bool_], min_px: int,
                    open_edges: Sequence[bool]) -> NDArray[np.bool_]:
    """Step 3: grains (components without the cut pixels) under ``min_px`` pixels, and
    slivers a cut made (under ``SLIVER_FACTOR x min_px`` pixels and beside a cut pixel),
    are cut."""
    from skimage.measure import label

    keep = forms[cleaned] & ~cut
    mapped = np.where(keep, cleaned.astype(np.int32) + 1, 0)
    lab = label(mapped, background=0, connectivity=1)
    count = np.bincount(lab.ravel())
    small = count < min_px
    if SLIVER_FACTOR > 1 and cut.any():
        beside = np.zeros(count.size, dtype=bool)
        la, lb = _pairs(lab)
        ca, cb = _pairs(cut)
        beside[la[cb]] = True
        beside[lb[ca]] = True
        candidate = beside & (count < SLIVER_FACTOR * min_px)
        candidate[0] = False
        if candidate.any():  # and thin: no pixel farther than SLIVER_PX from its edge
            from scipy.ndimage import distance_transform_edt

            sel = candidate[lab]
            thick = np.zeros(count.size, dtype=bool)
            thick[lab[sel & (distance_transform_edt(sel) > SLIVER_PX)]] = True
            small |= candidate & ~thick
    small[0] = False
    small[_edge_labels(lab, open_edges)] = False
    if not small.any():
        return cut
    return cut | small[lab]


Forms = Sequence[bool] | NDArray[np.bool_]


def clean_window(values: np.ndarray, forms_grains: Forms, rules: GrainRules, pixel_size_um: float,
                 probability: np.ndarray | None = None,
                 open_edges: Sequence[bool] = (False, False, False, False),
                 ) -> tuple[np.ndarray, NDArray[np.bool_]]:
    """Clean a class map (a whole image, or a chunk with its halo) and find its cut pixels.

    ``forms_grains[c]``: whether class ``c`` forms grains (minerals) or is boundary evidence
    (background, pore/epoxy, unclassified). ``probability``: the classifier's probability of
    each pixel's class (optional; NaN counts as certain). ``open_edges``: which window edges
    (top, bottom, left, right) lie inside the image: components touching them are taken as
    large. Returns ``(cleaned values, cut mask)``; only pixels farther than
    :meth:`GrainRules.halo` from an open edge are exact.
    """
    forms = np.asarray(forms_grains, dtype=bool)
    k = forms.size
    v = np.asarray(values)
    check_values(v, k)
    cut = np.zeros(v.shape, dtype=bool)
    if not v.size or not rules.active(pixel_size_um):
        return v, cut
    n = rules.min_px(pixel_size_um)
    nongrain = ~forms[v]
    uncertain = np.zeros(v.shape, dtype=bool)
    b = rules.boundary_px(pixel_size_um)
    if b and nongrain.any():
        # a square opening (separable min/max filters; outside the window counts as grain,
        # as in a binary opening): what it removes is thinner than b pixels
        from scipy.ndimage import maximum_filter, minimum_filter

        ng = nongrain.view(np.uint8)
        opened = maximum_filter(minimum_filter(ng, size=b, mode="constant", cval=0), size=b, mode="constant", cval=0)
        uncertain |= nongrain & (opened == 0)
    if probability is not None and rules.confidence > 0:
        prob = np.asarray(probability, dtype=np.float32)
        if prob.shape != v.shape:
            raise ValueError(f"the probability window is {prob.shape}, the class window {v.shape}")
        uncertain |= prob < np.float32(rules.confidence)
    evidence = nongrain | uncertain
    cleaned = _fill_uncertain(v, uncertain, k, int(rules.fill_px)) if rules.fill_px and uncertain.any() else v
    if n > 1:
        cleaned = _absorb_small(cleaned, n, k, open_edges, uncertain)
    if rules.split:
        lines = _lines(evidence, open_edges)
        if rules.bridge_px:  # gaps between line pieces, not between isolated specks
            seeds = (_lines(evidence, open_edges, SEED_PX) | nongrain) & uncertain
            lines = _lines(_bridge(evidence, seeds, int(rules.bridge_px)), open_edges)
        if rules.watershed:
            specks = evidence & ~_lines(evidence | lines, open_edges, ANCHOR_PX)
            necks = _necks(evidence, specks, cleaned, forms, WATERSHED_REACH_PX, float(rules.watershed_h),
                           float(rules.watershed_neck))
            if necks.any():  # the necks join the dashes of the line they close
                from scipy.ndimage import binary_dilation

                lines |= necks | (evidence & binary_dilation(necks, structure=np.ones((3, 3), dtype=bool)))
        cut = _cuts(lines, cleaned, forms, rules.thinning(pixel_size_um), open_edges)
    if n > 1:
        cut = _drop_fragments(cleaned, cut, forms, n, open_edges)
    return cleaned, cut


def clean_image(values: np.ndarray, forms_grains: Forms, rules: GrainRules, pixel_size_um: float,
                probability: np.ndarray | None = None) -> tuple[np.ndarray, NDArray[np.bool_]]:
    """The reference: :func:`clean_window` on the whole image at once."""
    return clean_window(values, forms_grains, rules, pixel_size_um, probability)


Reader = Callable[[int, int, int, int], np.ndarray]


def read_cleaned(read: Reader, box: tuple[int, int, int, int], image_shape: tuple[int, int],
                 forms_grains: Forms, rules: GrainRules, pixel_size_um: float,
                 read_probability: Reader | None = None) -> tuple[np.ndarray, NDArray[np.bool_]]:
    """One chunk ``box = (y0, x0, h, w)``: its cleaned values and cut mask, from a window
    of :meth:`GrainRules.halo` pixels around it (clipped at the image);
    ``read(y0, x0, h, w)`` reads a window of the raw class map, ``read_probability`` one
    of the probabilities (optional)."""
    y0, x0, h, w = box
    H, W = image_shape
    g = rules.halo(pixel_size_um)
    wy0, wx0 = max(0, y0 - g), max(0, x0 - g)
    wy1, wx1 = min(H, y0 + h + g), min(W, x0 + w + g)
    window = np.asarray(read(wy0, wx0, wy1 - wy0, wx1 - wx0))
    core = (slice(y0 - wy0, y0 - wy0 + h), slice(x0 - wx0, x0 - wx0 + w))
    try:
        check_values(window, len(forms_grains))
    except BadValue as exc:  # where in the image
        if exc.pixel is None:
            raise
        y, x = exc.pixel[0] + wy0, exc.pixel[1] + wx0
        raise BadValue(f"{exc} at pixel ({y}, {x})", (y, x)) from None
    if g == 0:
        return window, np.zeros(window.shape, dtype=bool)
    prob = None
    if read_probability is not None and rules.confidence > 0:
        prob = np.asarray(read_probability(wy0, wx0, wy1 - wy0, wx1 - wx0))
    cleaned, cut = clean_window(window, forms_grains, rules, pixel_size_um, prob,
                                open_edges=(wy0 > 0, wy1 < H, wx0 > 0, wx1 < W))
    return cleaned[core], cut[core]


def clean_chunked(values: np.ndarray, tile: Sequence[int], forms_grains: Forms, rules: GrainRules,
                  pixel_size_um: float, probability: np.ndarray | None = None,
                  ) -> tuple[np.ndarray, NDArray[np.bool_]]:
    """:func:`clean_image`, computed chunk by chunk as the ingestion does (for checking)."""
    v = np.asarray(values)
    H, W = v.shape
    cleaned = np.empty_like(v)
    cut = np.zeros(v.shape, dtype=bool)
    read_p = None if probability is None else window_reader(probability)
    for _, row in tile_rows((H, W), tile):
        for _iy, _ix, y0, x0, h, w in row:
            c, k = read_cleaned(window_reader(v), (y0, x0, h, w), (H, W), forms_grains, rules, pixel_size_um, read_p)
            cleaned[y0 : y0 + h, x0 : x0 + w] = c
            cut[y0 : y0 + h, x0 : x0 + w] = k
    return cleaned, cut


def window_reader(array: Any) -> Reader:
    """``read(y0, x0, h, w)`` of a 2-D array (numpy or zarr)."""

    def read(y0: int, x0: int, h: int, w: int) -> np.ndarray:
        return np.asarray(array[y0 : y0 + h, x0 : x0 + w])

    return read
