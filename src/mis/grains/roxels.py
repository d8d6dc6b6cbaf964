"""Roxels: the grid of r x r pixel cells over an image, their composition and place.

A roxel (row, col) of roxel size r covers the pixel window ``(row*r, col*r, r, r)``
clipped to the image. ``r`` must divide the chunk (tile) size, so a roxel never
straddles two zarr chunks: its raw link is the chunk ``(row*r // cy, col*r // cx)``.

Per roxel:

- ``composition``: the fraction of its pixels in each class of the run (a ``real[]``
  aligned with the run's class list; sums to 1);
- ``dominant_class``: the class with the most pixels (ties: the lower class index), and
  its fraction;
- ``dominant_grain``: the grain with the most pixels in the roxel (ties: the grain whose
  first pixel comes first in raster order); none when the roxel holds no grain pixel.
  Counts are by *whole* grain: two parts of one grain that meet outside the roxel count
  together;
- ``depth_m`` along the hole from the image's depth registration: with ``depth_axis``
  'x' (or 'y') pixel column (row) ``i`` of an image ``n`` pixels wide (high) sits at
  ``top + i / (n - 1) * (bottom - top)`` and a roxel at its centre's depth; without a
  depth axis every roxel sits at the plug's mid-depth (a thin section is centimetres
  across: its roxels share the plug's place in the hole);
- ``position``: PointZ (lon, lat, elevation m; EPSG:4326) at that depth on the hole,
  computed by **re-desurveying the hole** from its stored collar and survey rows with
  :mod:`mis.drillholes.desurvey` exactly as registration does (minimum curvature, same
  local frame), so a roxel lies on the arc of its survey interval. Interpolating the
  stored LineStringZ would cut corners between stations and mix degrees with metres; it
  is only the fallback when the hole cannot be desurveyed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "DEFAULT_ROXEL_SIZE",
    "roxel_dtype",
    "check_roxel_size",
    "roxel_grid",
    "TileRoxels",
    "tile_roxels",
    "composition",
    "pick_dominant",
    "DepthRegistration",
    "HolePositioner",
    "load_positioner",
    "pointz_ewkb",
]

DEFAULT_ROXEL_SIZE = 16


def roxel_dtype(n_classes: int) -> np.dtype:
    """Roxel records as the pipeline hands them to the writer.

    NULLs: ``dominant_grain_id`` -1, ``depth_m`` NaN, ``lon`` NaN (no position).
    ``dominant_class`` is the class *index* (the writer maps it to the concept id).
    """
    return np.dtype([
        ("row", "<i4"), ("col", "<i4"), ("composition", "<f4", (n_classes,)),
        ("dominant_class", "<i4"), ("dominant_fraction", "<f4"), ("dominant_grain_id", "<i8"),
        ("depth_m", "<f8"), ("lon", "<f8"), ("lat", "<f8"), ("z", "<f8"),
    ])


def check_roxel_size(r: int, tile: Sequence[int]) -> None:
    """``r`` must be positive and divide the chunk size (both spatial axes)."""
    cy, cx = (int(v) for v in tile[-2:])
    if not isinstance(r, (int, np.integer)) or r <= 0:
        raise ValueError(f"roxel size must be a positive integer, got {r!r}")
    if cy % r or cx % r:
        raise ValueError(f"roxel size {r} must divide the chunk size {cy} x {cx} "
                         f"(a roxel may not straddle two zarr chunks); try one of "
                         f"{[d for d in range(1, min(cy, cx) + 1) if cy % d == 0 and cx % d == 0][-6:]}")


def roxel_grid(shape: Sequence[int], r: int) -> tuple[int, int]:
    """Number of roxel rows and columns over an image of ``shape`` (y, x)."""
    H, W = (int(v) for v in shape[-2:])
    return -(-H // r), -(-W // r)


@dataclass
class TileRoxels:
    """The roxels of one tile, before the grains are known.

    ``rows``/``cols``: global roxel indices; ``counts``: pixels per class (nr, k);
    ``pixels``: pixels in each (clipped) window; ``pairs``: candidate dominant grains,
    ``(roxel index in this tile, local component label, pixel count)``.
    """

    rows: NDArray[np.int32]
    cols: NDArray[np.int32]
    counts: NDArray[np.int32]
    pixels: NDArray[np.int32]
    pair_roxel: NDArray[np.int64]
    pair_label: NDArray[np.int64]
    pair_count: NDArray[np.int64]


def _blocks(a: np.ndarray, r: int, fill: int) -> np.ndarray:
    """(h, w) -> (n_roxels, r*r), padded with ``fill``; roxels row-major, pixels row-major."""
    h, w = a.shape
    ny, nx = -(-h // r), -(-w // r)
    if ny * r != h or nx * r != w:
        padded = np.full((ny * r, nx * r), fill, dtype=a.dtype)
        padded[:h, :w] = a
        a = padded
    return a.reshape(ny, r, nx, r).swapaxes(1, 2).reshape(ny * nx, r * r)


def tile_roxels(values: np.ndarray, labels: np.ndarray | None, y0: int, x0: int, r: int,
                n_classes: int) -> TileRoxels:
    """Class counts and dominant-grain candidates of the roxels of one tile at (y0, x0)
    (``y0``, ``x0`` multiples of ``r``)."""
    v = np.asarray(values)
    h, w = v.shape
    ny, nx = -(-h // r), -(-w // r)
    nr = ny * nx
    k = int(n_classes)
    vb = _blocks(v.astype(np.int32, copy=False), r, k)  # k = padding, dropped below
    rid = np.repeat(np.arange(nr, dtype=np.int64), r * r)
    class_counts = np.bincount(rid * (k + 1) + vb.ravel(), minlength=nr * (k + 1)).reshape(nr, k + 1)
    pixels = r * r - class_counts[:, k]
    counts = class_counts[:, :k].astype(np.int32)
    rr, cc = np.divmod(np.arange(nr), nx)
    if labels is not None:
        lb = _blocks(np.asarray(labels), r, 0).ravel()
        keep = lb > 0
        n_lab = int(lb.max()) + 1 if lb.size else 1
        key = rid[keep] * n_lab + lb[keep]
        if nr * n_lab <= 4 * key.size + 1_000_000:
            c = np.bincount(key, minlength=nr * n_lab)
            uk = np.flatnonzero(c)
            uc = c[uk]
        else:
            uk, uc = np.unique(key, return_counts=True)
        pair_roxel, pair_label = np.divmod(uk, n_lab)
        pair_count = uc.astype(np.int64)
    else:
        pair_roxel = pair_label = pair_count = np.empty(0, np.int64)
    return TileRoxels(
        rows=(y0 // r + rr).astype(np.int32), cols=(x0 // r + cc).astype(np.int32),
        counts=counts, pixels=pixels.astype(np.int32),
        pair_roxel=pair_roxel.astype(np.int64), pair_label=pair_label.astype(np.int64),
        pair_count=pair_count,
    )


def composition(counts: NDArray[np.integer], pixels: NDArray[np.integer]
                ) -> tuple[NDArray[np.float32], NDArray[np.int32], NDArray[np.float32]]:
    """Fractions per class, dominant class index (ties: lower index) and its fraction."""
    px = np.maximum(pixels, 1).astype(np.float64)[:, None]
    frac = (counts / px).astype(np.float32)
    dom = np.argmax(counts, axis=1).astype(np.int32)
    dom_frac = frac[np.arange(frac.shape[0]), dom]
    return frac, dom, dom_frac


def pick_dominant(roxel: NDArray[np.int64], grain: NDArray[np.int64], count: NDArray[np.int64],
                  tiebreak: NDArray[np.int64], n_roxels: int) -> NDArray[np.int64]:
    """Per roxel the ``grain`` with the largest summed ``count`` (pairs of the same
    roxel and grain add up); ties go to the smallest ``tiebreak``; -1 where none."""
    out = np.full(n_roxels, -1, dtype=np.int64)
    if roxel.size == 0:
        return out
    order = np.lexsort((grain, roxel))
    roxel, grain, count, tiebreak = roxel[order], grain[order], count[order], tiebreak[order]
    new = np.ones(roxel.size, dtype=bool)
    new[1:] = (roxel[1:] != roxel[:-1]) | (grain[1:] != grain[:-1])
    starts = np.flatnonzero(new)
    summed = np.add.reduceat(count, starts)
    roxel, grain, tiebreak = roxel[starts], grain[starts], tiebreak[starts]
    order = np.lexsort((tiebreak, -summed, roxel))
    roxel, grain = roxel[order], grain[order]
    first = np.ones(roxel.size, dtype=bool)
    first[1:] = roxel[1:] != roxel[:-1]
    out[roxel[first]] = grain[first]
    return out


# --------------------------------------------------------------------------- depth
@dataclass(frozen=True)
class DepthRegistration:
    """How an image maps onto depth along its hole (see the module docstring)."""

    height: int
    width: int
    axis: str | None = None
    top_m: float | None = None
    bottom_m: float | None = None
    plug_from_m: float | None = None
    plug_to_m: float | None = None

    def __post_init__(self) -> None:
        if self.axis not in (None, "x", "y"):
            raise ValueError(f"depth axis must be 'x', 'y' or None, not {self.axis!r}")
        if self.axis is not None and (self.top_m is None or self.bottom_m is None):
            raise ValueError("a depth axis needs top and bottom depths")

    def pixel_depth(self, index: NDArray[np.float64]) -> NDArray[np.float64]:
        """Depth (m) of a (fractional) pixel index along the depth axis."""
        if self.top_m is None or self.bottom_m is None:
            raise ValueError("pixel depths need top and bottom depths")
        n = self.width if self.axis == "x" else self.height
        span = (self.bottom_m - self.top_m) / max(n - 1, 1)
        return self.top_m + np.asarray(index, dtype=np.float64) * span

    def roxel_depths(self, rows: NDArray[np.integer], cols: NDArray[np.integer], r: int) -> NDArray[np.float64]:
        """Depth of each roxel's centre; NaN when nothing places the image."""
        rows = np.asarray(rows)
        if self.axis is None:
            if self.plug_from_m is None or self.plug_to_m is None:
                return np.full(rows.shape, np.nan)
            return np.full(rows.shape, 0.5 * (self.plug_from_m + self.plug_to_m))
        idx = np.asarray(cols if self.axis == "x" else rows, dtype=np.float64)
        n = self.width if self.axis == "x" else self.height
        start = idx * r
        size = np.minimum(r, n - start)
        return self.pixel_depth(start + (size - 1) / 2.0)


# --------------------------------------------------------------------------- position
class HolePositioner:
    """World positions (lon, lat, elevation) at depths along one hole."""

    def __init__(self, trace: Any = None, fallback: tuple[NDArray, NDArray, NDArray, NDArray] | None = None,
                 length_m: float | None = None, note: str = "",
                 point: tuple[float, float, float] | None = None) -> None:
        self.trace = trace
        self.fallback = fallback  # (md, lon, lat, z) along the stored trace
        self.length_m = length_m
        self.note = note
        self.point = point  # last resort: one point (the plug's) for every depth

    @property
    def method(self) -> str:
        if self.trace is not None:
            return "desurvey"
        if self.fallback is not None:
            return "trace"
        return "plug" if self.point is not None else "none"

    @classmethod
    def from_rows(cls, hole: dict[str, Any], surveys: Sequence[tuple[float, float, float]],
                  trace_lonlatz: NDArray[np.float64] | None = None,
                  point: tuple[float, float, float] | None = None) -> HolePositioner:
        """Desurvey a hole from its catalogue values (as :mod:`mis.catalogue.register`
        does: a station at 0 m with the collar orientation when the surveys start deeper,
        the hole's own local frame); fall back to the stored trace, then to ``point`` (the
        plug's position) for every depth, else to nothing."""
        from mis.drillholes.crs import WGS84
        from mis.drillholes.desurvey import desurvey_batch

        length = float(hole["length_m"])
        try:
            cx, cy = hole.get("collar_x"), hole.get("collar_y")
            epsg = int(hole.get("collar_epsg") or WGS84)
            if cx is None or cy is None:
                cx, cy, epsg = hole["collar_lon"], hole["collar_lat"], WGS84
            stations = [tuple(map(float, s)) for s in surveys]
            if not stations or stations[0][0] > 0:
                stations = [(0.0, float(hole["dip"]), float(hole["azimuth"])), *stations]
            # every station is (measured depth, dip, azimuth)
            md, dip, azi = (np.array(v, dtype=float) for v in zip(*stations, strict=True))
            decl = hole.get("magnetic_declination_deg")
            batch = desurvey_batch(
                [float(cx)], [float(cy)], [float(hole["elevation_m"])], md, dip, azi,
                np.array([0, md.size]), collar_epsg=epsg, length=[length],
                azimuth_reference=hole.get("azimuth_reference") or "true",
                declination=[0.0 if decl is None else float(decl)],
                local_epsg=hole.get("local_epsg"), method=hole.get("desurvey_method") or "minimum_curvature",
            )
            return cls(trace=batch[0], length_m=length)
        except (ValueError, KeyError, TypeError) as exc:
            note = f"cannot desurvey hole {hole.get('name')!r} ({exc})"
        if trace_lonlatz is not None and len(trace_lonlatz) >= 2:
            return cls(fallback=_trace_md(np.asarray(trace_lonlatz, dtype=float), length),
                       length_m=length, note=note + "; positions interpolated along the stored trace")
        if point is not None:
            return cls(length_m=length, point=point, note=note + "; roxels take the plug's position")
        return cls(length_m=length, note=note + "; roxels get no position")

    def positions(self, depths: NDArray[np.float64]) -> tuple[NDArray, NDArray, NDArray]:
        """(lon, lat, z) at ``depths`` (NaN where unknown); computed once per distinct depth."""
        d = np.asarray(depths, dtype=np.float64)
        out = np.full((3, d.size), np.nan)
        ok = np.isfinite(d)
        if self.method == "plug":
            out[:, ok] = np.asarray(self.point, dtype=np.float64)[:, None]
            return out[0], out[1], out[2]
        if not np.any(ok) or self.method == "none":
            return out[0], out[1], out[2]
        uniq, inv = np.unique(d[ok], return_inverse=True)
        clipped = np.clip(uniq, 0.0, self.length_m if self.length_m is not None else np.inf)
        if self.trace is not None:
            clipped = np.minimum(clipped, self.trace.length)
            pos = self.trace.position_at(clipped)
            lon, lat, z = np.asarray(pos.lon), np.asarray(pos.lat), np.asarray(pos.z)
        else:
            md, flon, flat, fz = self.fallback  # type: ignore[misc]
            lon, lat, z = (np.interp(clipped, md, v) for v in (flon, flat, fz))
        out[0, ok], out[1, ok], out[2, ok] = lon[inv], lat[inv], z[inv]
        return out[0], out[1], out[2]


def _trace_md(lonlatz: NDArray[np.float64], length: float) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """Depth along a stored LineStringZ (lengths measured in its UTM zone, scaled so the
    last vertex is at the hole length)."""
    from mis.drillholes.crs import WGS84, transformer, utm_epsg

    lon, lat, z = lonlatz[:, 0], lonlatz[:, 1], lonlatz[:, 2]
    code = int(np.atleast_1d(utm_epsg(lon[:1], lat[:1]))[0])
    x, y = transformer(WGS84, code).transform(lon, lat)
    seg = np.sqrt(np.diff(x) ** 2 + np.diff(y) ** 2 + np.diff(z) ** 2)
    md = np.concatenate([[0.0], np.cumsum(seg)])
    if md[-1] > 0:
        md *= length / md[-1]
    return md, lon, lat, z


def load_positioner(session: Any, drillcore_id: int, plug_id: int | None = None) -> HolePositioner:
    """A :class:`HolePositioner` for a hole in the catalogue (SQLAlchemy session); the
    plug's stored position is the last resort."""
    from geoalchemy2.shape import to_shape
    from sqlalchemy import select

    from mis.catalogue import models as m

    hole = session.get(m.DrillCore, drillcore_id)
    if hole is None:
        raise LookupError(f"drill core {drillcore_id}: no such hole")
    surveys = session.execute(
        select(m.SurveyStation.depth_m, m.SurveyStation.dip, m.SurveyStation.azimuth)
        .where(m.SurveyStation.drillcore_id == drillcore_id).order_by(m.SurveyStation.depth_m)
    ).all()
    collar = to_shape(hole.collar)
    values = {c: getattr(hole, c) for c in (
        "name", "collar_x", "collar_y", "collar_epsg", "elevation_m", "length_m", "dip", "azimuth",
        "azimuth_reference", "magnetic_declination_deg", "local_epsg", "desurvey_method")}
    values["collar_lon"], values["collar_lat"] = collar.x, collar.y
    trace = np.asarray(to_shape(hole.trace).coords) if hole.trace is not None else None
    if trace is not None and trace.shape[1] < 3:
        trace = None
    point = None
    if plug_id is not None:
        plug = session.get(m.Plug, plug_id)
        if plug is not None and plug.position is not None:
            pp = to_shape(plug.position)
            point = (pp.x, pp.y, pp.z if pp.has_z else float(hole.elevation_m))
    return HolePositioner.from_rows(values, [tuple(s) for s in surveys], trace, point)


#: One EWKB (little endian) PointZ with SRID: the 33 bytes PostGIS reads.
POINTZ_EWKB = np.dtype([("order", "u1"), ("type", "<u4"), ("srid", "<u4"),
                        ("x", "<f8"), ("y", "<f8"), ("z", "<f8")])


def pointz_ewkb(lon: NDArray[np.float64], lat: NDArray[np.float64], z: NDArray[np.float64],
                srid: int = 4326) -> np.ndarray:
    """EWKB PointZ with SRID for each point: a (n,) :data:`POINTZ_EWKB` array."""
    out = np.empty(np.size(lon), dtype=POINTZ_EWKB)
    out["order"] = 1
    out["type"] = 1 | 0x80000000 | 0x20000000
    out["srid"] = srid
    out["x"], out["y"], out["z"] = lon, lat, z
    return out

