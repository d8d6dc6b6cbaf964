"""An image as the segmentation sees it: its store and level-0 geometry, found from a
catalogue image id or from the path/URL of its OME-Zarr store (:func:`image_ref`).

Part of the imagery catalogue's job (:mod:`mis.imagery.catalogue` registers images);
a module of its own so that working on a store path never loads the database layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mis.imagery.omezarr import open_level, read_metadata
from mis.imagery.store import canonical_uri

__all__ = ["ImageRef", "ImageRefError", "image_ref"]


class ImageRefError(ValueError):
    """An image reference that names no catalogue image and no image store."""


@dataclass(frozen=True)
class ImageRef:
    """Where an image's pixels are: its store and level-0 geometry (``image_id`` None
    when the image was given as a store path rather than a catalogue id)."""

    store_uri: str
    shape: tuple[int, int, int]
    chunks: tuple[int, int, int]
    image_id: int | None = None
    checksum_sha256: str | None = None
    band_names: tuple[str, ...] = ()

    @property
    def height(self) -> int:
        return self.shape[1]

    @property
    def width(self) -> int:
        return self.shape[2]


def image_ref(image: ImageRef | int | str | Path, url: str | None = None) -> ImageRef:
    """An image by catalogue id (``12`` or ``"12"``) or by the path/URL of its OME-Zarr
    store (no database needed then); an :class:`ImageRef` is returned as it is, so that
    every function taking an image accepts all three."""
    if isinstance(image, ImageRef):
        return image
    text = str(image)
    if text.isdigit():
        # here, not at the top: `mis predict STORE` must not load sqlalchemy (test_cli measures it)
        from mis.catalogue import models as m
        from mis.catalogue.session import transaction

        with transaction(url) as session:
            row = session.get(m.Image, int(text))
            if row is None:
                raise ImageRefError(f"image {text}: no such image in the catalogue")
            return ImageRef(store_uri=row.store_uri, shape=_triple(row.shape), chunks=_triple(row.chunks),
                            image_id=row.id, checksum_sha256=row.checksum_sha256,
                            band_names=tuple(row.band_names or ()))
    try:
        meta = read_metadata(text)
        arr = open_level(text, 0)
    except (FileNotFoundError, ValueError) as exc:
        raise ImageRefError(f"image {text!r}: neither a catalogue image id nor an OME-Zarr store ({exc})") from None
    mis = meta.get("mis", {})
    return ImageRef(store_uri=canonical_uri(text), shape=_triple(arr.shape), chunks=_triple(arr.chunks),
                    checksum_sha256=mis.get("checksum_sha256"),
                    band_names=tuple(b.get("name", "") for b in mis.get("bands", [])))


def _triple(values: Sequence[int]) -> tuple[int, int, int]:
    c, y, x = (int(v) for v in values)
    return c, y, x
