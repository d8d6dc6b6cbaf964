"""Lazy access to image stores as xarray (dask over the zarr chunks).

``open_image_store(uri, level)`` returns a ``DataArray`` with dims ``(c, y, x)``:

* ``c``: band names; ``wavelength_nm`` as a secondary coordinate on ``c``;
* ``y``/``x``: pixel-centre positions in micrometres, from the level's OME
  ``coordinateTransformations`` (``scale * index + translation``);
* data: a dask array with one dask chunk per zarr chunk -- nothing is read until computed;
* attrs: store URI, level, array path, pixel size of the level (µm), units, colours,
  checksum, and the OME ``multiscales`` entry.

Later, ``open_image(image_id)`` (catalogue) resolves an id to a URI and calls this.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mis.imagery.omezarr import open_level, read_metadata

__all__ = ["open_image_store", "open_image_pyramid"]


def _transform(dataset: dict[str, Any]) -> tuple[list[float], list[float]]:
    scale = [1.0, 1.0, 1.0]
    trans = [0.0, 0.0, 0.0]
    for t in dataset.get("coordinateTransformations", []):
        if t.get("type") == "scale":
            scale = [float(v) for v in t["scale"]]
        elif t.get("type") == "translation":
            trans = [float(v) for v in t["translation"]]
    return scale, trans


def open_image_store(uri: str | Path, level: int = 0, *, metadata: dict[str, Any] | None = None):
    """A lazy ``xarray.DataArray`` (dims c, y, x; coords in µm) of one pyramid level."""
    import dask.array as da
    import xarray as xr

    meta = metadata if metadata is not None else read_metadata(uri)
    ms = meta["ome"]["multiscales"][0]
    datasets = ms["datasets"]
    if not 0 <= level < len(datasets):
        raise ValueError(f"{uri}: level {level} not in 0..{len(datasets) - 1}")
    ds = datasets[level]
    arr = open_level(uri, level)
    scale, trans = _transform(ds)
    c, h, w = arr.shape
    data = da.from_zarr(arr, chunks=arr.chunks, name=f"mis-image-{uri}-{level}")

    units = {a["name"]: a.get("unit") for a in ms["axes"]}
    mis = meta.get("mis", {})
    bands = mis.get("bands") or [
        {"name": ch.get("label", f"band{i}"), "wavelength_nm": ch.get("wavelength_nm"),
         "color": ch.get("color")}
        for i, ch in enumerate(meta["ome"].get("omero", {}).get("channels", []))
    ]
    if len(bands) != c:
        bands = [{"name": f"band{i}", "wavelength_nm": None, "color": None} for i in range(c)]
    names = [b["name"] for b in bands]
    waves = np.array(
        [np.nan if b.get("wavelength_nm") is None else float(b["wavelength_nm"]) for b in bands]
    )
    y = trans[1] + scale[1] * np.arange(h, dtype=np.float64)
    x = trans[2] + scale[2] * np.arange(w, dtype=np.float64)
    yu, xu = units.get("y") or "micrometer", units.get("x") or "micrometer"
    return xr.DataArray(
        data,
        dims=("c", "y", "x"),
        coords={
            "c": names,
            "wavelength_nm": ("c", waves, {"units": "nm"}),
            "y": ("y", y, {"units": yu, "long_name": "image row position (pixel centre)"}),
            "x": ("x", x, {"units": xu, "long_name": "image column position (pixel centre)"}),
        },
        name=ms.get("name") or "image",
        attrs={
            "store_uri": str(uri),
            "level": level,
            "levels": len(datasets),
            "array_path": ds["path"],
            "pixel_size_um": scale[1],
            "base_pixel_size_um": mis.get("pixel_size_um", _transform(datasets[0])[0][1]),
            "units": yu,
            "chunks": tuple(int(v) for v in arr.chunks),
            "colors": [b.get("color") for b in bands],
            "checksum_sha256": mis.get("checksum_sha256"),
            "ome_version": meta["ome"].get("version"),
            "multiscales": ms,
        },
    )


def open_image_pyramid(uri: str | Path) -> list:
    """Every level of an image store as lazy DataArrays (level 0 first)."""
    meta = read_metadata(uri)
    n = len(meta["ome"]["multiscales"][0]["datasets"])
    return [open_image_store(uri, k, metadata=meta) for k in range(n)]
