"""Coordinate reference systems for desurveying: local UTM zone, grid factors, transforms.

Drillhole geometry is computed in a local metric CRS (x east, y north, z up) and stored
in EPSG:4326. This module holds the small amount of pyproj glue that needs: choosing the
UTM zone of a collar, the grid convergence and scale factor at a point, and cached
``always_xy`` transformers (building a pyproj Transformer costs far more than using one).

Sign of the meridian convergence (gamma), as returned by PROJ and used throughout MIS:
gamma is the clockwise angle from true north to grid north. East of a UTM central
meridian in the northern hemisphere gamma > 0. Hence

    azimuth_true = azimuth_grid + gamma.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pyproj import CRS, Proj, Transformer

__all__ = ["WGS84", "grid_factors", "transformer", "utm_epsg"]

WGS84 = 4326
"""EPSG code of the geographic CRS in which traces are published (lon, lat)."""


def utm_epsg(lon: ArrayLike, lat: ArrayLike) -> NDArray[np.int64]:
    """EPSG code of the WGS84 / UTM zone holding each (lon, lat): 326zz north, 327zz south.

    The Norway (32V) and Svalbard (31X-37X) zone exceptions are honoured, so a collar
    gets the zone a surveyor there would use. UTM is defined from 80S to 84N only;
    outside that a ValueError asks for an explicit polar CRS (e.g. UPS, EPSG:32661/32761).
    """
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    if np.any(~np.isfinite(lon) | ~np.isfinite(lat)):
        raise ValueError("utm_epsg: longitude and latitude must be finite")
    if np.any((lat < -80.0) | (lat > 84.0)):
        bad = lat[(lat < -80.0) | (lat > 84.0)].flat[0]
        raise ValueError(
            f"latitude {bad} is outside the UTM range (80S..84N): pass local_epsg "
            "(e.g. UPS north EPSG:32661 or south EPSG:32761)"
        )
    lon = (lon + 180.0) % 360.0 - 180.0
    zone = np.clip(np.floor((lon + 180.0) / 6.0).astype(np.int64) + 1, 1, 60)
    # Norway: zone 32V is widened west to 3E.
    zone = np.where((lat >= 56.0) & (lat < 64.0) & (lon >= 3.0) & (lon < 12.0), 32, zone)
    # Svalbard: zones 31X, 33X, 35X, 37X are widened; 32X, 34X, 36X do not exist.
    sval = (lat >= 72.0) & (lat <= 84.0)
    zone = np.where(sval & (lon >= 0.0) & (lon < 9.0), 31, zone)
    zone = np.where(sval & (lon >= 9.0) & (lon < 21.0), 33, zone)
    zone = np.where(sval & (lon >= 21.0) & (lon < 33.0), 35, zone)
    zone = np.where(sval & (lon >= 33.0) & (lon < 42.0), 37, zone)
    return np.where(lat >= 0.0, 32600, 32700) + zone


@lru_cache(maxsize=256)
def transformer(src_epsg: int, dst_epsg: int) -> Transformer:
    """Cached ``always_xy`` Transformer (x = easting or longitude first, always)."""
    return Transformer.from_crs(int(src_epsg), int(dst_epsg), always_xy=True)


@lru_cache(maxsize=256)
def _proj(epsg: int) -> Proj:
    crs = CRS.from_epsg(int(epsg))
    if not crs.is_projected:
        raise ValueError(
            f"EPSG:{epsg} is not a projected CRS: desurveying needs a metric CRS "
            "(x east, y north in metres)"
        )
    if any(ax.unit_name not in ("metre", "meter") for ax in crs.axis_info):
        raise ValueError(f"EPSG:{epsg} is not in metres")
    return Proj(crs)


def grid_factors(
    epsg: int, lon: ArrayLike, lat: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Meridian convergence (deg) and point scale factor of projected CRS ``epsg`` at lon/lat.

    gamma (the convergence) is the clockwise angle from true north to grid north, so a
    grid azimuth becomes a true one by adding gamma. The scale factor k turns ground
    metres into grid metres (grid distance = k * ground distance); for the conformal
    projections used for mine grids (UTM, TM, LCC) it is the same in every direction.
    Both are evaluated with PROJ (``Proj.get_factors``).
    """
    f = _proj(epsg).get_factors(
        np.asarray(lon, dtype=float), np.asarray(lat, dtype=float), errcheck=True
    )
    gamma = np.asarray(f.meridian_convergence, dtype=float)
    h, k = np.asarray(f.meridional_scale, dtype=float), np.asarray(f.parallel_scale, dtype=float)
    scale = np.sqrt(h * k)  # = h = k in a conformal projection
    return gamma, scale
