"""Images in the catalogue: ``mis image add`` and ``open_image(image_id)``.

An image is imported into the store first (atomically: a failed import leaves no zarr)
and its catalogue row is written after, in one transaction; if that transaction fails,
the new store is removed again, so the catalogue and the store never disagree. The same
file added to the same plug twice is recognised by its SHA-256 and not imported again.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from mis.catalogue import models as m
from mis.catalogue.errors import CatalogueError, explain
from mis.catalogue.refs import find_plug
from mis.catalogue.session import transaction
from mis.imagery.omezarr import import_image
from mis.imagery.store import is_url, remove_store
from mis.settings import mis_home, settings
from mis.vocab.lookup import TermIndex


@dataclass(frozen=True)
class AddedImage:
    image_id: int
    store_uri: str
    created: bool  # False when the same file was already registered for this plug


def image_store_root() -> str:
    """Where image stores go: ``$MIS_IMAGE_STORE`` (a path or fsspec URL) or ``$MIS_HOME/images``."""
    return settings().image_store or str(mis_home() / "images")


def sources_checksum(paths: Sequence[Path]) -> str:
    """SHA-256 of the sources' bytes in band order (``cat a b c | sha256sum``), as the store records."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _slug(text: str) -> str:
    """A path component for a name: letters, digits, ``._-``; never ``.``/``..`` or hidden
    (leading dots go), never empty."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_").lstrip(".") or "x"


def store_path(root: str, *names: str) -> str:
    """``root/slug(name)/...``: where an image store goes. A local path is checked after
    resolving (symbolic links included) to lie inside ``root``; CatalogueError otherwise."""
    root = root.rstrip("/")
    dest = "/".join([root, *(_slug(n) for n in names)])
    if not is_url(dest):
        base = Path(root.removeprefix("file://")).resolve()
        if not Path(dest.removeprefix("file://")).resolve().is_relative_to(base):
            raise CatalogueError(f"the image store for {'/'.join(names)!r} would lie outside {base}")
    return dest


def inside_store_root(uri: str, root: str | None = None) -> bool:
    """Whether the store at ``uri`` lies inside the image store root (what MIS may delete)."""
    root = (root or image_store_root()).rstrip("/")
    if is_url(uri):
        return uri.startswith(root + "/")
    base = Path(root.removeprefix("file://")).resolve()
    return Path(uri.removeprefix("file://")).resolve().is_relative_to(base)


def remove_stores(uris: Sequence[str], root: str | None = None) -> list[str]:
    """Delete the stores of deleted images that lie inside the image store root; one line
    per store saying whether it went or was kept (a store outside the root, e.g. given by
    a path of the user's own, is never deleted)."""
    lines = []
    for uri in uris:
        if inside_store_root(uri, root):
            remove_store(uri)
            lines.append(f"removed image store {uri}")
        else:
            lines.append(f"kept image store {uri} (outside the image store root)")
    return lines


def _check_depth_registration(plug: m.Plug, hole: m.DrillCore, axis: str | None,
                              top: float | None, bottom: float | None) -> None:
    if axis is None:
        if top is not None or bottom is not None:
            raise CatalogueError("--top/--bottom need --depth-axis x or y")
        return
    if axis not in ("x", "y"):
        raise CatalogueError(f"--depth-axis must be 'x' or 'y', not {axis!r}")
    if top is None or bottom is None:
        raise CatalogueError("--depth-axis needs both --top and --bottom (metres along hole)")
    if not 0 <= top < bottom:
        raise CatalogueError(f"depth registration: top {top} m must be >= 0 and less than bottom {bottom} m")
    if bottom > hole.length_m:
        raise CatalogueError(
            f"depth registration: bottom {bottom} m is beyond the end of hole {hole.name} (length_m {hole.length_m})")


def add_image(
    plug_ref: str,
    sources: Path | Sequence[Path],
    *,
    pixel_size_um: float,
    modality: str,
    band_names: Sequence[str] | None = None,
    wavelengths_nm: Sequence[float] | None = None,
    depth_axis: str | None = None,
    top_m: float | None = None,
    bottom_m: float | None = None,
    name: str | None = None,
    store_root: str | None = None,
    url: str | None = None,
    progress: bool = True,
) -> AddedImage:
    """Import ``sources`` (one file, or one greyscale file per band) for a plug and register it."""
    paths = [Path(sources)] if isinstance(sources, (str, Path)) else [Path(p) for p in sources]
    for path in paths:
        if not path.is_file():
            raise CatalogueError(f"{path}: no such file")
    checksum = sources_checksum(paths)
    with transaction(url) as session:
        plug = find_plug(session, plug_ref)
        hole = session.get_one(m.DrillCore, plug.drillcore_id)  # the foreign keys guarantee both
        deposit = session.get_one(m.Deposit, hole.deposit_id)
        existing = session.scalar(select(m.Image).where(
            m.Image.plug_id == plug.id, m.Image.checksum_sha256 == checksum))
        if existing is not None:
            return AddedImage(existing.id, existing.store_uri, created=False)
        try:
            modality_uri = TermIndex.from_session(session, ["image-modality"]).resolve(
                modality, "image-modality").uri
        except LookupError as exc:
            raise CatalogueError(f"--modality: {exc}") from None
        _check_depth_registration(plug, hole, depth_axis, top_m, bottom_m)
        image_name = name or paths[0].stem
        dest = store_path(store_root or image_store_root(), deposit.name, hole.name, plug.name,
                          f"{image_name}-{checksum[:12]}.ome.zarr")
        plug_id = plug.id

    if "://" not in dest:
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
    imported = import_image(paths, dest, pixel_size_um=pixel_size_um, band_names=band_names,
                            wavelengths_nm=wavelengths_nm, name=image_name, progress=progress)
    try:
        with transaction(url) as session:
            row = m.Image(
                plug_id=plug_id, name=image_name, store_uri=imported.store_uri,
                array_paths=list(imported.array_paths), shape=list(imported.shape),
                chunks=list(imported.chunks), dtype=imported.dtype,
                pixel_size_um=imported.pixel_size_um, modality_uri=modality_uri,
                band_names=[b.name for b in imported.bands],
                band_wavelengths_nm=([b.wavelength_nm for b in imported.bands]
                                     if any(b.wavelength_nm for b in imported.bands) else None),
                checksum_sha256=imported.checksum_sha256, source_name=", ".join(p.name for p in paths),
                depth_axis=depth_axis, depth_top_m=top_m, depth_bottom_m=bottom_m,
            )
            session.add(row)
            session.flush()
            return AddedImage(row.id, row.store_uri, created=True)
    except BaseException as exc:
        remove_store(imported.store_uri)
        if isinstance(exc, IntegrityError):
            raise explain(exc) from None
        raise


def open_image(image_id: int, level: int = 0, *, url: str | None = None):
    """The image as a lazy ``xarray.DataArray`` (dims c, y, x; coords in µm), any pyramid level.

    ``attrs`` carry the catalogue metadata: image id, plug, hole, modality, bands, checksum
    and depth registration, next to the store's own (pixel size, units, colours).
    """
    from mis.imagery.access import open_image_store

    with transaction(url) as session:
        image = session.get(m.Image, image_id)
        if image is None:
            raise CatalogueError(f"image {image_id}: no such image")
        if not 0 <= level < len(image.array_paths):
            raise CatalogueError(f"image {image_id}: level {level} does not exist "
                                 f"(levels 0..{len(image.array_paths) - 1})")
        plug = session.get_one(m.Plug, image.plug_id)
        hole = session.get_one(m.DrillCore, plug.drillcore_id)  # the foreign keys guarantee both
        meta: dict[str, Any] = {
            "image_id": image.id, "image_name": image.name, "plug_id": plug.id, "plug": plug.name,
            "drillcore": hole.name, "from_m": plug.from_m, "to_m": plug.to_m,
            "modality_uri": image.modality_uri, "checksum_sha256": image.checksum_sha256,
            "band_names": list(image.band_names), "depth_axis": image.depth_axis,
            "depth_top_m": image.depth_top_m, "depth_bottom_m": image.depth_bottom_m,
        }
    array = open_image_store(image.store_uri, level)
    array.attrs.update(meta)
    return array


def catalogue_store_uris(*, url: str | None = None) -> list[str]:
    """The store of every image in the catalogue, in id order (what `mis image upgrade
    --all` goes through)."""
    with transaction(url) as session:
        return list(session.scalars(select(m.Image.store_uri).order_by(m.Image.id)))
