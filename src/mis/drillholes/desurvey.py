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


# --------------------------------------------------------------------------- geometry


def _sin_cos(angle_deg: FloatArray) -> tuple[FloatArray, FloatArray]:
    """sin and cos of angles in degrees through one tangent of the half angle.

    numpy's float64 tan is SIMD-vectorised where sin/cos are not (about 9x faster here),
    and the half-angle identities sin = 2t/(1+t^2), cos = (1-t^2)/(1+t^2) are exact to a
    few ulp for every angle once wrapped to [-180, 180) (t = -inf rounds to a finite
    -1.6e16, giving sin = 0, cos = -1 at 180 degrees).
    """
    t = np.tan(np.remainder(np.asarray(angle_deg, dtype=float) + 180.0, 360.0) * (np.pi / 360.0) - np.pi / 2)
    t2 = t * t
    inv = 1.0 / (1.0 + t2)
    return 2.0 * t * inv, (1.0 - t2) * inv


def _directions(dip_deg: FloatArray, azimuth_deg: FloatArray) -> FloatArray:
    """Unit tangent vectors as rows (east, north, up), shape (3, n), from dip/azimuth in
    degrees."""
    sin_d, cos_d = _sin_cos(dip_deg)
    sin_a, cos_a = _sin_cos(azimuth_deg)
    return np.stack([cos_d * sin_a, cos_d * cos_a, sin_d])


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
    _check_choice("convention", convention, _CONVENTIONS)
    md_ = np.asarray(md, dtype=float).ravel()
    n = md_.size
    dip_ = np.asarray(dip, dtype=float).ravel()
    azi_ = np.asarray(azimuth, dtype=float).ravel()
    if dip_.size != n or azi_.size != n:
        raise ValueError(f"md, dip and azimuth must have one value per station ({n})")
    off = _check_offsets([0, n] if offsets is None else offsets, n)
    if np.any(np.diff(off) == 0):
        raise ValueError("desurvey_offsets: every hole needs at least one station")
    if not (np.all(np.isfinite(md_)) and np.all(np.isfinite(dip_)) and np.all(np.isfinite(azi_))):
        raise ValueError("md, dip and azimuth must be finite")
    dip_ = _to_dip(dip_, convention, "survey")
    starts = np.zeros(n, dtype=bool)
    starts[off[:-1]] = True
    _check_increasing(md_, starts, off, None)
    return _geometry(md_, dip_, azi_, starts, off, method, None)


def _check_increasing(
    md: FloatArray, starts: NDArray[np.bool_], off: NDArray[np.int64], hole_ids: Sequence[str] | None
) -> None:
    bad = np.flatnonzero((np.diff(md) <= 0.0) & ~starts[1:])
    if bad.size:
        i = bad[0] + 1
        h = int(np.searchsorted(off, i, side="right") - 1)
        raise ValueError(
            f"hole {_hole_label(hole_ids, h)}: survey depths must increase strictly; "
            f"{md[i]} m follows {md[i - 1]} m"
        )


def _geometry(
    md: FloatArray,
    dip: FloatArray,
    azimuth: FloatArray,
    starts: NDArray[np.bool_],
    off: NDArray[np.int64],
    method: str,
    hole_ids: Sequence[str] | None,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """ENU offsets and doglegs for validated ragged stations (see desurvey_offsets).

    Per interval, with unit tangents t1, t2 and chord d = t2 - t1 (|d| = 2 sin(b/2),
    |t1 + t2|^2 = 4 - |d|^2): the half dogleg h = atan(|d| / |t1 + t2|) keeps full
    precision at tiny angles (arccos of a dot product loses half the digits there), and
    minimum curvature moves L/2 (t1 + t2) RF with the ratio factor RF = tan(h) / h.
    """
    t = _directions(dip, azimuth)
    inner = ~starts[1:]  # intervals that do not straddle two holes
    length = np.diff(md) * inner  # crossing intervals move nothing
    chord = t[:, 1:] - t[:, :-1]
    chord2 = np.einsum("ij,ij->j", chord, chord)
    if np.any(chord2 > _MAX_CHORD2):
        i = int(np.flatnonzero(chord2 > _MAX_CHORD2)[0]) + 1
        h = int(np.searchsorted(off, i, side="right") - 1)
        raise ValueError(
            f"hole {_hole_label(hole_ids, h)}: the hole turns back on itself (dogleg ~180 deg) "
            f"between {md[i - 1]} m and {md[i]} m"
        )
    tan_half = np.sqrt(chord2 / (4.0 - chord2))
    half = np.arctan(tan_half)
    if method == "tangential":
        step = length * t[:, 1:]
    else:
        weight = 0.5 * length
        if method == "minimum_curvature":
            weight *= np.divide(tan_half, half, out=np.ones_like(half), where=half > 0.0)
        step = weight * (t[:, 1:] + t[:, :-1])
    pos = np.zeros_like(t)
    np.cumsum(step, axis=1, out=pos[:, 1:])
    # Segmented cumulative sum: subtract the running total at each hole's first station.
    pos -= np.repeat(pos[:, off[:-1]], np.diff(off), axis=1)
    dogleg = np.empty(md.size)
    dogleg[0] = np.nan
    np.multiply(half, 360.0 / np.pi, out=dogleg[1:])
    dogleg[starts] = np.nan
    return pos[0], pos[1], pos[2], dogleg


# --------------------------------------------------------------------------- results


def _place(
    east: FloatArray,
    north: FloatArray,
    up: FloatArray,
    x0: FloatArray,
    y0: FloatArray,
    z0: FloatArray,
    gamma_deg: FloatArray,
    scale: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Ground ENU offsets -> local CRS coordinates: rotate true north onto the grid (a true
    bearing a has grid bearing a - gamma) and scale horizontal distances by k."""
    g = np.radians(gamma_deg)
    cos_g, sin_g = np.cos(g), np.sin(g)
    x = x0 + scale * (east * cos_g - north * sin_g)
    y = y0 + scale * (east * sin_g + north * cos_g)
    return x, y, z0 + up


@dataclass(frozen=True, eq=False)
class Collar:
    """Where a hole starts, how long it is, and (optionally) its orientation at the top.

    ``x, y`` are lon/lat when ``epsg`` is 4326 (the default), else projected coordinates
    in ``epsg``. ``dip``/``azimuth`` are in the survey convention and azimuth reference
    passed to :func:`desurvey`. ``length`` defaults to the deepest survey depth.
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
        pts = ", ".join(f"{a:.{precision}f} {b:.{precision}f} {c:.4f}" for a, b, c in zip(lon, lat, z))
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
    md_ = np.asarray(md, dtype=float).ravel()
    n = md_.size
    dip_ = np.asarray(dip, dtype=float).ravel()
    azi_ = np.asarray(azimuth, dtype=float).ravel()
    if dip_.size != n or azi_.size != n:
        raise ValueError(f"md, dip and azimuth must have one value per station ({n})")
    off = _check_offsets(offsets, n)
    n_holes = off.size - 1
    if hole_ids is not None:
        hole_ids = tuple(str(h) for h in hole_ids)
        if len(hole_ids) != n_holes:
            raise ValueError(f"hole_ids must have one value per hole ({n_holes})")
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
    for what, arr in (("md", md_), ("dip", dip_), ("azimuth", azi_)):
        if not np.all(np.isfinite(arr)):
            i = int(np.flatnonzero(~np.isfinite(arr))[0])
            h = int(np.searchsorted(off, i, side="right") - 1)
            raise ValueError(f"hole {_hole_label(hole_ids, h)}: survey {what} is missing at station {i}")
    if np.any(md_ < 0.0):
        i = int(np.flatnonzero(md_ < 0.0)[0])
        h = int(np.searchsorted(off, i, side="right") - 1)
        raise ValueError(f"hole {_hole_label(hole_ids, h)}: survey depth {md_[i]} m is negative")
    dip_ = _to_dip(dip_, convention, "survey")
    has_dip = np.isfinite(c_dip)
    c_dip[has_dip] = _to_dip(c_dip[has_dip], convention, "collar")
    # A vertical collar needs no azimuth: 0 is as good as any.
    c_azi = np.where(has_dip & ~np.isfinite(c_azi) & (np.abs(c_dip) == 90.0), 0.0, c_azi)
    if np.any(has_dip != np.isfinite(c_azi)):
        h = int(np.flatnonzero(has_dip != np.isfinite(c_azi))[0])
        raise ValueError(f"hole {_hole_label(hole_ids, h)}: give both collar dip and azimuth, or neither")
    starts = np.zeros(n, dtype=bool)
    starts[off[:-1][np.diff(off) > 0]] = True
    _check_increasing(md_, starts, off, hole_ids)

    # --- local CRS per hole: collar -> lon/lat -> local x/y, convergence and scale there.
    if collar_epsg == WGS84:
        lon, lat = cx, cy
    else:
        lon, lat = (np.asarray(v) for v in transformer(collar_epsg, WGS84).transform(cx, cy))
    epsg = np.full(n_holes, local_epsg, dtype=np.int64) if local_epsg is not None else utm_epsg(lon, lat)
    x0 = np.empty(n_holes)
    y0 = np.empty(n_holes)
    gamma = np.empty(n_holes)
    scale = np.empty(n_holes)
    for code in np.unique(epsg):
        m = epsg == code
        if int(code) == collar_epsg:
            x0[m], y0[m] = cx[m], cy[m]
        else:
            x0[m], y0[m] = transformer(WGS84, int(code)).transform(lon[m], lat[m])
        gamma[m], scale[m] = grid_factors(int(code), lon[m], lat[m])

    # --- azimuths to true north (per hole, broadcast to stations).
    if azimuth_reference != "true":
        shift = decl if azimuth_reference == "magnetic" else gamma
        if azimuth_reference == "magnetic" and not np.all(np.isfinite(decl)):
            raise ValueError("declination is required (finite) for magnetic azimuths")
        azi_ = azi_ + np.repeat(shift, np.diff(off))
        c_azi = c_azi + shift
    azi_ = np.mod(azi_, 360.0)
    c_azi = np.mod(c_azi, 360.0)

    # --- complete the stations: a top station at 0 m, a bottom one at the hole length.
    empty = np.diff(off) == 0
    if np.any(empty & ~has_dip):
        h = int(np.flatnonzero(empty & ~has_dip)[0])
        raise ValueError(f"hole {_hole_label(hole_ids, h)}: no survey and no collar dip/azimuth")
    if n:
        first = np.minimum(off[:-1], n - 1)
        first_md, first_dip, first_azi = np.where(empty, np.nan, md_[first]), dip_[first], azi_[first]
    else:
        first_md = first_dip = first_azi = np.full(n_holes, np.nan)
    need_top = empty | (first_md > 0.0)
    top_dip = np.where(empty, c_dip, first_dip)[need_top]
    top_azi = np.where(empty, c_azi, first_azi)[need_top]
    at = off[:-1][need_top]
    md_ = np.insert(md_, at, 0.0)
    dip_ = np.insert(dip_, at, top_dip)
    azi_ = np.insert(azi_, at, top_azi)
    off = off + np.concatenate([[0], np.cumsum(need_top)])

    last = off[1:] - 1
    last_md = md_[last]
    if np.any(empty & ~np.isfinite(hole_len)):
        h = int(np.flatnonzero(empty & ~np.isfinite(hole_len))[0])
        raise ValueError(f"hole {_hole_label(hole_ids, h)}: no survey and no length")
    hole_len = np.where(np.isfinite(hole_len), hole_len, last_md)
    if np.any(hole_len < last_md):
        h = int(np.flatnonzero(hole_len < last_md)[0])
        raise ValueError(
            f"hole {_hole_label(hole_ids, h)}: survey at {last_md[h]} m is deeper than the hole "
            f"length {hole_len[h]} m"
        )
    need_bottom = hole_len > last_md
    at = off[1:][need_bottom]
    md_ = np.insert(md_, at, hole_len[need_bottom])
    dip_ = np.insert(dip_, at, dip_[last[need_bottom]])
    azi_ = np.insert(azi_, at, azi_[last[need_bottom]])
    off = off + np.concatenate([[0], np.cumsum(need_bottom)])

    starts = np.zeros(md_.size, dtype=bool)
    starts[off[:-1]] = True
    east, north, up, dogleg = _geometry(md_, dip_, azi_, starts, off, method, hole_ids)
    rep = np.diff(off)
    x, y, z = _place(
        east, north, up,
        np.repeat(x0, rep), np.repeat(y0, rep), np.repeat(cz, rep),
        np.repeat(gamma, rep), np.repeat(scale, rep),
    )  # fmt: skip
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
    x, y, z = _place(
        off[:, 0], off[:, 1], off[:, 2],
        trace.x[0], trace.y[0], trace.z[0], trace.convergence, trace.scale,
    )  # fmt: skip
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
