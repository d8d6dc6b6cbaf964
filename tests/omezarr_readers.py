"""The judges of an image store: the independent validator (ome-zarr-models) and the reader
napari uses (ome-zarr-py's ``Reader``). Every test that writes a store asks both."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import zarr


@dataclass
class ReadStore:
    """What ome-zarr-py found in a store: the image's levels and, per label image name,
    its levels, colours and properties."""

    image_levels: list[tuple[int, ...]]
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)


def validate_and_read(store_uri: str) -> ReadStore:
    """Validate ``store_uri`` as an OME-Zarr 0.5 image (labels included) with
    ome-zarr-models -- raises on any violation -- and read it back with ome-zarr-py."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Multiscales, Reader
    from ome_zarr_models.v05.image import Image

    model = Image.from_zarr(zarr.open_group(store_uri, mode="r"))
    listed = model.labels.label_paths if model.labels is not None else []
    location = parse_url(store_uri)
    assert location is not None, f"ome-zarr-py does not recognise {store_uri}"
    nodes = list(Reader(location)())
    images = [n for n in nodes if n.load(Multiscales) and not n.load(Label)]
    assert images, f"ome-zarr-py found no image in {store_uri}"
    out = ReadStore([tuple(d.shape) for d in images[0].data])
    for n in nodes:
        if n.load(Label):
            out.labels[n.zarr.basename()] = {  # its path (metadata "name" is the multiscale's own)
                "levels": [tuple(d.shape) for d in n.data],
                "colors": n.metadata.get("color", {}),
                "properties": n.metadata.get("properties", {}),
            }
    assert sorted(out.labels) == sorted(listed), (out.labels.keys(), listed)
    return out
