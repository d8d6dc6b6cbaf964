"""Rock statistics of one image (one run): what automated mineralogy reports per sample.

Everything is accumulated chunk by chunk (:class:`RockAccumulator`), in memory bounded by
the number of classes, never by the number of pixels or grains.

Definitions (p = pixel size in µm; "minerals" = classes of the ``mineral`` scheme):

- **Modal mineralogy**, area fraction: pixels of a mineral / pixels of all minerals.
  Non-mineral classes (background, pore/epoxy, unclassified) are left out of the
  denominator, as automated-mineralogy systems do. By stereology (Delesse) the area
  fraction estimates the volume fraction. **Weight fraction**: area fraction x density
  (``density_g_cm3`` from the mineral vocabulary), normalised; only when every mineral
  present has a density (otherwise the weight fractions are left empty: a partial
  normalisation would overstate the others).
- **Grains** are those of the cleaned class map (:mod:`mis.grains.cleaning`): every one
  has at least the run's minimum grain area (the cut-off), and ``n`` counts them all.
  **Grain size** statistics leave out the grains touching the image border (their size
  is cut by the frame, so they would bias the sizes down), as the anchors do; ``n_sized``
  says how many grains they are over, and ``grain_size["rules"]`` states the rules (the
  run's cut-off in µm² and px, splitting, border rule).
- **Grain size**: D10, D50, D90 of the equivalent circle diameter of each mineral's
  grains, **area-weighted** (the size below which 10/50/90 % of the mineral's area lies;
  the automated-mineralogy convention, less sensitive to countless tiny specks than a
  count-weighted median, which is given too as ``d50_number_um``). Computed from a
  logarithmic histogram with bins 1 % wide (values within 0.5 %).
- **Mineral association**: for each mineral, the share of its boundary shared with each
  other class (4-neighbour pixel edges between the two classes; the image border is not
  a boundary). Background, pore/epoxy and unclassified are classes like the others here,
  so "shares with background" is the free surface.
- **Liberation** of chosen minerals (area based): particles are the 4-connected sets of
  sample pixels (every class but background and pore/epoxy). A particle's liberation for
  mineral M is M's share of the particle's area; the mineral's area in each liberation
  class (default: *locked* < 20 %, *middling* 20-80 %, *liberated* >= 80 %; the bounds
  are configurable) over all of the mineral's area gives the liberation spectrum. On a
  section of solid rock the whole section is one particle; liberation is meaningful for
  grain mounts of crushed material.
- **Phase-specific surface area** S_V of a mineral (µm²/µm³ = 1/µm): surface area of the
  phase per volume of the phase. By stereology S_V = (4/π) L_A, with the boundary length
  per area L_A; counting 4-neighbour pixel edges overestimates an isotropic boundary's
  length by 4/π, so S_V = (boundary pixel edges x p) / (phase area): the two factors
  cancel. With a density, the specific surface area in m²/g is S_V[1/µm] / ρ[g/cm³].
- **Lithology**: given by the user (``lithology_source = 'user'``), or proposed by a
  simple rule (``'rule'``, see :func:`propose_lithology`), or none.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "SEGMENTATION_CLASS",
    "BACKGROUND",
    "PORE_EPOXY",
    "UNCLASSIFIED",
    "ClassInfo",
    "LiberationClasses",
    "LogHistogram",
    "RockAccumulator",
    "RockResult",
    "load_classes",
    "edge_counts",
    "tile_edges",
    "modal_mineralogy",
    "weighted_percentiles",
    "association_shares",
    "liberation_spectrum",
    "surface_area",
    "propose_lithology",
]

SEGMENTATION_CLASS = "https://w3id.org/mis/vocab/segmentation-class/"
BACKGROUND = SEGMENTATION_CLASS + "background"
PORE_EPOXY = SEGMENTATION_CLASS + "pore-epoxy"
UNCLASSIFIED = SEGMENTATION_CLASS + "unclassified"
MINERAL = "https://w3id.org/mis/vocab/mineral/"
LITHOLOGY = "http://resource.geosciml.org/classifier/cgi/lithology/"


@dataclass(frozen=True)
class ClassInfo:
    """One class of a run, with what the statistics need from its concept."""

    index: int
    uri: str
    concept_id: int
    scheme: str
    label: str
    notation: str | None = None
    density_g_cm3: float | None = None
    colour: str | None = None
    mineral_class: str | None = None

    @property
    def is_mineral(self) -> bool:
        return self.scheme == "mineral"

    @property
    def forms_grains(self) -> bool:
        """Grains are made of every class but the non-mineral segmentation classes."""
        return self.scheme != "segmentation-class"

    @property
    def is_sample(self) -> bool:
        """Part of a particle (not the mount or pores)."""
        return self.uri not in (BACKGROUND, PORE_EPOXY)

    @property
    def symbol(self) -> str:
        return self.notation or self.label

    @classmethod
    def from_concept(cls, index: int, uri: str, concept_id: int, scheme: str, label: str,
                     notation: str | None, properties: dict | None) -> ClassInfo:
        """A class from its concept's columns (density, colour and mineral class come from
        the concept's properties)."""
        props = properties or {}
        dens = props.get("density_g_cm3")
        return cls(int(index), uri, int(concept_id), scheme, label, notation,
                   None if dens is None else float(dens), props.get("colour"), props.get("mineralClass"))


def load_classes(session: Any, uris: Sequence[str]) -> list[ClassInfo]:
    """The concepts of a run's ordered class list (SQLAlchemy session); unknown URIs raise."""
    from sqlalchemy import select

    from mis.catalogue import models as m

    rows = {c.uri: c for c in session.scalars(select(m.Concept).where(m.Concept.uri.in_(list(uris))))}
    missing = [u for u in uris if u not in rows]
    if missing:
        raise LookupError(f"class concept(s) not in the vocabulary: {', '.join(missing)}")
    if len(set(uris)) != len(uris):
        raise ValueError("the class list names a concept twice")
    return [ClassInfo.from_concept(i, uri, c.id, c.scheme, c.pref_label, c.notation, c.properties)
            for i, uri in enumerate(uris) for c in [rows[uri]]]


# --------------------------------------------------------------------------- pixels & edges
def edge_counts(a: np.ndarray, b: np.ndarray, k: int) -> NDArray[np.int64]:
    """Symmetric k x k counts of facing pixel pairs (a[i], b[i]) of different class."""
    a = np.asarray(a, dtype=np.int64).ravel()
    b = np.asarray(b, dtype=np.int64).ravel()
    diff = a != b
    a, b = a[diff], b[diff]
    m = np.bincount(a * k + b, minlength=k * k).reshape(k, k)
    return m + m.T


def tile_edges(values: np.ndarray, k: int) -> NDArray[np.int64]:
    """Class-boundary pixel edges inside one tile (both directions counted in the
    symmetric matrix: ``E[a, b] == E[b, a]`` = edges between a and b)."""
    v = np.asarray(values)
    return edge_counts(v[:, :-1], v[:, 1:], k) + edge_counts(v[:-1, :], v[1:, :], k)


# --------------------------------------------------------------------------- statistics
def modal_mineralogy(pixels: NDArray[np.integer], classes: Sequence[ClassInfo]
                     ) -> tuple[dict[int, float], dict[int, float] | None]:
    """Area and weight fractions of the minerals present (class index -> fraction)."""
    px = np.asarray(pixels, dtype=np.float64)
    minerals = [c for c in classes if c.is_mineral and px[c.index] > 0]
    total = sum(px[c.index] for c in minerals)
    if total <= 0:
        return {}, None
    area = {c.index: float(px[c.index] / total) for c in minerals}
    if any(c.density_g_cm3 is None for c in minerals):
        return area, None
    mass = {c.index: area[c.index] * float(c.density_g_cm3) for c in minerals}  # type: ignore[arg-type]
    m_total = sum(mass.values())
    return area, {i: v / m_total for i, v in mass.items()}


def weighted_percentiles(values: NDArray[np.float64], weights: NDArray[np.float64],
                         q: Sequence[float]) -> list[float]:
    """Percentiles (q in 0..100) of a weighted sample: the smallest value with at least
    q % of the total weight at or below it (exact; used to check :class:`LogHistogram`)."""
    v = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    order = np.argsort(v)
    v, w = v[order], w[order]
    cum = np.cumsum(w)
    return [float(v[min(np.searchsorted(cum, qq / 100.0 * cum[-1]), v.size - 1)]) for qq in q]


class LogHistogram:
    """Per class, counts and areas of grains in logarithmic ECD bins (1 % wide), for
    D-percentiles in bounded memory."""

    LOW = 1e-3  # µm
    RATIO = 1.01
    N_BINS = 2400  # up to ~2.3e7 µm

    def __init__(self, k: int) -> None:
        self.count = np.zeros((k, self.N_BINS))
        self.area = np.zeros((k, self.N_BINS))
        self.sum_ecd = np.zeros(k)

    def _bins(self, ecd: NDArray[np.float64]) -> NDArray[np.int64]:
        b = np.floor(np.log(np.maximum(ecd, self.LOW) / self.LOW) / math.log(self.RATIO)).astype(np.int64)
        return np.clip(b, 0, self.N_BINS - 1)

    def add(self, cls: NDArray[np.integer], ecd: NDArray[np.float64], area: NDArray[np.float64]) -> None:
        cls = np.asarray(cls, dtype=np.int64)
        b = self._bins(np.asarray(ecd, dtype=np.float64))
        np.add.at(self.count, (cls, b), 1.0)
        np.add.at(self.area, (cls, b), np.asarray(area, dtype=np.float64))
        np.add.at(self.sum_ecd, cls, np.asarray(ecd, dtype=np.float64))

    def percentiles(self, cls: int, q: Sequence[float], weight: str = "area") -> list[float | None]:
        w = (self.area if weight == "area" else self.count)[cls]
        total = w.sum()
        if total <= 0:
            return [None for _ in q]
        cum = np.cumsum(w)
        out: list[float | None] = []
        for qq in q:
            target = qq / 100.0 * total
            b = int(np.searchsorted(cum, target * (1 - 1e-12)))
            b = min(b, self.N_BINS - 1)
            below = cum[b - 1] if b > 0 else 0.0
            frac = 0.0 if w[b] <= 0 else min(max((target - below) / w[b], 0.0), 1.0)
            out.append(float(self.LOW * self.RATIO ** (b + frac)))
        return out


def association_shares(edges: NDArray[np.integer], classes: Sequence[ClassInfo]) -> dict[str, dict[str, float]]:
    """For each mineral with a boundary: the share of it shared with every other class."""
    e = np.asarray(edges, dtype=np.float64)
    out: dict[str, dict[str, float]] = {}
    for c in classes:
        if not c.is_mineral:
            continue
        total = e[c.index].sum() - e[c.index, c.index]
        if total <= 0:
            continue
        out[c.uri] = {o.uri: float(e[c.index, o.index] / total) for o in classes
                      if o.index != c.index and e[c.index, o.index] > 0}
    return out


@dataclass(frozen=True)
class LiberationClasses:
    """Liberation classes by a particle's area share of the mineral: class i holds
    ``bounds[i-1] <= share < bounds[i]``; the last one includes 1 (fully liberated)."""

    bounds: tuple[float, ...] = (0.2, 0.8)
    names: tuple[str, ...] = ("locked", "middling", "liberated")

    def __post_init__(self) -> None:
        if len(self.names) != len(self.bounds) + 1:
            raise ValueError("liberation classes need one more name than bounds")
        if list(self.bounds) != sorted(self.bounds) or not all(0 < b < 1 for b in self.bounds):
            raise ValueError(f"liberation bounds must increase strictly within (0, 1), got {self.bounds}")

    def classify(self, share: NDArray[np.float64]) -> NDArray[np.int64]:
        return np.searchsorted(np.asarray(self.bounds), share, side="right")


def liberation_spectrum(mineral_area: NDArray[np.float64], particle_area: NDArray[np.float64],
                        classes: LiberationClasses = LiberationClasses()) -> dict[str, Any]:
    """Share of a mineral's area in each liberation class, from per-particle areas."""
    ma = np.asarray(mineral_area, dtype=np.float64)
    pa = np.asarray(particle_area, dtype=np.float64)
    has = ma > 0
    ma, pa = ma[has], pa[has]
    total = ma.sum()
    spectrum = {name: 0.0 for name in classes.names}
    counts = {name: 0 for name in classes.names}
    if total > 0:
        cls = classes.classify(ma / pa)
        for i, name in enumerate(classes.names):
            spectrum[name] = float(ma[cls == i].sum() / total)
            counts[name] = int((cls == i).sum())
    return {"area_share": spectrum, "particles": counts, "n_particles": int(has.sum())}


def surface_area(edges: NDArray[np.integer], pixels: NDArray[np.integer], pixel_size_um: float,
                 classes: Sequence[ClassInfo]) -> dict[str, dict[str, float | None]]:
    """Phase-specific surface area S_V (1/µm) of every mineral present, and in m²/g."""
    e = np.asarray(edges, dtype=np.float64)
    px = np.asarray(pixels, dtype=np.float64)
    out: dict[str, dict[str, float | None]] = {}
    for c in classes:
        if not c.is_mineral or px[c.index] <= 0:
            continue
        boundary = e[c.index].sum() - e[c.index, c.index]
        sv = boundary * pixel_size_um / (px[c.index] * pixel_size_um ** 2)
        out[c.uri] = {"sv_per_um": float(sv),
                      "ssa_m2_g": float(sv / c.density_g_cm3) if c.density_g_cm3 else None}
    return out


_Q = {"quartz"}
_A = {"k-feldspar", "alkali-feldspar", "orthoclase", "microcline", "sanidine", "anorthoclase", "albite"}
_P = {"plagioclase", "oligoclase", "andesine", "labradorite", "bytownite", "anorthite"}
_QAP = (  # Q' upper bound, then names for P' < 10, 10-35, 35-65, 65-90, >= 90
    (5.0, ("alkali_feldspar_syenite", "syenite", "monzonite", "monzodiorite", "diorite")),
    (20.0, ("quartz_alkali_feldspar_syenite", "quartz_syenite", "quartz_monzonite",
            "quartz_monzodiorite", "quartz_diorite")),
    (60.0, ("alkali_feldspar_granite", "syenogranite", "monzogranite", "granodiorite", "tonalite")),
    (101.0, ("quartz_rich_igneous_rock",) * 5),
)


def propose_lithology(volume: Mapping[str, float]) -> str | None:
    """A CGI Simple Lithology URI proposed from modal mineralogy (mineral URI -> volume
    fraction), or None. The rule, deliberately simple:

    1. carbonates (calcite, dolomite, ankerite, siderite, magnesite, aragonite) >= 50 %:
       *limestone* when calcite + aragonite >= dolomite, else *dolostone*;
    2. quartz + alkali feldspar (K-feldspar, orthoclase, microcline, sanidine, anorthoclase,
       albite) + plagioclase (and its members) >= 50 %, with feldspars >= 10 % (quartz
       alone may be a vein, a quartzite or chert): the Streckeisen QAP field of a
       plutonic rock (Q' = Q/(Q+A+P), P' = P/(A+P)): Q' > 60 quartz-rich igneous rock;
       20-60 alkali-feldspar granite / syenogranite / monzogranite / granodiorite /
       tonalite for P' < 10 / 10-35 / 35-65 / 65-90 / >= 90; 5-20 the quartz-syenite row;
       < 5 the syenite-monzonite-diorite row (diorite stands for gabbro too: the
       plagioclase's anorthite content is not in the image);
    3. otherwise no proposal.

    A section cannot tell plutonic from volcanic texture; a user's lithology always wins.
    """
    by_slug: dict[str, float] = {}
    for uri, v in volume.items():
        if uri.startswith(MINERAL):
            by_slug[uri[len(MINERAL):]] = by_slug.get(uri[len(MINERAL):], 0.0) + float(v)
    total = sum(by_slug.values())
    if total <= 0:
        return None
    carb = sum(by_slug.get(s, 0.0) for s in ("calcite", "dolomite", "ankerite", "siderite",
                                              "magnesite", "aragonite"))
    if carb / total >= 0.5:
        calcitic = by_slug.get("calcite", 0.0) + by_slug.get("aragonite", 0.0)
        return LITHOLOGY + ("limestone" if calcitic >= by_slug.get("dolomite", 0.0) else "dolostone")
    q = sum(by_slug.get(s, 0.0) for s in _Q)
    a = sum(by_slug.get(s, 0.0) for s in _A)
    p = sum(by_slug.get(s, 0.0) for s in _P)
    if (q + a + p) / total < 0.5 or (a + p) / total < 0.1:
        return None
    qp = 100.0 * q / (q + a + p)
    pp = 100.0 * p / (a + p) if a + p > 0 else 0.0
    column = int(np.searchsorted([10.0, 35.0, 65.0, 90.0], pp, side="right"))
    for upper, names in _QAP:
        if qp < upper:
            return LITHOLOGY + names[column]
    return None  # pragma: no cover


# --------------------------------------------------------------------------- accumulation
@dataclass
class RockResult:
    """Everything the ``rock`` and ``rock_constituent`` rows hold, plus a summary."""

    area_fraction: dict[str, float]
    wt_fraction: dict[str, float] | None
    grain_size: dict[str, Any]
    association: dict[str, Any]
    liberation: dict[str, Any]
    surface_area: dict[str, Any]
    lithology_uri: str | None
    lithology_source: str | None
    pixels: dict[str, int] = field(default_factory=dict)
    grains: dict[str, int] = field(default_factory=dict)

    def constituents(self) -> list[tuple[str, float, float | None]]:
        """(mineral URI, area fraction, weight fraction) rows, largest first."""
        wt = self.wt_fraction or {}
        return [(u, a, wt.get(u)) for u, a in sorted(self.area_fraction.items(), key=lambda t: -t[1])]


class RockAccumulator:
    """Collects per-tile pixel counts, class-boundary edges, grain sizes and particles,
    and turns them into a :class:`RockResult`."""

    def __init__(self, classes: Sequence[ClassInfo], pixel_size_um: float,
                 liberation_minerals: Iterable[int] = (),
                 liberation_classes: LiberationClasses = LiberationClasses(),
                 grain_rules: Mapping[str, Any] | None = None) -> None:
        self.classes = list(classes)
        self.k = len(self.classes)
        self.p = float(pixel_size_um)
        self.pixels = np.zeros(self.k, dtype=np.int64)
        self.edges = np.zeros((self.k, self.k), dtype=np.int64)
        self.sizes = LogHistogram(self.k)
        self.grain_count = np.zeros(self.k, dtype=np.int64)
        self.sized_count = np.zeros(self.k, dtype=np.int64)
        self.grain_rules = dict(grain_rules) if grain_rules is not None else None
        self.liberation_minerals = sorted(set(int(i) for i in liberation_minerals))
        self.liberation_classes = liberation_classes
        n_lib = len(self.liberation_classes.names)
        # Per liberation mineral: its area and particle counts in each liberation class.
        self.lib_area = np.zeros((len(self.liberation_minerals), n_lib))
        self.lib_particles = np.zeros((len(self.liberation_minerals), n_lib), dtype=np.int64)
        self.n_particles = 0

    def add_pixels(self, counts: NDArray[np.integer]) -> None:
        self.pixels += np.asarray(counts, dtype=np.int64).reshape(-1, self.k).sum(axis=0)

    def add_edges(self, edges: NDArray[np.integer]) -> None:
        self.edges += edges

    def add_grains(self, class_index: NDArray[np.integer], ecd_um: NDArray[np.float64],
                   area_um2: NDArray[np.float64], touches_border: NDArray[np.bool_] | None = None) -> None:
        """Count grains; those not touching the image border also enter the size statistics."""
        cls = np.asarray(class_index, dtype=np.int64)
        self.grain_count += np.bincount(cls, minlength=self.k)
        sized = np.ones(cls.size, dtype=bool) if touches_border is None else ~np.asarray(touches_border, dtype=bool)
        self.sizes.add(cls[sized], np.asarray(ecd_um)[sized], np.asarray(area_um2)[sized])
        self.sized_count += np.bincount(cls[sized], minlength=self.k)

    def add_particles(self, hist: NDArray[np.integer]) -> None:
        """Per particle, its pixel count of each class (n, k)."""
        h = np.asarray(hist, dtype=np.float64).reshape(-1, self.k)
        self.n_particles += h.shape[0]
        if not self.liberation_minerals or h.shape[0] == 0:
            return
        total = h.sum(axis=1)
        for j, m in enumerate(self.liberation_minerals):
            area = h[:, m]
            has = area > 0
            cls = self.liberation_classes.classify(area[has] / total[has])
            self.lib_area[j] += np.bincount(cls, weights=area[has], minlength=self.lib_area.shape[1])
            self.lib_particles[j] += np.bincount(cls, minlength=self.lib_area.shape[1])

    def result(self, lithology_uri: str | None = None, propose: bool = True) -> RockResult:
        cls = self.classes
        area_idx, wt_idx = modal_mineralogy(self.pixels, cls)
        area = {cls[i].uri: f for i, f in area_idx.items()}
        wt = {cls[i].uri: f for i, f in wt_idx.items()} if wt_idx is not None else None
        grain_size: dict[str, Any] = {}
        for c in cls:
            n = int(self.grain_count[c.index])
            if not c.forms_grains or n == 0:
                continue
            sized = int(self.sized_count[c.index])
            d10, d50, d90 = self.sizes.percentiles(c.index, (10, 50, 90), "area")
            (n50,) = self.sizes.percentiles(c.index, (50,), "number")
            grain_size[c.uri] = {
                "n": n, "n_sized": sized, "d10_um": _r(d10), "d50_um": _r(d50), "d90_um": _r(d90),
                "d50_number_um": _r(n50), "mean_ecd_um": _r(self.sizes.sum_ecd[c.index] / sized) if sized else None,
                "weighting": "area",
            }
        if self.grain_rules is not None:
            grain_size["rules"] = self.grain_rules
        association = {"boundary_share": association_shares(self.edges, cls),
                       "boundary_um": {c.uri: float((self.edges[c.index].sum() - self.edges[c.index, c.index]) * self.p)
                                       for c in cls if c.is_mineral and self.pixels[c.index] > 0}}
        liberation: dict[str, Any] = {}
        if self.liberation_minerals:
            names = self.liberation_classes.names
            minerals = {}
            for j, m in enumerate(self.liberation_minerals):
                tot = self.lib_area[j].sum()
                minerals[cls[m].uri] = {
                    "area_share": {n: float(self.lib_area[j, i] / tot) if tot > 0 else 0.0
                                   for i, n in enumerate(names)},
                    "particles": {n: int(self.lib_particles[j, i]) for i, n in enumerate(names)},
                }
            liberation = {"basis": "area", "bounds": list(self.liberation_classes.bounds),
                          "classes": list(names), "n_particles": self.n_particles, "minerals": minerals}
        sa = surface_area(self.edges, self.pixels, self.p, cls)
        source = None
        if lithology_uri:
            source = "user"
        elif propose:
            lithology_uri = propose_lithology(area)
            source = "rule" if lithology_uri else None
        return RockResult(
            area_fraction=area, wt_fraction=wt, grain_size=grain_size, association=association,
            liberation=liberation, surface_area=sa, lithology_uri=lithology_uri, lithology_source=source,
            pixels={c.uri: int(self.pixels[c.index]) for c in cls},
            grains={c.uri: int(self.grain_count[c.index]) for c in cls if self.grain_count[c.index]},
        )


def _r(v: float | None, digits: int = 4) -> float | None:
    if v is None or not math.isfinite(v):
        return None
    return float(f"{v:.{digits}g}")


# --------------------------------------------------------------------------- reports
