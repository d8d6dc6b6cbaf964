"""Sparse training labels stored with the image: ``mis label import IMAGE LABELS``.

Input, one of

* a **label image** (PNG or TIFF, one channel, integer values; ``0`` = unlabelled), the
  same height and width as the image, plus a **legend** JSON mapping label values to
  vocabulary terms, in any of these forms::

      {"1": "quartz", "2": "Ccp", "3": "pore/epoxy"}
      {"classes": {"1": "quartz", "2": "Ccp"}}           # or "legend": {...}
      [{"value": 1, "term": "quartz"}, {"value": 2, "class": "Ccp"}]

  (a value ``0`` may be listed as ``null`` / ``"unlabelled"``; it is never a class);
* **GeoJSON** scribbles and polygons in *image pixel coordinates* (x = column, y = row,
  y downwards; pixel ``(row r, column c)`` covers ``[c, c+1) x [r, r+1)``, the GDAL /
  QuPath convention), each feature naming its class in a property (``class`` by default;
  QuPath's ``classification: {"name": ...}`` is understood too). Polygons and
  MultiPolygons label the pixels whose centres lie inside (holes respected); LineStrings
  label every pixel they pass through, or with a ``width`` property (pixels) the pixels
  of the line buffered to that width; Points label their pixel (``radius`` property:
  a disc). Later features overwrite earlier ones where they overlap.

Every class term is resolved through the vocabulary (schemes ``mineral``, ``lithology``,
``segmentation-class``: background, pore/epoxy, unclassified). Unknown or ambiguous terms
are refused, all of them at once, each with the closest known names; nothing is written.

Storage: each version is a standard OME-Zarr 0.5 label image ``labels/<name>-v<N>``
inside the image's store (layout and metadata: :mod:`mis.imagery.layout`)::

    image.ome.zarr/labels/zarr.json          {"ome": {"version": "0.5",
                                              "labels": ["scribbles-v1", "scribbles-v2", ...]}}
    image.ome.zarr/labels/<name>-v<N>/       one label image per version:
        zarr.json  {"ome": {"version": "0.5", "multiscales": [...],
                            "image-label": {"version": "0.5",
                                            "colors": [{"label-value": 1, "rgba": [r, g, b, 255]}, ...],
                                            "properties": [{"label-value": 1, "class": URI,
                                                            "name": prefLabel, "symbol": notation,
                                                            "term": as typed}, ...],
                                            "source": {"image": "../../"}}},
                    "mis": {"name", "version", "legend": {"1": URI, ...}, "source_file",
                            "source_sha256", "source_format", "content_sha256",
                            "labelled_pixels", "pixel_counts": {"1": n, ...}, "created"}}
        0/, 1/, .. uint8 (uint16 beyond 255 values) arrays (c=1, y, x), one per image level
                   (2x2 mode), chunks (1, 512, 512) like the image, 0 = unlabelled

Colours are the concepts' display colours from the vocabulary (``mis:colour``), a fixed
palette where a concept has none. **Versions are never overwritten**: every import adds
``v<N+1>`` (written under a hidden temporary name and renamed into place, so a reader never
sees a half-written version); importing content identical to the latest version is a no-op
that returns it. ``read_labels(store, name)`` reads the latest version, or a given one.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mis.imagery import layout
from mis.imagery.chunks import tiles as chunk_tiles
from mis.imagery.imageref import ImageRef, image_ref
from mis.imagery.omezarr import read_metadata, sha256_file
from mis.imagery.store import canonical_uri, open_group, publish_group

__all__ = [
    "LABEL_SCHEMES",
    "LabelError",
    "LabelSet",
    "StoredLabels",
    "import_labels",
    "label_versions",
    "list_label_sets",
    "read_geojson_labels",
    "read_label_image",
    "read_labels",
    "read_legend",
    "resolve_classes",
    "store_labels",
]

LABEL_SCHEMES = ["mineral", "lithology", "segmentation-class"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_VERSION = re.compile(r"^v(\d+)$")


class LabelError(ValueError):
    """Bad label input (the message names the file, the place and the rule broken)."""


# --------------------------------------------------------------------------- reading inputs


def read_label_image(path: str | Path) -> np.ndarray:
    """A single-channel integer label image (PNG, TIFF, or anything Pillow reads) as a
    (H, W) int64 array; palette PNGs give their indices."""
    path = Path(path)
    if not path.is_file():
        raise LabelError(f"{path}: no such file")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            arr = tifffile.imread(path)
        else:
            from PIL import Image

            with Image.open(path) as im:
                if im.mode in ("RGB", "RGBA", "LA", "CMYK", "YCbCr", "HSV"):
                    raise LabelError(
                        f"{path}: label image is {im.mode} colour; it must have one channel whose values are "
                        "classes (greyscale or palette PNG, integer TIFF)")
                arr = np.array(im)
    except LabelError:
        raise
    except Exception as exc:  # decoders raise many kinds; re-raised naming the file
        raise LabelError(f"{path}: cannot read as an image ({exc})") from exc
    arr = np.squeeze(np.asarray(arr))
    if arr.ndim != 2:
        raise LabelError(f"{path}: label image must be 2-D (one channel), got shape {arr.shape}")
    if arr.dtype.kind == "b":
        arr = arr.astype(np.uint8)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise LabelError(f"{path}: label values must be integers, the image holds fractions/NaN")
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "ui":
        raise LabelError(f"{path}: unsupported pixel type {arr.dtype} for labels")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise LabelError(f"{path}: label values must be >= 0 (0 = unlabelled), found {arr.min()}")
    if arr.size and arr.max() > 65535:
        raise LabelError(f"{path}: label values must be <= 65535, found {arr.max()}")
    return arr


def _read_json(path: Path) -> Any:
    """A JSON document from a file, or a :class:`LabelError` naming the file and why."""
    if not path.is_file():
        raise LabelError(f"{path}: no such file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LabelError(f"{path}: not valid JSON ({exc})") from None


def read_legend(path: str | Path) -> dict[int, str]:
    """A legend JSON file -> {value (>= 1): term}. See the module docs for the forms."""
    doc = _read_json(Path(path))
    if isinstance(doc, dict):
        for key in ("classes", "legend", "labels"):
            if key in doc and isinstance(doc[key], (dict, list)):
                doc = doc[key]
                break
    items: list[tuple[Any, Any, str]] = []
    if isinstance(doc, dict):
        items = [(k, v, f"key {k!r}") for k, v in doc.items()]
    elif isinstance(doc, list):
        for i, entry in enumerate(doc):
            if not isinstance(entry, dict):
                raise LabelError(f"{path}: entry {i} must be an object with 'value' and 'term'")
            term = next((entry[k] for k in ("term", "class", "name", "uri", "label") if k in entry), None)
            if "value" not in entry:
                raise LabelError(f"{path}: entry {i} has no 'value'")
            items.append((entry["value"], term, f"entry {i}"))
    else:
        raise LabelError(f"{path}: legend must map label values to terms (an object or a list)")
    out: dict[int, str] = {}
    for raw, term, where in items:
        try:
            value = int(raw)
            if str(raw).strip() != str(value) and not isinstance(raw, int):
                raise ValueError
        except (TypeError, ValueError):
            raise LabelError(f"{path}: {where}: label value {raw!r} is not an integer") from None
        if value == 0:
            if term in (None, "", "unlabelled", "unlabeled", "none"):
                continue
            raise LabelError(f"{path}: {where}: value 0 means unlabelled and cannot be the class {term!r}")
        if not 1 <= value <= 65535:
            raise LabelError(f"{path}: {where}: label value {value} outside 1..65535")
        if not isinstance(term, str) or not term.strip():
            raise LabelError(f"{path}: {where}: value {value} has no class term")
        if value in out:
            raise LabelError(f"{path}: {where}: value {value} is listed twice")
        out[value] = term.strip()
    if not out:
        raise LabelError(f"{path}: legend names no class")
    return out


@dataclass
class _Shape:
    """One GeoJSON geometry to rasterise with its label value."""

    geom: Any  # shapely geometry (pixel coordinates)
    value: int
    width: float | None = None  # lines: buffer to this width (pixels)
    radius: float | None = None  # points: disc radius (pixels)


def _class_of(props: dict[str, Any], prop: str) -> Any:
    v = props.get(prop)
    if v is None and prop == "class":
        for alt in ("classification", "label", "mineral", "term"):
            if props.get(alt) is not None:
                v = props[alt]
                break
    if isinstance(v, dict):  # QuPath: {"name": "Quartz", "color": [...]}
        v = v.get("name") or v.get("term") or v.get("uri")
    return v


def read_geojson_labels(path: str | Path, class_property: str = "class") -> tuple[list[_Shape], dict[int, str]]:
    """Geometries of a GeoJSON file (FeatureCollection, Feature or list of features) in
    pixel coordinates, each with a label value 1..K in order of first appearance of its
    class term; returns (shapes, legend {value: term})."""
    import shapely.geometry

    doc = _read_json(Path(path))
    if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        feats = doc.get("features")
    elif isinstance(doc, dict) and doc.get("type") == "Feature":
        feats = [doc]
    elif isinstance(doc, list):
        feats = doc
    else:
        raise LabelError(f"{path}: GeoJSON must be a FeatureCollection, a Feature or a list of features")
    if not isinstance(feats, list) or not feats:
        raise LabelError(f"{path}: no features")
    values: dict[str, int] = {}
    shapes: list[_Shape] = []
    for i, f in enumerate(feats):
        where = f"{path}: feature {i}"
        if not isinstance(f, dict) or f.get("type") != "Feature":
            raise LabelError(f"{where}: not a GeoJSON Feature")
        props = f.get("properties") or {}
        term = _class_of(props, class_property)
        if not isinstance(term, str) or not term.strip():
            raise LabelError(f"{where}: property {class_property!r} (the class) is missing or empty")
        if f.get("geometry") is None:
            raise LabelError(f"{where}: has no geometry")
        try:
            geom = shapely.geometry.shape(f["geometry"])
        except Exception as exc:  # shapely raises many kinds; re-raised naming the feature
            raise LabelError(f"{where}: invalid geometry ({exc})") from exc
        if geom.is_empty:
            raise LabelError(f"{where}: empty geometry")
        if geom.geom_type not in ("Polygon", "MultiPolygon", "LineString", "MultiLineString", "Point",
                                  "MultiPoint", "GeometryCollection"):
            raise LabelError(f"{where}: unsupported geometry type {geom.geom_type}")
        term = term.strip()
        value = values.setdefault(term, len(values) + 1)
        width = props.get("width")
        radius = props.get("radius")
        for what, v in (("width", width), ("radius", radius)):
            if v is not None and (not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0):
                raise LabelError(f"{where}: property {what!r} must be a non-negative number of pixels, got {v!r}")
        shapes.append(_Shape(geom, value, float(width) if width else None, float(radius) if radius else None))
    return shapes, {v: t for t, v in values.items()}


# --------------------------------------------------------------------------- rasterising


def _fill_polygon(out: np.ndarray, poly: Any, value: int, y0: int, x0: int) -> None:
    """Pixels of ``out`` (window at y0, x0) whose centres lie inside ``poly``."""
    from skimage.draw import polygon as draw_polygon

    h, w = out.shape

    def ring(coords: Any) -> tuple[np.ndarray, np.ndarray]:
        c = np.asarray(coords, dtype=np.float64)
        # pixel (r, c) has its centre at (x = c + 0.5, y = r + 0.5): shift by -0.5 so
        # skimage's integer-centred grid tests the centres
        return c[:, 1] - 0.5 - y0, c[:, 0] - 0.5 - x0

    rr, cc = draw_polygon(*ring(poly.exterior.coords), shape=(h, w))
    if not poly.interiors:
        out[rr, cc] = value
        return
    mask = np.zeros((h, w), bool)
    mask[rr, cc] = True
    for hole in poly.interiors:
        hr, hc = draw_polygon(*ring(hole.coords), shape=(h, w))
        mask[hr, hc] = False
    out[mask] = value


def _draw_line(out: np.ndarray, line: Any, value: int, y0: int, x0: int) -> None:
    """Every pixel a line passes through (sampled at 1/4 pixel, plus its vertices)."""
    import shapely

    h, w = out.shape
    n = max(2, int(math.ceil(line.length * 4)) + 1)
    pts = shapely.get_coordinates(shapely.line_interpolate_point(line, np.linspace(0.0, line.length, n)))
    pts = np.concatenate([pts, shapely.get_coordinates(line)])
    r = np.floor(pts[:, 1]).astype(np.int64) - y0
    c = np.floor(pts[:, 0]).astype(np.int64) - x0
    ok = (r >= 0) & (r < h) & (c >= 0) & (c < w)
    out[r[ok], c[ok]] = value


def _rasterise(shapes: Sequence[_Shape], y0: int, x0: int, h: int, w: int, dtype: Any) -> np.ndarray:
    """Label tile (h, w) at (y0, x0) of the shapes (later shapes on top)."""
    import shapely

    out = np.zeros((h, w), dtype=dtype)
    win = shapely.box(x0 - 1, y0 - 1, x0 + w + 1, y0 + h + 1)
    for s in shapes:
        if not s.geom.intersects(win):
            continue
        parts = getattr(s.geom, "geoms", [s.geom])
        for g in parts:
            if g.geom_type in ("Polygon", "MultiPolygon"):
                for p in getattr(g, "geoms", [g]):
                    _fill_polygon(out, p, s.value, y0, x0)
            elif g.geom_type in ("LineString", "LinearRing", "MultiLineString"):
                for ln in getattr(g, "geoms", [g]):
                    if s.width and s.width > 1:
                        _fill_polygon_any(out, ln.buffer(s.width / 2.0), s.value, y0, x0)
                    else:
                        _draw_line(out, ln, s.value, y0, x0)
            elif g.geom_type in ("Point", "MultiPoint"):
                for p in getattr(g, "geoms", [g]):
                    if s.radius:
                        _fill_polygon_any(out, p.buffer(s.radius), s.value, y0, x0)
                    else:
                        r, c = int(math.floor(p.y)) - y0, int(math.floor(p.x)) - x0
                        if 0 <= r < h and 0 <= c < w:
                            out[r, c] = s.value
    return out


def _fill_polygon_any(out: np.ndarray, geom: Any, value: int, y0: int, x0: int) -> None:
    for p in getattr(geom, "geoms", [geom]):
        if p.geom_type == "Polygon" and not p.is_empty:
            _fill_polygon(out, p, value, y0, x0)


# --------------------------------------------------------------------------- vocabulary


@dataclass(frozen=True)
class ResolvedClass:
    term: str
    uri: str
    name: str
    colour: str  # RRGGBB
    symbol: str | None = None  # the concept's notation (IMA symbol), when it has one

    def label_class(self, value: int) -> layout.LabelClass:
        """This class as label value ``value`` of a label image."""
        return layout.LabelClass(value, self.uri, self.name, self.colour, self.symbol, self.term)


def concept_colour(concept: Any) -> str:
    """A concept's display colour (``mis:colour``, RRGGBB), or a stable fallback."""
    colour = str((concept.properties or {}).get("colour") or "").lstrip("#").upper()
    return colour if re.fullmatch(r"[0-9A-F]{6}", colour) else layout.fallback_colour(concept.uri)


def resolve_classes(terms: Iterable[str], session: Any = None, url: str | None = None,
                    schemes: Sequence[str] = LABEL_SCHEMES) -> dict[str, ResolvedClass]:
    """Class terms as people type them ("Ccp", "quartz", "pore/epoxy", a URI) ->
    concepts with display colours. All unknown/ambiguous terms are reported together."""
    from mis.catalogue import models as m
    from mis.vocab.lookup import Term, TermIndex

    def run(sess: Any) -> dict[str, ResolvedClass]:
        index = TermIndex.from_session(sess, list(schemes))
        out: dict[str, ResolvedClass] = {}
        problems = []
        for t in dict.fromkeys(terms):
            term: Term | None
            try:
                term = index.resolve(t, list(schemes))
            except LookupError as exc:
                # "pore/epoxy" for "pore / epoxy": spacing around a slash is not a typo
                alt = re.sub(r"\s*/\s*", " / ", t)
                try:
                    term = index.resolve(alt, list(schemes)) if alt != t else None
                except LookupError:
                    term = None
                if term is None:
                    problems.append(str(exc))
                    continue
            assert term is not None  # resolved, or the loop went on
            concept = sess.get(m.Concept, term.uri)
            out[t] = ResolvedClass(t, term.uri, term.pref_label, concept_colour(concept), concept.notation or None)
        if problems:
            raise LabelError("class terms not in the vocabulary (" + ", ".join(schemes) + "): "
                             + "; ".join(problems))
        return out

    if session is not None:
        return run(session)
    from mis.catalogue.session import transaction

    with transaction(url) as sess:
        return run(sess)


# --------------------------------------------------------------------------- storing


@dataclass(frozen=True)
class StoredLabels:
    """One stored version of a label set (what :func:`import_labels` returns)."""

    store_uri: str
    name: str
    version: int
    path: str  # inside the store: labels/<name>-v<N>
    legend: dict[int, str]  # value -> concept URI
    pixel_counts: dict[int, int]
    created: bool  # False: identical to the latest version, nothing written

    @property
    def labelled_pixels(self) -> int:
        return sum(self.pixel_counts.values())


@dataclass
class LabelSet:
    """A version of a label set opened for reading: ``array`` is the zarr (1, y, x)
    array (read it chunk by chunk), ``legend`` value -> concept URI."""

    store_uri: str
    name: str
    version: int
    path: str
    array: Any
    legend: dict[int, str]
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        """Concept URIs in label-value order."""
        return [self.legend[v] for v in sorted(self.legend)]

    def read(self) -> np.ndarray:
        """The whole label image (H, W) (small images; use ``array`` for big ones)."""
        return np.asarray(self.array[0])


def _check_name(name: str) -> str:
    if (not _NAME.match(name) or _VERSION.match(name) or name == "prediction"
            or name.startswith(layout.PREDICTION_PREFIX)):
        raise LabelError(f"label set name {name!r}: use letters, digits, '.', '_' or '-' (not v<N>, not "
                         "'prediction...': those name prediction runs), starting with a letter or digit, "
                         "at most 64 characters")
    return name


def list_label_sets(store_uri: str) -> dict[str, list[int]]:
    """{name: versions (ascending)} of every label set in a store."""
    out: dict[str, list[int]] = {}
    for child in layout.label_image_names(store_uri):
        if (parsed := layout.parse_label_set(child)) is not None:
            out.setdefault(parsed[0], []).append(parsed[1])
    return {n: sorted(v) for n, v in sorted(out.items())}


def label_versions(store_uri: str, name: str) -> list[int]:
    """Versions of a label set in a store, ascending ([] when there is none)."""
    return list_label_sets(store_uri).get(name, [])


def read_labels(store_uri: str, name: str = "default", version: int | None = None) -> LabelSet:
    """Open a stored label set version (the latest when ``version`` is None)."""
    versions = label_versions(store_uri, name)
    if not versions:
        known = ", ".join(list_label_sets(store_uri)) or "none"
        raise LabelError(f"{store_uri}: no label set {name!r} (label sets: {known})")
    if version is None:
        version = versions[-1]
    elif version not in versions:
        raise LabelError(f"{store_uri}: label set {name!r} has no version {version} (versions: {versions})")
    path = layout.label_set_path(name, version)
    group = open_group(store_uri, path, mode="r")
    attrs = dict(group.attrs)
    legend = {int(k): str(v) for k, v in (attrs.get("mis", {}).get("legend") or {}).items()}
    return LabelSet(store_uri=canonical_uri(store_uri), name=name, version=version, path=path,
                    array=group["0"], legend=legend, attrs=attrs)


def _label_dtype(max_value: int) -> np.dtype:
    return layout.label_dtype(max_value)


def _write_version(
    image: ImageRef,
    name: str,
    tiles: Any,
    dtype: np.dtype,
    version_attrs: dict[str, Any],
    classes: Sequence[layout.LabelClass],
) -> int:
    """Create labels/<name>-v<N+1> from ``tiles()``, an iterator of (y0, x0, tile) over
    the chunk grid, with its pyramid; atomically (built under a hidden name, renamed into
    place; a concurrent writer that took N+1 makes us try N+2). Returns N+1."""
    uri = canonical_uri(image.store_uri)
    image_ome = read_metadata(uri)["ome"]  # its axes and levels are the labels' too

    def fill(group: Any) -> None:
        arr = layout.create_label_levels(group, uri, dtype)[0]
        for y0, x0, tile in tiles():
            if tile.any():
                arr[0, y0 : y0 + tile.shape[0], x0 : x0 + tile.shape[1]] = tile
        layout.build_pyramid(group)

    open_group(uri, mode="r+").require_group(layout.LABELS)
    for _attempt in range(20):
        version = (label_versions(uri, name) or [0])[-1] + 1
        path = layout.label_set_path(name, version)
        child = path.rsplit("/", 1)[-1]
        attrs = {"ome": layout.label_image_ome(image_ome, child, classes),
                 "mis": {**version_attrs, "name": name, "version": version}}
        if publish_group(uri, path, attrs, fill):
            break
    else:  # pragma: no cover - 20 concurrent writers
        raise LabelError(f"{uri}: could not claim a new version of label set {name!r}")
    layout.update_labels_index(uri)
    return version


def store_labels(
    image: ImageRef,
    name: str,
    legend: dict[int, ResolvedClass],
    tiles: Any,
    *,
    max_value: int,
    source_file: str | None = None,
    source_sha256: str | None = None,
    source_format: str = "array",
) -> StoredLabels:
    """Store label tiles as a new version of label set ``name`` (see the module docs).

    ``tiles()`` yields (y0, x0, tile) for every chunk of the image grid (tile values:
    label values, 0 = unlabelled). Values present must all be in ``legend``."""
    _check_name(name)
    _, cy, cx = image.chunks
    dtype = _label_dtype(max_value)
    # one pass: counts, unknown values, content hash (the tiles are regenerated for writing)
    counts: dict[int, int] = {}
    digest = hashlib.sha256()
    for y0, x0, tile in tiles():
        vals, n = np.unique(tile, return_counts=True)
        for v, k in zip(vals.tolist(), n.tolist(), strict=True):
            if v:
                counts[v] = counts.get(v, 0) + k
        if tile.any():
            digest.update(f"{y0},{x0};".encode())
            digest.update(np.ascontiguousarray(tile, dtype=dtype).tobytes())
    missing = sorted(set(counts) - set(legend))
    if missing:
        raise LabelError(f"{source_file or 'labels'}: label values {missing} are not in the legend")
    if not counts:
        raise LabelError(f"{source_file or 'labels'}: no labelled pixel (all values are 0) inside the image")
    used = {v: legend[v] for v in sorted(counts)}
    uri_legend = {str(v): rc.uri for v, rc in used.items()}
    digest.update(json.dumps(uri_legend, sort_keys=True).encode())
    content = digest.hexdigest()
    versions = label_versions(image.store_uri, name)
    if versions:
        latest = read_labels(image.store_uri, name, versions[-1])
        if latest.attrs.get("mis", {}).get("content_sha256") == content:
            return StoredLabels(latest.store_uri, name, latest.version, latest.path,
                                {int(k): v for k, v in uri_legend.items()},
                                {int(k): int(v) for k, v in latest.attrs["mis"].get("pixel_counts", {}).items()},
                                created=False)
    attrs = {
        "legend": uri_legend,
        "classes": [rc.uri for rc in used.values()],
        "source_file": source_file,
        "source_sha256": source_sha256,
        "source_format": source_format,
        "content_sha256": content,
        "labelled_pixels": int(sum(counts.values())),
        "pixel_counts": {str(v): int(counts[v]) for v in sorted(counts)},
        "image_checksum_sha256": image.checksum_sha256,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    version = _write_version(image, name, tiles, dtype, attrs, [rc.label_class(v) for v, rc in used.items()])
    return StoredLabels(canonical_uri(image.store_uri), name, version, layout.label_set_path(name, version),
                        {v: rc.uri for v, rc in used.items()}, {v: int(counts[v]) for v in sorted(counts)},
                        created=True)


def import_labels(
    image: int | str | Path,
    labels: str | Path,
    *,
    legend: str | Path | None = None,
    name: str = "default",
    class_property: str = "class",
    url: str | None = None,
    session: Any = None,
) -> StoredLabels:
    """Import sparse labels for an image (catalogue id or store path): a label image +
    ``legend`` JSON, or GeoJSON (``.geojson``/``.json`` without legend) with a class
    property. Terms are resolved through the vocabulary; the labels are stored as a new
    version ``labels/<name>-v<N>`` in the image's OME-Zarr. Nothing is written on error."""
    _check_name(name)
    ref = image_ref(image, url)
    path = Path(labels)
    if not path.is_file():
        raise LabelError(f"{path}: no such file")
    is_geojson = path.suffix.lower() in (".geojson", ".json")
    _, cy, cx = ref.chunks
    h, w = ref.height, ref.width
    if is_geojson:
        if legend is not None:
            raise LabelError(f"{path}: GeoJSON labels name their classes in the {class_property!r} property; "
                             "--legend is for label images")
        shapes, terms = read_geojson_labels(path, class_property)
        resolved = resolve_classes(terms.values(), session=session, url=url)
        classes = {v: resolved[t] for v, t in terms.items()}

        def shape_tiles() -> Iterator[tuple[int, int, np.ndarray]]:
            dt = _label_dtype(len(terms))
            for y0, x0, th, tw in chunk_tiles((h, w), (cy, cx)):
                yield y0, x0, _rasterise(shapes, y0, x0, th, tw, dt)

        return store_labels(ref, name, classes, shape_tiles, max_value=len(terms), source_file=str(path),
                            source_sha256=sha256_file(path), source_format="geojson")
    if legend is None:
        raise LabelError(f"{path}: a label image needs --legend LEGEND.json (label value -> class term)")
    arr = read_label_image(path)
    if arr.shape != (h, w):
        raise LabelError(f"{path}: label image is {arr.shape[0]} x {arr.shape[1]} px (rows x columns), "
                         f"the image is {h} x {w} px; they must match")
    terms = read_legend(legend)
    present = set(np.unique(arr).tolist()) - {0}
    missing = sorted(present - set(terms))
    if missing:
        raise LabelError(f"{path}: label values {missing} appear in the image but not in the legend {legend}")
    resolved = resolve_classes([terms[v] for v in sorted(present)], session=session, url=url)
    classes = {v: resolved[terms[v]] for v in sorted(present)}
    small = arr.astype(_label_dtype(int(arr.max(initial=0))))

    def tiles() -> Iterator[tuple[int, int, np.ndarray]]:
        for y0, x0, th, tw in chunk_tiles((h, w), (cy, cx)):
            yield y0, x0, small[y0 : y0 + th, x0 : x0 + tw]

    return store_labels(ref, name, classes, tiles, max_value=int(arr.max(initial=0)),
                        source_file=str(path), source_sha256=sha256_file(path), source_format="label-image")
