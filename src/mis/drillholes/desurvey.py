"""Drillhole desurveying: from collar + survey stations to a 3D trace, in pure numpy.

A drillhole is known by its collar (position and elevation), its length, and survey
stations (depth along hole, dip, azimuth). Its path between stations is a model; the
industry standard, and our default, is **minimum curvature**: each interval is the
circular arc tangent to the directions at both of its stations. Balanced tangential
(half the interval along each station direction) and tangential (all of it along the
lower station direction) are available for comparison with legacy software.

Conventions (mining): dip is negative downward from horizontal (-90 = vertical down),
azimuth clockwise from north in degrees. ``convention="inclination"`` accepts the
oil & gas angle from vertical instead (0 = vertical down, 90 = horizontal), converted
by dip = inclination - 90.

Frames. The geometry is computed as ground offsets from the collar along true east,
true north and up (ENU, metres), with azimuths reduced to true north first:

- ``"magnetic"``: true = magnetic + declination (declination in degrees, east positive);
- ``"grid"``: true = grid + gamma, gamma being the meridian convergence of the local CRS
  at the collar (clockwise angle from true north to grid north, PROJ's sign: positive
  east of the central meridian in the northern hemisphere; see :mod:`mis.drillholes.crs`).

The offsets are then placed in the local metric CRS (the collar's UTM zone, or the EPSG
the caller gives) by the grid transform at the collar: rotation by -gamma and scaling of
the horizontal offsets by the point scale factor k, so that a trace lands where it is in
lon/lat even in a grid whose north is not true north. Elevation is collar elevation + up.

Everything is vectorised over holes: many holes are ragged arrays (stations of all holes
concatenated, plus ``offsets`` with hole h owning stations ``offsets[h]:offsets[h+1]``,
the layout of CSR matrices and ``np.add.reduceat``), processed without a Python loop
per hole.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mis.drillholes.crs import WGS84, grid_factors, transformer, utm_epsg

__all__ = [
    "AzimuthReference",
    "Collar",
    "Convention",
    "Method",
    "Positions",
    "Trace",
    "TraceBatch",
    "desurvey",
    "desurvey_batch",
    "desurvey_offsets",
    "position_at",
]

Method = Literal["minimum_curvature", "balanced_tangential", "tangential"]
Convention = Literal["dip", "inclination"]
AzimuthReference = Literal["true", "grid", "magnetic"]

FloatArray = NDArray[np.float64]

_METHODS = ("minimum_curvature", "balanced_tangential", "tangential")
_CONVENTIONS = ("dip", "inclination")
_REFERENCES = ("true", "grid", "magnetic")
# A 180 degree turn within one interval has no unique arc: refuse chords |t2 - t1| ~ 2.
_MAX_CHORD2 = (2.0 * np.sin(0.5 * (np.pi - 1e-6))) ** 2
_BLOCK = 1 << 14  # stations per block of holes: temporaries of 128 KiB stay in cache


# --------------------------------------------------------------------------- geometry


def _sin_cos(angle_deg: FloatArray) -> tuple[FloatArray, FloatArray]:
    """sin and cos of angles in degrees through one tangent of the half angle.

    numpy's float64 tan is SIMD-vectorised where sin/cos are not (about 9x faster here),
    and the half-angle identities sin = 2t/(1+t^2), cos = (1-t^2)/(1+t^2) hold to a few
    ulp for any angle: tan has period 180 deg in the half angle, and at its pole
    (angle 180 deg) it rounds to a finite 1.6e16, giving sin = 0, cos = -1.
    """
    t = np.multiply(angle_deg, np.pi / 360.0)
    np.tan(t, out=t)
    t2 = t * t
    inv = t2 + 1.0
    np.reciprocal(inv, out=inv)
    t *= inv
    t *= 2.0
    np.subtract(1.0, t2, out=t2)
    t2 *= inv
    return t, t2


def _directions(dip_deg: FloatArray, azimuth_deg: FloatArray) -> FloatArray:
    """Unit tangent vectors as rows (east, north, up), shape (3, n), from dip/azimuth in
    degrees."""
    sin_d, cos_d = _sin_cos(np.asarray(dip_deg, dtype=float))
    sin_a, cos_a = _sin_cos(np.asarray(azimuth_deg, dtype=float))
    t = np.empty((3, sin_d.size))
    np.multiply(cos_d, sin_a, out=t[0])
    np.multiply(cos_d, cos_a, out=t[1])
    t[2] = sin_d
    return t


def _sinc(x: FloatArray) -> FloatArray:
    """sin(x)/x with the limit 1 at 0 (numpy's sinc is normalised by pi)."""
    return np.sinc(x / np.pi)


def _arc_offset(
    t1: FloatArray, t2: FloatArray, beta: FloatArray, length: FloatArray, s: FloatArray, method: str
) -> FloatArray:
    """Displacement from the upper station after a fraction ``s`` of an interval.

    For minimum curvature the direction along the arc is the slerp of t1 and t2,
    t(u) = [sin((1-u)b) t1 + sin(ub) t2] / sin b, integrated exactly over u in [0, s]:

        p(s) = L [ A(s) t1 + B(s) t2 ],
        A = (cos((1-s)b) - cos b) / (b sin b),  B = (1 - cos(sb)) / (b sin b),

    written with sin(x)/x factors so that it stays exact as b -> 0 (straight line:
    A = s - s^2/2, B = s^2/2). At s = 1 it is the familiar L/2 (t1 + t2) RF with the
    ratio factor RF = tan(b/2) / (b/2).
    """
    s = s[..., None]
    length = length[..., None]
    if method == "tangential":
        return s * length * t2
    if method == "balanced_tangential":
        first = np.minimum(s, 0.5)
        return length * (first * t1 + (s - first) * t2)
    b = beta[..., None]
    f_b = _sinc(b)
    f_half_s = _sinc(0.5 * s * b)
    a = 0.5 * (2.0 - s) * s * _sinc(0.5 * (2.0 - s) * b) * f_half_s / f_b
    bb = 0.5 * s * s * f_half_s * f_half_s / f_b
    return length * (a * t1 + bb * t2)


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


def _hole_label(hole_ids: Sequence[str] | None, h: int) -> str:
    return repr(hole_ids[h]) if hole_ids is not None else f"#{h}"


def _to_dip(values: FloatArray, convention: str, what: str) -> FloatArray:
    """Mining dip (deg, -90 down .. +90 up) from either convention, range-checked."""
    if convention == "inclination":
        bad = (values < 0.0) | (values > 180.0)
        if np.any(bad):
            raise ValueError(f"{what}: inclination {values[bad][0]} is outside 0..180 degrees")
        return values - 90.0
    bad = (values < -90.0) | (values > 90.0)
    if np.any(bad):
        raise ValueError(f"{what}: dip {values[bad][0]} is outside -90..90 degrees")
    return values


def _check_offsets(offsets: ArrayLike, n: int) -> NDArray[np.int64]:
    off = np.asarray(offsets)
    if off.ndim != 1 or off.size < 1 or not np.issubdtype(off.dtype, np.integer):
        raise ValueError("offsets must be a 1-D integer array of length n_holes + 1")
    off = off.astype(np.int64)
    if off[0] != 0 or off[-1] != n or np.any(np.diff(off) < 0):
        raise ValueError(
            f"offsets must start at 0, never decrease and end at the number of stations ({n})"
        )
    return off


def _stations(
    md: ArrayLike,
    dip: ArrayLike,
    azimuth: ArrayLike,
    offsets: ArrayLike,
    convention: str,
    hole_ids: Sequence[str] | None,
) -> tuple[FloatArray, FloatArray, FloatArray, NDArray[np.int64]]:
    """Validated ragged survey stations: flat float arrays (dip in mining convention) and
    int64 offsets. Errors name the hole and the depth."""
    _check_choice("convention", convention, _CONVENTIONS)
    md_ = np.asarray(md, dtype=float).ravel()
    n = md_.size
    dip_ = np.asarray(dip, dtype=float).ravel()
    azi_ = np.asarray(azimuth, dtype=float).ravel()
    if dip_.size != n or azi_.size != n:
        raise ValueError(f"md, dip and azimuth must have one value per station ({n})")
    off = _check_offsets(offsets, n)
    if hole_ids is not None and len(hole_ids) != off.size - 1:
        raise ValueError(f"hole_ids must have one value per hole ({off.size - 1})")
    for what, arr in (("md", md_), ("dip", dip_), ("azimuth", azi_)):
        if not np.all(np.isfinite(arr)):
            i = int(np.flatnonzero(~np.isfinite(arr))[0])
            h = int(np.searchsorted(off, i, side="right") - 1)
            label = _hole_label(hole_ids, h)
            raise ValueError(f"hole {label}: survey {what} is missing at station {i}")
    if np.any(md_ < 0.0):
        i = int(np.flatnonzero(md_ < 0.0)[0])
        h = int(np.searchsorted(off, i, side="right") - 1)
        raise ValueError(f"hole {_hole_label(hole_ids, h)}: survey depth {md_[i]} m is negative")
    _check_increasing(md_, off, hole_ids)
    return md_, _to_dip(dip_, convention, "survey"), azi_, off


def desurvey_offsets(
    md: ArrayLike,
    dip: ArrayLike,
    azimuth: ArrayLike,
    offsets: ArrayLike | None = None,
    *,
    method: Method = "minimum_curvature",
    convention: Convention = "dip",
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Ground offsets (east, north, up) of every station from its hole's first station.

    The pure geometric core, with no collar and no CRS: azimuths are taken as true.
    Many holes at once as ragged arrays (``offsets``, see the module docstring); one hole
    when ``offsets`` is None. Every hole needs at least one station; depths must increase
    strictly within a hole.

    Returns ``(east, north, up, dogleg)``, each of length n_stations; ``dogleg`` (deg) is
    the angle of the interval ending at each station, NaN at each hole's first station.
    """
    _check_choice("method", method, _METHODS)
    if offsets is None:
        offsets = [0, np.size(md)]
    md_, dip_, azi_, off = _stations(md, dip, azimuth, offsets, convention, None)
    if np.any(np.diff(off) == 0):
        raise ValueError("desurvey_offsets: every hole needs at least one station")
    east, north, up, dogleg = _geometry(md_, dip_, azi_, off, method, None)
    return east, north, up, dogleg


def _check_increasing(
    md: FloatArray, off: NDArray[np.int64], hole_ids: Sequence[str] | None
) -> None:
    step = np.diff(md)
    new_hole = off[1:-1]
    step[new_hole[(new_hole > 0) & (new_hole < md.size)] - 1] = 1.0  # a hole may start anywhere
    if np.any(step <= 0.0):
        i = int(np.flatnonzero(step <= 0.0)[0]) + 1
        h = int(np.searchsorted(off, i, side="right") - 1)
        raise ValueError(
            f"hole {_hole_label(hole_ids, h)}: survey depths must increase strictly; "
            f"{md[i]} m follows {md[i - 1]} m"
        )


def _geometry(
    md: FloatArray,
    dip: FloatArray,
    azimuth: FloatArray,
    off: NDArray[np.int64],
    method: str,
    hole_ids: Sequence[str] | None,
    placement: tuple[FloatArray, ...] | None = None,
) -> tuple[FloatArray, ...]:
    """ENU offsets and doglegs for validated ragged stations (see desurvey_offsets), and
    with ``placement`` (per-hole x0, y0, z0, k cos(gamma), k sin(gamma), see _place) the
    local CRS coordinates too: ``(east, north, up, dogleg[, x, y, z])``.

    Holes are processed in blocks of about ``_BLOCK`` stations (whole holes per block) so
    that the temporaries stay in cache: a loop per block, never per hole.
    """
    n = md.size
    pos = np.empty((3 if placement is None else 6, n))
    dogleg = np.empty(n)
    n_holes = off.size - 1
    bounds = np.unique(np.searchsorted(off[:-1], np.arange(0, n, _BLOCK)))
    bounds = np.append(bounds[bounds < n_holes], n_holes)
    for h0, h1 in itertools.pairwise(bounds):
        a, b = off[h0], off[h1]
        bad = _geometry_block(
            md[a:b], dip[a:b], azimuth[a:b], off[h0 : h1 + 1] - a, method, pos[:3, a:b], dogleg[a:b]
        )
        if bad:
            i = a + bad
            h = int(np.searchsorted(off, i, side="right") - 1)
            raise ValueError(
                f"hole {_hole_label(hole_ids, h)}: the hole turns back on itself (dogleg ~180 deg) "
                f"between {md[i - 1]} m and {md[i]} m"
            )
        if placement is not None:
            hole = np.repeat(np.arange(h0, h1), np.diff(off[h0 : h1 + 1]))
            _place(pos[:, a:b], *(v[hole] for v in placement))
    if placement is None:
        return pos[0], pos[1], pos[2], dogleg
    return pos[0], pos[1], pos[2], dogleg, pos[3], pos[4], pos[5]


def _geometry_block(
    md: FloatArray,
    dip: FloatArray,
    azimuth: FloatArray,
    off: NDArray[np.int64],
    method: str,
    pos: FloatArray,
    dogleg: FloatArray,
) -> int:
    """Fill ``pos`` (3, n) and ``dogleg`` (n) for one block of whole holes; return the index
    of the first station ending a ~180 degree dogleg, or 0 when there is none.

    Per interval, with unit tangents t1, t2 and chord d = t2 - t1 (|d| = 2 sin(b/2),
    |t1 + t2|^2 = 4 - |d|^2): the half dogleg h = atan(|d| / |t1 + t2|) keeps full
    precision at tiny angles (arccos of a dot product loses half the digits there), and
    minimum curvature moves L/2 (t1 + t2) RF with the ratio factor RF = tan(h) / h.
    """
    t = _directions(dip, azimuth)
    length = np.diff(md)
    length[off[1:-1] - 1] = 0.0  # intervals straddling two holes move nothing
    step = np.empty_like(t)
    step[:, -1] = 0.0
    inner = step[:, :-1]
    np.subtract(t[:, 1:], t[:, :-1], out=inner)
    chord2 = np.einsum("ij,ij->j", inner, inner)
    chord2[off[1:-1] - 1] = 0.0
    if np.any(chord2 > _MAX_CHORD2):
        return int(np.flatnonzero(chord2 > _MAX_CHORD2)[0]) + 1
    tan_half = np.subtract(4.0, chord2)
    np.divide(chord2, tan_half, out=tan_half)
    np.sqrt(tan_half, out=tan_half)
    half = np.arctan(tan_half)
    if method == "tangential":
        np.multiply(t[:, 1:], length, out=inner)
    else:
        np.add(t[:, 1:], t[:, :-1], out=inner)
        length *= 0.5
        if method == "minimum_curvature":
            length *= np.divide(tan_half, half, out=np.ones_like(half), where=half > 0.0)
        inner *= length
    # Segmented cumulative sum in one pass: the (zero) step crossing into hole h+1 is set
    # to minus hole h's total, so the running sum restarts at 0 at every collar.
    totals = np.add.reduceat(step, off[:-1], axis=1)
    step[:, off[1:-1] - 1] -= totals[:, :-1]
    pos[:, 0] = 0.0
    np.cumsum(inner, axis=1, out=pos[:, 1:])
    np.multiply(half, 360.0 / np.pi, out=dogleg[1:])
    dogleg[off[:-1]] = np.nan
    return 0


# --------------------------------------------------------------------------- results


def _place(
    pos: FloatArray,
    x0: FloatArray | float,
    y0: FloatArray | float,
    z0: FloatArray | float,
    k_cos: FloatArray | float,
    k_sin: FloatArray | float,
) -> None:
    """Ground ENU offsets (rows 0-2 of ``pos``) -> local CRS x, y, z (rows 3-5), in place:
    rotate true north onto the grid (a true bearing a has grid bearing a - gamma) and
    scale horizontal distances by k; ``k_cos``, ``k_sin`` are k cos(gamma), k sin(gamma)."""
    east, north, up, x, y, z = pos
    np.multiply(east, k_cos, out=x)
    x -= north * k_sin
    x += x0
    np.multiply(east, k_sin, out=y)
    y += north * k_cos
    y += y0
    np.add(up, z0, out=z)


def _complete_stations(
    md: FloatArray,
    dip: FloatArray,
    azimuth: FloatArray,
    off: NDArray[np.int64],
    collar_dip: FloatArray,
    collar_azimuth: FloatArray,
    length: FloatArray,
    hole_ids: Sequence[str] | None,
) -> tuple[FloatArray, FloatArray, FloatArray, NDArray[np.int64]]:
    """Add a station at 0 m and one at the hole length where the surveys stop short
    (rules in :func:`desurvey_batch`), in one vectorised insertion."""
    n = md.size
    counts = np.diff(off)
    empty = counts == 0
    if np.any(empty & ~np.isfinite(collar_dip)):
        h = int(np.flatnonzero(empty & ~np.isfinite(collar_dip))[0])
        raise ValueError(f"hole {_hole_label(hole_ids, h)}: no survey and no collar dip/azimuth")
    if np.any(empty & ~np.isfinite(length)):
        h = int(np.flatnonzero(empty & ~np.isfinite(length))[0])
        raise ValueError(f"hole {_hole_label(hole_ids, h)}: no survey and no length")
    if n:
        first, last = np.minimum(off[:-1], n - 1), np.maximum(off[1:] - 1, 0)
        first_md, first_dip, first_azi = md[first], dip[first], azimuth[first]
        last_md, last_dip, last_azi = md[last], dip[last], azimuth[last]
    else:
        first_md = first_dip = first_azi = last_md = last_dip = last_azi = np.zeros(counts.size)
    top_dip = np.where(empty, collar_dip, first_dip)
    top_azi = np.where(empty, collar_azimuth, first_azi)
    need_top = empty | (first_md > 0.0)
    last_md = np.where(empty, 0.0, last_md)
    last_dip = np.where(empty, top_dip, last_dip)
    last_azi = np.where(empty, top_azi, last_azi)
    length = np.where(np.isfinite(length), length, last_md)
    if np.any(length < last_md):
        h = int(np.flatnonzero(length < last_md)[0])
        raise ValueError(
            f"hole {_hole_label(hole_ids, h)}: survey at {last_md[h]} m is deeper than the hole "
            f"length {length[h]} m"
        )
    need_bottom = length > last_md
    if not (np.any(need_top) or np.any(need_bottom)):
        return md, dip, azimuth, off
    # Insert before original index off[h] (top of h) and off[h+1] (bottom of h); at a
    # shared index, holes stay in order and a hole's top precedes its bottom.
    at = np.concatenate([off[1:][need_bottom], off[:-1][need_top]])
    holes = np.arange(counts.size)
    hole = np.concatenate([holes[need_bottom], holes[need_top]])
    is_bottom = np.concatenate([np.ones(int(need_bottom.sum())), np.zeros(int(need_top.sum()))])
    order = np.lexsort((is_bottom, hole, at))  # by index, then hole, then top before bottom
    at = at[order]
    values = [
        np.concatenate([length[need_bottom], np.zeros(int(need_top.sum()))])[order],
        np.concatenate([last_dip[need_bottom], top_dip[need_top]])[order],
        np.concatenate([last_azi[need_bottom], top_azi[need_top]])[order],
    ]
    md, dip, azimuth = (np.insert(arr, at, v) for arr, v in zip((md, dip, azimuth), values, strict=True))
    added = need_top.astype(np.int64) + need_bottom
    return md, dip, azimuth, off + np.concatenate([[0], np.cumsum(added)])


@dataclass(frozen=True, eq=False)
class Collar:
    """Where a hole starts, how long it is, and (optionally) its orientation at the top.

    ``x, y`` are lon/lat when ``epsg`` is 4326 (the default), else projected coordinates
    in ``epsg``; ``elevation`` in metres. ``dip``/``azimuth`` (in the survey convention
    and azimuth reference passed to :func:`desurvey`) orient a hole that has no survey;
    surveys win when there are any. ``length`` defaults to the deepest survey depth.
    """

    x: float
    y: float
    elevation: float
    epsg: int = WGS84
    dip: float | None = None
    azimuth: float | None = None
    length: float | None = None
    hole_id: str = ""


@dataclass(frozen=True, eq=False)
class Positions:
    """Points at arbitrary depths along a trace (arrays shaped like the depths asked)."""

    md: FloatArray
    x: FloatArray
    y: FloatArray
    z: FloatArray
    lon: FloatArray
    lat: FloatArray

    @property
    def elevation(self) -> FloatArray:
        """Elevation (m) = z, the collar elevation plus the vertical offset."""
        return self.z


@dataclass(frozen=True, eq=False)
class Trace:
    """One desurveyed hole: stations from the collar (md = 0) to the hole length.

    Stations include the surveys plus a station at 0 m and one at the hole length when
    the surveys do not reach them. ``x, y`` are in the local CRS ``epsg`` and ``z`` is the
    elevation in metres; ``east, north, up`` are the ground offsets from the collar
    along true directions; ``dip``/``azimuth`` are mining-convention, true-north angles;
    ``dogleg`` (deg) has one value per interval.
    """

    hole_id: str
    md: FloatArray
    x: FloatArray
    y: FloatArray
    z: FloatArray
    east: FloatArray
    north: FloatArray
    up: FloatArray
    dip: FloatArray
    azimuth: FloatArray
    dogleg: FloatArray
    epsg: int
    convergence: float
    scale: float
    method: Method

    @property
    def length(self) -> float:
        """Hole length along the hole (m)."""
        return float(self.md[-1])

    def dogleg_severity(self, course_length: float = 30.0) -> FloatArray:
        """Dogleg severity per interval in degrees per ``course_length`` metres (30 m is
        the metric custom, 100 ft the imperial one): how sharply the hole bends, which
        flags doubtful surveys."""
        return self.dogleg * course_length / np.diff(self.md)

    def lonlat(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """WGS84 longitude, latitude (deg) and elevation (m) of the stations."""
        lon, lat = transformer(self.epsg, WGS84).transform(self.x, self.y)
        return np.asarray(lon), np.asarray(lat), self.z.copy()

    def trace_wkt(self, precision: int = 9) -> str:
        """The trace as WKT ``LINESTRING Z (lon lat elevation, ...)`` in EPSG:4326.

        ``precision`` decimals of a degree (9 ~ 0.1 mm); elevations get 4 decimals.
        """
        if self.md.size < 2:
            raise ValueError(f"hole {self.hole_id!r} has zero length: it has no line trace")
        lon, lat, z = self.lonlat()
        p = precision
        pts = ", ".join(f"{a:.{p}f} {b:.{p}f} {c:.4f}" for a, b, c in zip(lon, lat, z, strict=True))
        return f"LINESTRING Z ({pts})"

    def linestring(self):  # -> shapely.LineString (shapely is imported only when asked)
        """The trace as a shapely ``LineString`` Z in EPSG:4326 (lon, lat, elevation)."""
        from shapely import LineString

        if self.md.size < 2:
            raise ValueError(f"hole {self.hole_id!r} has zero length: it has no line trace")
        return LineString(np.column_stack(self.lonlat()))

    def position_at(self, depths: ArrayLike) -> Positions:
        """See :func:`position_at`."""
        return position_at(self, depths)


@dataclass(frozen=True, eq=False)
class TraceBatch:
    """Many desurveyed holes as ragged arrays: hole h owns ``offsets[h]:offsets[h+1]``.

    Fields are those of :class:`Trace`, concatenated; per-hole values (``epsg``,
    ``convergence``, ``scale``) have one entry per hole; ``dogleg`` has one entry per
    station (the interval ending there), NaN at each hole's first station.
    """

    hole_ids: tuple[str, ...]
    offsets: NDArray[np.int64]
    md: FloatArray
    x: FloatArray
    y: FloatArray
    z: FloatArray
    east: FloatArray
    north: FloatArray
    up: FloatArray
    dip: FloatArray
    azimuth: FloatArray
    dogleg: FloatArray
    epsg: NDArray[np.int64]
    convergence: FloatArray
    scale: FloatArray
    method: Method

    def __len__(self) -> int:
        return self.offsets.size - 1

    def __getitem__(self, h: int) -> Trace:
        if not -len(self) <= h < len(self):
            raise IndexError(f"hole index {h} out of range for {len(self)} holes")
        h %= len(self)
        a, b = int(self.offsets[h]), int(self.offsets[h + 1])
        sl = slice(a, b)
        return Trace(
            hole_id=self.hole_ids[h],
            md=self.md[sl],
            x=self.x[sl],
            y=self.y[sl],
            z=self.z[sl],
            east=self.east[sl],
            north=self.north[sl],
            up=self.up[sl],
            dip=self.dip[sl],
            azimuth=self.azimuth[sl],
            dogleg=self.dogleg[a + 1 : b],
            epsg=int(self.epsg[h]),
            convergence=float(self.convergence[h]),
            scale=float(self.scale[h]),
            method=self.method,
        )

    def __iter__(self) -> Iterator[Trace]:
        return (self[h] for h in range(len(self)))

    def dogleg_severity(self, course_length: float = 30.0) -> FloatArray:
        """Per-station dogleg severity (deg per ``course_length`` m) of the interval ending
        at each station; NaN at each hole's first station."""
        dmd = np.empty_like(self.md)
        dmd[0] = np.nan
        dmd[1:] = np.diff(self.md)
        return self.dogleg * course_length / dmd

    def lonlat(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """WGS84 longitude, latitude and elevation of every station (one transform per
        distinct local CRS, not per hole)."""
        station_epsg = np.repeat(self.epsg, np.diff(self.offsets))
        lon = np.empty_like(self.x)
        lat = np.empty_like(self.y)
        for code in np.unique(self.epsg):
            m = station_epsg == code
            lon[m], lat[m] = transformer(int(code), WGS84).transform(self.x[m], self.y[m])
        return lon, lat, self.z.copy()


# --------------------------------------------------------------------------- desurvey


def _per_hole(value: ArrayLike | None, n_holes: int, name: str) -> FloatArray:
    """A per-hole float array (NaN = not given) from None, a scalar or an array."""
    if value is None:
        return np.full(n_holes, np.nan)
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        return np.full(n_holes, float(arr))
    if arr.shape != (n_holes,):
        raise ValueError(f"{name} must be a scalar or have one value per hole ({n_holes})")
    return arr.copy()


def _local_frames(
    collar_x: FloatArray, collar_y: FloatArray, collar_epsg: int, local_epsg: int | None
) -> tuple[NDArray[np.int64], FloatArray, FloatArray, FloatArray, FloatArray]:
    """Per hole: local CRS EPSG, collar x/y in it, meridian convergence (deg) and scale
    factor at the collar. One pyproj call per distinct CRS, not per hole."""
    if collar_epsg == WGS84:
        lon, lat = collar_x, collar_y
    else:
        lon, lat = transformer(collar_epsg, WGS84).transform(collar_x, collar_y)
        lon, lat = np.asarray(lon), np.asarray(lat)
    n_holes = collar_x.size
    if local_epsg is None:
        epsg = utm_epsg(lon, lat)
    else:
        epsg = np.full(n_holes, local_epsg, dtype=np.int64)
    x0, y0, gamma, scale = (np.empty(n_holes) for _ in range(4))
    for code in np.unique(epsg):
        m = epsg == code
        if int(code) == collar_epsg:
            x0[m], y0[m] = collar_x[m], collar_y[m]
        else:
            x0[m], y0[m] = transformer(WGS84, int(code)).transform(lon[m], lat[m])
        gamma[m], scale[m] = grid_factors(int(code), lon[m], lat[m])
    return epsg, x0, y0, gamma, scale


def desurvey_batch(
    collar_x: ArrayLike,
    collar_y: ArrayLike,
    collar_elevation: ArrayLike,
    md: ArrayLike,
    dip: ArrayLike,
    azimuth: ArrayLike,
    offsets: ArrayLike,
    *,
    collar_epsg: int = WGS84,
    collar_dip: ArrayLike | None = None,
    collar_azimuth: ArrayLike | None = None,
    length: ArrayLike | None = None,
    hole_ids: Sequence[str] | None = None,
    method: Method = "minimum_curvature",
    convention: Convention = "dip",
    azimuth_reference: AzimuthReference = "true",
    declination: ArrayLike = 0.0,
    local_epsg: int | None = None,
) -> TraceBatch:
    """Desurvey many holes at once (ragged arrays, no Python loop per hole).

    Per hole: collar ``collar_x``/``collar_y`` in ``collar_epsg`` (lon/lat by default),
    ``collar_elevation`` (m), optional ``collar_dip``/``collar_azimuth``/``length``
    (NaN = not given) and ``declination`` (deg, east positive; used when
    ``azimuth_reference="magnetic"``). Stations of all holes concatenated in ``md``,
    ``dip``, ``azimuth`` with hole h owning ``offsets[h]:offsets[h+1]``; a hole may have
    no station. Collar and survey angles share ``convention`` and ``azimuth_reference``.

    Stations are completed so that every trace runs from 0 m to its length:

    - a hole with no survey starts with the collar dip/azimuth (then required);
    - if a hole's first survey is deeper than 0 m, the **first survey's** orientation
      applies from 0 m (a station is added there). Measured surveys win over the collar
      orientation, which is often the planned set-up: blending the two would invent a
      bend nobody measured;
    - if the length is beyond the last survey, the hole continues straight along the
      last direction to its length. A hole with one survey, or none, is therefore a
      straight line. A survey deeper than the length is an error.

    The local CRS is ``local_epsg`` when given, else each collar's UTM zone (holes are
    grouped per zone for the transforms). ``"grid"`` azimuths refer to the local CRS.
    """
    _check_choice("method", method, _METHODS)
    _check_choice("convention", convention, _CONVENTIONS)
    _check_choice("azimuth_reference", azimuth_reference, _REFERENCES)
    if hole_ids is not None:
        hole_ids = tuple(str(h) for h in hole_ids)
    md_, dip_, azi_, off = _stations(md, dip, azimuth, offsets, convention, hole_ids)
    n_holes = off.size - 1
    cx = _per_hole(collar_x, n_holes, "collar_x")
    cy = _per_hole(collar_y, n_holes, "collar_y")
    cz = _per_hole(collar_elevation, n_holes, "collar_elevation")
    for name, arr in (("collar_x", cx), ("collar_y", cy), ("collar_elevation", cz)):
        if not np.all(np.isfinite(arr)):
            h = int(np.flatnonzero(~np.isfinite(arr))[0])
            raise ValueError(f"hole {_hole_label(hole_ids, h)}: {name} is missing or not finite")
    c_dip = _per_hole(collar_dip, n_holes, "collar_dip")
    c_azi = _per_hole(collar_azimuth, n_holes, "collar_azimuth")
    hole_len = _per_hole(length, n_holes, "length")
    decl = _per_hole(declination, n_holes, "declination")
    has_dip = np.isfinite(c_dip)
    c_dip[has_dip] = _to_dip(c_dip[has_dip], convention, "collar")
    # A vertical collar needs no azimuth: 0 is as good as any.
    c_azi = np.where(has_dip & ~np.isfinite(c_azi) & (np.abs(c_dip) == 90.0), 0.0, c_azi)
    if np.any(has_dip != np.isfinite(c_azi)):
        h = int(np.flatnonzero(has_dip != np.isfinite(c_azi))[0])
        label = _hole_label(hole_ids, h)
        raise ValueError(f"hole {label}: give both collar dip and azimuth, or neither")

    epsg, x0, y0, gamma, scale = _local_frames(cx, cy, collar_epsg, local_epsg)

    # --- azimuths to true north (per hole, broadcast to stations).
    if azimuth_reference != "true":
        shift = decl if azimuth_reference == "magnetic" else gamma
        if azimuth_reference == "magnetic" and not np.all(np.isfinite(decl)):
            raise ValueError("declination is required (finite) for magnetic azimuths")
        azi_ = azi_ + np.repeat(shift, np.diff(off))
        c_azi = c_azi + shift
    if not np.all((azi_ >= 0.0) & (azi_ < 360.0)):  # np.mod is slow: only when needed
        azi_ = np.mod(azi_, 360.0)
    c_azi = np.mod(c_azi, 360.0)

    md_, dip_, azi_, off = _complete_stations(
        md_, dip_, azi_, off, c_dip, c_azi, hole_len, hole_ids
    )
    rad = np.radians(gamma)
    placement = (x0, y0, cz, scale * np.cos(rad), scale * np.sin(rad))
    east, north, up, dogleg, x, y, z = _geometry(md_, dip_, azi_, off, method, hole_ids, placement)
    return TraceBatch(
        hole_ids=hole_ids if hole_ids is not None else tuple(f"#{h}" for h in range(n_holes)),
        offsets=off,
        md=md_,
        x=x,
        y=y,
        z=z,
        east=east,
        north=north,
        up=up,
        dip=dip_,
        azimuth=azi_,
        dogleg=dogleg,
        epsg=epsg,
        convergence=gamma,
        scale=scale,
        method=method,
    )


def desurvey(
    collar: Collar,
    md: ArrayLike | None = None,
    dip: ArrayLike | None = None,
    azimuth: ArrayLike | None = None,
    *,
    method: Method = "minimum_curvature",
    convention: Convention = "dip",
    azimuth_reference: AzimuthReference = "true",
    declination: float = 0.0,
    local_epsg: int | None = None,
) -> Trace:
    """Desurvey one hole from its collar and survey stations (depth m, dip, azimuth deg).

    With no survey the collar dip/azimuth and length define a straight hole; with one
    survey the hole is straight along it. If the first survey is below 0 m, the first
    survey's orientation applies from 0 m (surveys win over the collar orientation); a
    hole continues straight from its last survey to its length.
    See :func:`desurvey_batch` (which this calls with one hole) for the conventions.
    """
    md_ = np.atleast_1d(np.asarray([] if md is None else md, dtype=float))
    dip_ = np.atleast_1d(np.asarray([] if dip is None else dip, dtype=float))
    azi_ = np.atleast_1d(np.asarray([] if azimuth is None else azimuth, dtype=float))
    batch = desurvey_batch(
        collar.x,
        collar.y,
        collar.elevation,
        md_,
        dip_,
        azi_,
        np.array([0, md_.size]),
        collar_epsg=collar.epsg,
        collar_dip=collar.dip,
        collar_azimuth=collar.azimuth,
        length=collar.length,
        hole_ids=[collar.hole_id],
        method=method,
        convention=convention,
        azimuth_reference=azimuth_reference,
        declination=declination,
        local_epsg=local_epsg,
    )
    return batch[0]


def position_at(trace: Trace, depths: ArrayLike) -> Positions:
    """Positions at any depths along a hole, on the trace's own path model.

    For minimum curvature the point lies on the circular arc of its interval: the
    direction is slerped across the dogleg and integrated exactly, not interpolated on
    the chord between stations (which would cut the corner by up to L*b/8 for an arc of
    length L turning b radians). Balanced tangential and tangential interpolate along
    their own straight pieces. Vectorised; a scalar depth gives 0-d arrays.
    Depths outside 0..length raise a ValueError.
    """
    d = np.asarray(depths, dtype=float)
    flat = d.ravel()
    bad = ~((flat >= 0.0) & (flat <= trace.length))
    if np.any(bad):
        raise ValueError(
            f"depth {flat[bad][0]} m is outside hole {trace.hole_id!r} (0 to {trace.length} m)"
        )
    md = trace.md
    if md.size == 1:  # zero-length hole: every valid depth is the collar
        off = np.zeros((flat.size, 3))
    else:
        i = np.clip(np.searchsorted(md, flat, side="right") - 1, 0, md.size - 2)
        t = _directions(trace.dip, trace.azimuth).T
        t1, t2 = t[i], t[i + 1]
        beta = np.radians(trace.dogleg[i])
        length = md[i + 1] - md[i]
        s = (flat - md[i]) / length
        start = np.column_stack([trace.east[i], trace.north[i], trace.up[i]])
        off = start + _arc_offset(t1, t2, beta, length, s, trace.method)
    rad = np.radians(trace.convergence)
    pos = np.empty((6, flat.size))
    pos[:3] = off.T
    k_cos, k_sin = trace.scale * np.cos(rad), trace.scale * np.sin(rad)
    _place(pos, trace.x[0], trace.y[0], trace.z[0], k_cos, k_sin)
    x, y, z = pos[3:]
    lon, lat = transformer(trace.epsg, WGS84).transform(x, y)
    shape = d.shape
    return Positions(
        md=d.astype(float),
        x=x.reshape(shape),
        y=y.reshape(shape),
        z=z.reshape(shape),
        lon=np.asarray(lon).reshape(shape),
        lat=np.asarray(lat).reshape(shape),
    )
