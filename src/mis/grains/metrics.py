"""Grain statistics per tile, and the metrics of whole grains once merged.

Coordinates. Pixel ``(row, col)`` is the square ``col <= x < col + 1``, ``row <= y < row + 1``
in *pixel-corner* units while computing (integers: unions of pieces from neighbouring
tiles are exact). Outlines are then written in **image micrometres** with the OME-Zarr
convention of :mod:`mis.imagery.omezarr`: the centre of pixel ``(row, col)`` is at
``x = col * p``, ``y = row * p`` (p = pixel size in µm), x to the right, **y downwards**
(the image's own orientation, as IIIF viewers and the zarr arrays have it).

Metrics of a grain of ``N`` pixels (p = pixel size):

- ``area_um2`` = N p² (pixel count: what modal mineralogy adds up);
- ``outline``: the boundary of the grain's pixel squares (the union of its pixels: a
  valid Polygon, holes kept) smoothed through the midpoints of the pixel edges (the
  marching-squares contour between pixel centres in and out; it cuts each pixel corner by
  at most sqrt(2)/4 = 0.354 px) and simplified by Douglas-Peucker with tolerance
  0.5 - 0.354 px (topology-preserving where plain Douglas-Peucker gave an invalid ring),
  so every point of the stored outline lies **within half a pixel** of the pixel boundary
  and vice versa, without its staircase; if that ever gave an invalid or empty shape the
  pixel outline is kept;
- ``perimeter_um``: length of the midpoint (marching-squares) contour: exact for edges
  along the pixel axes and diagonals, ~5 % long for smooth curves, where the staircase of
  the pixel edges would be up to 4/π (27 %) long; it does not depend on the chunking;
- ``ecd_um`` = 2 sqrt(N p² / π), the equivalent circle diameter;
- ``major_axis_um``/``minor_axis_um``: 4 sqrt(λ) of the eigenvalues of the second moments
  of the pixel squares (the moments of the pixel centres plus 1/12 px² per axis, the
  moment of a unit square, so a single pixel has axes 4/sqrt(12) px, never 0);
  ``orientation_deg`` in [0, 180): the angle of the major axis from +x towards +y
  (clockwise on screen, since y points down); ``aspect_ratio`` = major / minor >= 1;
- ``solidity`` = N / area of the convex hull of the pixel squares, in (0, 1];
- ``form_factor`` = 4π A / P² of the midpoint contour (its area A and perimeter P),
  in (0, 1] (1 for a circle, π/4 for a square);
- ``roundness`` = 4 N p² / (π Feret_max²), in (0, 1];
- ``feret_max_um``/``feret_min_um``: largest and smallest calliper width of the pixel
  squares (from their convex hull);
- ``mean_probability``: mean of the classifier's probability over the grain's pixels;
- ``touches_border``: a pixel on the first/last row/column of the image (the grain may be
  cut, so its size and shape are censored);
- ``tiles``: the zarr chunks (tiles) holding at least one of its pixels.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mis.grains.cleaning import RAW_COMPONENTS, GrainRules
from mis.grains.labelling import Components, LocalLabels, Ragged, TileComponents, tile_components

__all__ = [
    "GRAIN_REDUCERS",
    "GrainTable",
    "tile_grain_stats",
    "tile_pieces",
    "grain_tile",
    "grain_metrics",
    "feret_max",
    "to_micrometres",
    "measure_grains",
    "concat_tables",
]

#: How the per-tile grain statistics merge across tiles.
GRAIN_REDUCERS = {
    "count": "sum", "sr": "sum", "sc": "sum", "srr": "sum", "scc": "sum", "src": "sum",
    "psum": "sum", "border": "or",
}

#: Douglas-Peucker tolerance of the stored outline, after the midpoint smoothing
#: (at most sqrt(2)/4 px): together within half a pixel of the pixel boundary.
OUTLINE_TOLERANCE_PX = 0.5 - math.sqrt(2) / 4


def tile_grain_stats(local: LocalLabels, y0: int, x0: int, image_shape: tuple[int, int],
                     probability: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Additive statistics of every component of one tile (pixel-centre coordinates in
    global pixels): count, sums of r, c, r², c², rc, of the probability, and whether a
    pixel lies on the image border."""
    lab = local.labels
    n = local.n
    h, w = lab.shape
    flat = lab.ravel()
    m = n + 1
    rows = np.repeat(np.arange(y0, y0 + h, dtype=np.float64), w)
    cols = np.tile(np.arange(x0, x0 + w, dtype=np.float64), h)
    count = np.bincount(flat, minlength=m)
    out = {
        "count": count[1:].astype(np.int64),
        "sr": np.bincount(flat, rows, m)[1:],
        "sc": np.bincount(flat, cols, m)[1:],
        "srr": np.bincount(flat, rows * rows, m)[1:],
        "scc": np.bincount(flat, cols * cols, m)[1:],
        "src": np.bincount(flat, rows * cols, m)[1:],
    }
    if probability is not None:
        out["psum"] = np.bincount(flat, np.asarray(probability, dtype=np.float64).ravel(), m)[1:]
    else:
        out["psum"] = np.full(n, np.nan)
    border = np.zeros(m, dtype=bool)
    H, W = image_shape
    if y0 == 0:
        border[lab[0]] = True
    if y0 + h == H:
        border[lab[-1]] = True
    if x0 == 0:
        border[lab[:, 0]] = True
    if x0 + w == W:
        border[lab[:, -1]] = True
    out["border"] = border[1:]
    return out


def tile_pieces(local: LocalLabels, y0: int, x0: int) -> Ragged:
    """The outline of every component of a tile as a shapely Polygon in global
    pixel-corner coordinates (one per component, 4-connected)."""
    import shapely
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.features import shapes
    from rasterio.transform import Affine

    # rasterio's in-memory datasets warn "not georeferenced" while they are set up: pixel
    # coordinates are what we want (re-applied per call: test runners reset the filters)
    warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)
    n = local.n
    pieces = np.empty(n, dtype=object)
    if n:
        lab = local.labels
        coords: list[np.ndarray] = []
        ring_owner: list[int] = []
        for geom, val in shapes(lab, mask=lab > 0, connectivity=4,
                                transform=Affine(1.0, 0.0, float(x0), 0.0, 1.0, float(y0))):
            owner = int(val) - 1
            for ring in geom["coordinates"]:
                coords.append(np.asarray(ring, dtype=np.float64))
                ring_owner.append(owner)
        lens = np.fromiter((c.shape[0] for c in coords), dtype=np.int64, count=len(coords))
        xy = np.concatenate(coords)
        rings = shapely.linearrings(xy, indices=np.repeat(np.arange(lens.size), lens))
        # rasterio yields each component's rings together, shell first: polygons by owner
        owners = np.asarray(ring_owner, dtype=np.int64)
        order = np.argsort(owners, kind="stable")
        polys = shapely.polygons(rings[order], indices=owners[order])
        pieces[: polys.size] = polys
        # (GDAL's rings of a 4-connected set are valid: holes touching the shell at a
        # vertex come as separate rings; grain_metrics checks the final outlines)
    return Ragged.singletons(pieces)


def grain_tile(local: LocalLabels, iy: int, ix: int, y0: int, x0: int, image_shape: tuple[int, int],
               probability: np.ndarray | None = None) -> TileComponents:
    """A labelled tile's grains as the component stream takes them: their statistics
    (:func:`tile_grain_stats`) and outline pieces (:func:`tile_pieces`). The ingestion and
    :func:`measure_grains` both go through here, so they measure alike."""
    tc = tile_components(local, iy, ix, y0, x0, image_shape[1])
    tc.stats = tile_grain_stats(local, y0, x0, image_shape, probability)
    tc.ragged["pieces"] = tile_pieces(local, y0, x0)
    return tc


def _polygon(geom):
    """The polygon in a geometry made valid (the union of a 4-connected pixel set is one)."""
    import shapely

    if geom.geom_type == "Polygon":
        return geom
    polys = [g for g in getattr(geom, "geoms", [geom]) if g.geom_type in ("Polygon", "MultiPolygon")]
    merged = shapely.union_all(polys)
    if merged.geom_type == "Polygon":
        return merged
    # Should not happen for a 4-connected set; keep the largest part rather than fail.
    return max(merged.geoms, key=lambda g: g.area)


def feret_max(hulls: np.ndarray) -> NDArray[np.float64]:
    """Largest distance between two vertices of each convex hull (vectorised by size)."""
    import shapely

    n = hulls.size
    out = np.zeros(n)
    if n == 0:
        return out
    coords, idx = shapely.get_coordinates(hulls, return_index=True)
    counts = np.bincount(idx, minlength=n)
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    prev, size = 0, 4
    top = int(counts.max())
    while prev < top:
        sel = np.flatnonzero((counts > prev) & (counts <= size))
        if sel.size:
            budget = max(1, 4_000_000 // (size * size))
            for b0 in range(0, sel.size, budget):
                part = sel[b0 : b0 + budget]
                pos = starts[part][:, None] + np.minimum(np.arange(size)[None, :], counts[part][:, None] - 1)
                pts = coords[pos]  # (nb, size, 2), padded by repeating the last vertex
                best = np.zeros(part.size)
                for j in range(size):
                    d = pts - pts[:, j : j + 1, :]
                    np.maximum(best, np.einsum("nij,nij->ni", d, d).max(axis=1), out=best)
                out[part] = np.sqrt(best)
        prev, size = size, size * 2
    return out


def midpoint_outline(polys: np.ndarray) -> np.ndarray:
    """The marching-squares contour of pixel polygons: every vertex is replaced by the two
    points half a pixel along its edges (for unit edges: the edge midpoints), which cuts
    each corner and keeps straight runs straight. Independent of extra vertices on
    straight edges (e.g. where tile pieces were joined). Vectorised over all polygons;
    rings keep their order, so holes stay holes."""
    import shapely

    n = polys.size
    if n == 0:
        return polys
    rings, owner = shapely.get_rings(polys, return_index=True)
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    # drop each ring's closing coordinate, then find every vertex's neighbours (cyclic)
    closing = np.zeros(ring.size, dtype=bool)
    closing[:-1] = ring[1:] != ring[:-1]
    closing[-1] = True
    c, rg = coords[~closing], ring[~closing]
    idx = np.arange(rg.size)
    start = np.ones(rg.size, dtype=bool)
    start[1:] = rg[1:] != rg[:-1]
    end = np.ones(rg.size, dtype=bool)
    end[:-1] = rg[1:] != rg[:-1]
    first_of = np.maximum.accumulate(np.where(start, idx, 0))
    last_of = first_of + np.bincount(rg)[rg] - 1
    nxt = np.where(end, first_of, idx + 1)
    prv = np.where(start, last_of, idx - 1)

    def toward(other: np.ndarray) -> np.ndarray:
        d = c[other] - c
        length = np.hypot(d[:, 0], d[:, 1])
        return c + 0.5 * d / np.maximum(length, 1e-12)[:, None]

    pts = np.empty((2 * rg.size, 2))
    pts[0::2] = toward(prv)
    pts[1::2] = toward(nxt)
    new_rings = shapely.linearrings(pts, indices=np.repeat(rg, 2))
    out = np.empty(n, dtype=object)
    out[:] = shapely.polygons(new_rings, indices=owner)
    return out


def to_micrometres(geoms: np.ndarray, pixel_size_um: float) -> np.ndarray:
    """Pixel-corner coordinates -> image micrometres (pixel centres at ``index * p``)."""
    import shapely

    p = float(pixel_size_um)
    return shapely.transform(geoms, lambda xy: (xy - 0.5) * p)


@dataclass
class GrainTable:
    """Metrics of a batch of whole grains, one entry per grain (see the module docstring)."""

    label: NDArray[np.int64]  # first pixel's linear index, row * width + col
    class_index: NDArray[np.int32]
    count: NDArray[np.int64]
    centroid_x_um: NDArray[np.float64]
    centroid_y_um: NDArray[np.float64]
    area_um2: NDArray[np.float64]
    perimeter_um: NDArray[np.float64]
    ecd_um: NDArray[np.float64]
    major_axis_um: NDArray[np.float64]
    minor_axis_um: NDArray[np.float64]
    orientation_deg: NDArray[np.float64]
    aspect_ratio: NDArray[np.float64]
    solidity: NDArray[np.float64]
    form_factor: NDArray[np.float64]
    roundness: NDArray[np.float64]
    feret_max_um: NDArray[np.float64]
    feret_min_um: NDArray[np.float64]
    mean_probability: NDArray[np.float64]  # NaN = unknown
    touches_border: NDArray[np.bool_]
    outline: np.ndarray  # shapely Polygons in image µm
    tiles: Ragged  # tile ids iy * n_tiles_x + ix

    def __len__(self) -> int:
        return int(self.label.size)

    def take(self, idx: NDArray[np.integer]) -> GrainTable:
        """The grains at positions ``idx``, in that order."""
        from dataclasses import fields

        return GrainTable(**{f.name: getattr(self, f.name).take(idx) if f.name == "tiles"
                             else getattr(self, f.name)[idx] for f in fields(GrainTable)})


def _good_polygons(geoms: np.ndarray) -> NDArray[np.bool_]:
    import shapely

    return shapely.is_valid(geoms) & ~shapely.is_empty(geoms) & (shapely.get_type_id(geoms) == 3)


def grain_metrics(final: Components, pixel_size_um: float) -> GrainTable:
    """Metrics of merged grains (the ``final`` of a :class:`~mis.grains.labelling.TileResult`
    whose stream carried :data:`GRAIN_REDUCERS` and ragged ``pieces``)."""
    import shapely

    p = float(pixel_size_um)
    s = final.stats
    n = len(final)
    count = s["count"].astype(np.float64)
    cr = s["sr"] / count
    cc = s["sc"] / count
    vr = np.maximum(s["srr"] / count - cr * cr, 0.0) + 1.0 / 12.0
    vc = np.maximum(s["scc"] / count - cc * cc, 0.0) + 1.0 / 12.0
    cov = s["src"] / count - cr * cc
    half_sum = 0.5 * (vr + vc)
    root = np.sqrt((0.5 * (vc - vr)) ** 2 + cov * cov)
    l1 = half_sum + root
    l2 = np.maximum(half_sum - root, 1.0 / 12.0 * 1e-6)
    major = 4.0 * np.sqrt(l1)
    minor = 4.0 * np.sqrt(l2)
    orientation = np.degrees(0.5 * np.arctan2(2.0 * cov, vc - vr)) % 180.0

    # Outlines: one piece per tile component; union the pieces of multi-tile grains.
    pieces = final.ragged["pieces"]
    lens = pieces.lengths()
    raw = np.empty(n, dtype=object)
    single = lens == 1
    raw[single] = pieces.values[pieces.offsets[:-1][single]]
    for i in np.flatnonzero(~single).tolist():
        try:
            raw[i] = _polygon(shapely.union_all(pieces[i]))
        except shapely.errors.GEOSException:
            raw[i] = _polygon(shapely.union_all(shapely.make_valid(pieces[i])))
    hull = shapely.convex_hull(raw)
    hull_area = shapely.area(hull)
    solidity = np.clip(count / hull_area, 0.0, 1.0)
    fmax = feret_max(hull)
    fmin = shapely.length(shapely.minimum_width(hull))

    smooth = midpoint_outline(raw)
    # plain Douglas-Peucker (fast); the rare invalid result is redone preserving topology,
    # and if even that fails the pixel outline (made valid) is kept
    simple = shapely.simplify(smooth, OUTLINE_TOLERANCE_PX, preserve_topology=False)
    bad = ~_good_polygons(simple)
    if np.any(bad):
        simple[bad] = shapely.simplify(smooth[bad], OUTLINE_TOLERANCE_PX, preserve_topology=True)
        bad = ~_good_polygons(simple)
        if np.any(bad):
            simple[bad] = [_polygon(shapely.make_valid(p)) for p in raw[bad]]
    # length and area of the midpoint contour (they need no validity check)
    perim = shapely.length(smooth)
    form = np.clip(4.0 * math.pi * shapely.area(smooth) / (perim * perim), 0.0, 1.0)
    roundness = np.clip(4.0 * count / (math.pi * fmax * fmax), 0.0, 1.0)
    with np.errstate(invalid="ignore"):
        mean_p = np.clip(s["psum"] / count, 0.0, 1.0)

    return GrainTable(
        label=final.first.copy(),
        class_index=final.value.astype(np.int32),
        count=s["count"].astype(np.int64),
        centroid_x_um=cc * p,
        centroid_y_um=cr * p,
        area_um2=count * p * p,
        perimeter_um=perim * p,
        ecd_um=2.0 * np.sqrt(count / math.pi) * p,
        major_axis_um=major * p,
        minor_axis_um=minor * p,
        orientation_deg=orientation,
        aspect_ratio=major / minor,
        solidity=solidity,
        form_factor=form,
        roundness=roundness,
        feret_max_um=fmax * p,
        feret_min_um=fmin * p,
        mean_probability=mean_p,
        touches_border=s["border"].astype(bool),
        outline=to_micrometres(simple, p),
        tiles=final.tiles,
    )


def measure_grains(values: np.ndarray, tile: tuple[int, int], pixel_size_um: float,
                   ignore: tuple[int, ...] | list[int] = (), probability: np.ndarray | None = None,
                   rules: GrainRules = RAW_COMPONENTS) -> GrainTable:
    """Grain metrics of a whole (in-memory) class map, computed tile by tile exactly as the
    ingestion does (the classes in ``ignore`` form no grains; ``rules``: the cleaning, by
    default none); grains are returned in raster order of their first pixel."""
    from mis.grains.cleaning import read_cleaned, window_reader
    from mis.grains.labelling import ComponentStream, ignore_lut, label_tile
    from mis.imagery.chunks import tile_rows

    v = np.asarray(values)
    H, W = v.shape
    lut = ignore_lut(ignore, int(v.max()) if v.size else 0)
    stream = ComponentStream((H, W), tile, GRAIN_REDUCERS, ragged=("pieces",))
    tables = []
    read_p = None if probability is None else window_reader(probability)
    for _, row in tile_rows((H, W), tile):
        for iy, ix, y0, x0, h, w in row:
            cleaned, cut = read_cleaned(window_reader(v), (y0, x0, h, w), (H, W), lut > 0, rules, pixel_size_um,
                                        read_p)
            local = label_tile(cleaned, lut, exclude=cut)
            prob = None if probability is None else probability[y0 : y0 + h, x0 : x0 + w]
            tc = grain_tile(local, iy, ix, y0, x0, (H, W), prob)
            tables.append(grain_metrics(stream.push_tile(tc).final, pixel_size_um))
    return concat_tables(tables, order=True)


def concat_tables(tables: list[GrainTable], order: bool = False) -> GrainTable:
    """One table from several; with ``order`` sorted by label (raster order)."""
    from dataclasses import fields

    out: dict[str, Any] = {}  # one column per field, of that field's type
    for f in fields(GrainTable):
        parts = [getattr(t, f.name) for t in tables]
        out[f.name] = Ragged.concat(parts) if f.name == "tiles" else np.concatenate(parts)
    table = GrainTable(**out)
    return table.take(np.argsort(table.label, kind="stable")) if order else table
