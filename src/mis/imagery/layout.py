"""Where labels and predictions live in an image store, and the OME metadata that makes
every one of them a standard OME-Zarr 0.5 label image.

The one place that knows the layout (labels, training, prediction, ingestion, the
upgrade and the IIIF side all go through it)::

    image.ome.zarr/
      zarr.json, 0/, 1/, ...          the image (mis.imagery.omezarr)
      labels/zarr.json                {"ome": {"version": "0.5", "labels": [<name>, ...]}}
      labels/<set>-v<N>/              one version of a label set (scribbles), e.g. scribbles-v1
      labels/prediction-<run>/        one prediction run, e.g. prediction-rf
        zarr.json                     {"ome": {multiscales, "image-label"}, "mis": {...}}
        0/, 1/, ...                   (1, y, x) uint8/uint16 label values, one level per
                                      image level (validators require as many), chunks
                                      like the image's
        probability                   predictions only: (y, x) float16 max class
                                      probability (NaN = not predicted), named in
                                      attrs["mis"]["probability"]
        chunk_counts                  predictions only: resume markers (mis.segment.predict)

Why direct children of ``labels/``: the OME-Zarr ``labels`` list names label images
relative to ``labels/``, and readers (ome-zarr-py/napari, ome-zarr-models) open each
entry as a multiscale image with ``image-label`` metadata; nested groups are not found.

Label values: ``0`` is "nothing" (unlabelled / not predicted; napari draws it
transparent); value ``v >= 1`` is the class described by the ``properties`` entry of
that ``label-value`` (concept URI, name, symbol; predictions add run and model hash) and
drawn in the ``colors`` entry (the vocabulary's mineral colour). A prediction stores
class index ``i`` (into ``attrs["mis"]["classes"]``) as ``i + 1``;
:class:`ClassIndexArray` gives the ingestion back the class indices.

Pyramid: level ``k`` is the 2x2 *mode* of level ``k-1`` over the labelled pixels of the
block (0 only where the whole block is 0; ties: the first in raster order), with the
image's coordinate transformations, so labels overlay the image at every zoom.
The ``labels`` list names complete label images only: every label set version (written
under a hidden temporary name and renamed into place) and finished prediction runs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mis.imagery.chunks import tiles
from mis.imagery.store import children, open_group

__all__ = [
    "LABELS",
    "PREDICTION_PREFIX",
    "ClassIndexArray",
    "LabelClass",
    "build_pyramid",
    "classes_in_store",
    "create_label_levels",
    "describe_classes",
    "fallback_colour",
    "label_classes_of",
    "label_dtype",
    "label_image_names",
    "label_image_ome",
    "label_set_path",
    "mode2x",
    "parse_label_set",
    "parse_prediction",
    "prediction_path",
    "rgba_hex",
    "update_labels_index",
]

OME_VERSION = "0.5"
LABELS = "labels"
PREDICTION_PREFIX = "prediction-"
_LABEL_SET = re.compile(r"^(?P<name>.+)-v(?P<version>[1-9][0-9]*)$")


# --------------------------------------------------------------------------- names


def label_set_path(name: str, version: int) -> str:
    """Path inside the store of version ``version`` of label set ``name``."""
    return f"{LABELS}/{name}-v{int(version)}"


def prediction_path(run: str) -> str:
    """Path inside the store of prediction run ``run``."""
    return f"{LABELS}/{PREDICTION_PREFIX}{run}"


def parse_prediction(child: str) -> str | None:
    """The run name of a ``labels/`` child that is a prediction, else None."""
    return child[len(PREDICTION_PREFIX):] if child.startswith(PREDICTION_PREFIX) else None


def parse_label_set(child: str) -> tuple[str, int] | None:
    """``(name, version)`` of a ``labels/`` child that is a label set version, else None.
    Label set names never start with ``prediction-`` (refused when stored), so the two
    kinds cannot collide; the version is the last ``-v<N>``, so ``a-v2-v1`` is ``a-v2`` v1."""
    if parse_prediction(child) is not None:
        return None
    mt = _LABEL_SET.match(child)
    return (mt.group("name"), int(mt.group("version"))) if mt else None


def label_image_names(uri: str) -> list[str]:
    """Every label image in ``labels/`` (label set versions and prediction runs, finished
    or not), after upgrading a store of the old layout (:mod:`mis.imagery.upgrade`)."""
    from mis.imagery.upgrade import ensure_current

    ensure_current(uri)
    return children(uri, LABELS)


def update_labels_index(uri: str) -> list[str]:
    """Rewrite ``labels/zarr.json``'s OME ``labels`` list: every label set version, every
    complete prediction run (a running one is not yet something to show), and the label
    images other tools listed there that still exist (kept, never MIS's to drop)."""
    present = children(uri, LABELS)
    group = open_group(uri, mode="r+").require_group(LABELS)
    ome = dict(group.attrs).get("ome")
    listed = ome.get("labels") if isinstance(ome, dict) else None
    listed = [n for n in listed if isinstance(n, str)] if isinstance(listed, list) else []
    names = []
    for child in present:
        if parse_prediction(child) is not None:
            attrs = dict(open_group(uri, f"{LABELS}/{child}").attrs).get("mis", {})
            if attrs.get("status") == "complete":
                names.append(child)
        elif parse_label_set(child) is not None or child in listed:
            names.append(child)
    group.attrs.update({"ome": {"version": OME_VERSION, "labels": names}})
    return names


# --------------------------------------------------------------------------- metadata


@dataclass(frozen=True)
class LabelClass:
    """What a label value means: a vocabulary concept and how to draw it."""

    value: int
    uri: str
    name: str
    colour: str  # RRGGBB
    symbol: str | None = None
    term: str | None = None  # as the user typed it (label sets)

    def rgba(self) -> list[int]:
        c = self.colour.lstrip("#")
        return [int(c[i : i + 2], 16) for i in (0, 2, 4)] + [255]


def label_image_ome(image_ome: dict[str, Any], name: str, classes: Sequence[LabelClass],
                    extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``"ome"`` attributes of a label image of an image whose ``"ome"`` attributes
    are ``image_ome``: the image's axes and per-level transformations (the label overlays
    it at every level), ``image-label`` colours and properties per class (``extra`` is
    added to every class's properties, e.g. the run and model hash of a prediction)."""
    ms = image_ome["multiscales"][0]
    datasets = [{"path": d["path"], "coordinateTransformations": d["coordinateTransformations"]}
                for d in ms["datasets"]]
    props = []
    for c in classes:
        p: dict[str, Any] = {"label-value": c.value, "class": c.uri, "name": c.name}
        if c.symbol:
            p["symbol"] = c.symbol
        if c.term:
            p["term"] = c.term
        props.append({**p, **(extra or {})})
    return {
        "version": OME_VERSION,
        "multiscales": [{
            "name": name, "axes": ms["axes"], "datasets": datasets, "type": "mode",
            "metadata": {"description": "2x2 mode of the labelled pixels (0 only where none is)",
                         "method": "mis.imagery.layout.mode2x"},
        }],
        "image-label": {
            "version": OME_VERSION,
            "colors": [{"label-value": c.value, "rgba": c.rgba()} for c in classes],
            "properties": props,
            "source": {"image": "../../"},
        },
    }


#: fallback display colours (Okabe-Ito + extras) for concepts without mis:colour
_PALETTE = ["E69F00", "56B4E9", "009E73", "F0E442", "0072B2", "D55E00", "CC79A7", "999999",
            "8C564B", "17BECF", "BCBD22", "7F7F7F"]


def fallback_colour(uri: str) -> str:
    """A stable display colour for a concept without one (the same URI, the same colour)."""
    return _PALETTE[int(hashlib.sha1(uri.encode()).hexdigest(), 16) % len(_PALETTE)]


def rgba_hex(rgba: Any) -> str | None:
    """``RRGGBB`` of an ``image-label`` ``rgba`` entry; None unless it is 3-4 integers 0..255
    (the metadata of a store is input like any other)."""
    if not isinstance(rgba, (list, tuple)) or len(rgba) not in (3, 4):
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in rgba):
        return None
    return "".join(f"{v:02X}" for v in rgba[:3])


def label_classes_of(image_label: dict[str, Any]) -> list[LabelClass]:
    """The classes an ``image-label`` dict describes (entries without an integer value and a
    class URI are skipped; a missing or invalid colour gets the fallback colour)."""
    colours = {c.get("label-value"): rgba_hex(c.get("rgba")) for c in image_label.get("colors") or []
               if isinstance(c, dict)}
    out = []
    for p in image_label.get("properties") or []:
        if not isinstance(p, dict):
            continue
        value, uri = p.get("label-value"), p.get("class")
        if isinstance(value, int) and isinstance(uri, str):
            symbol, term = p.get("symbol"), p.get("term")
            out.append(LabelClass(value, uri, str(p.get("name") or uri), colours.get(value) or fallback_colour(uri),
                                  symbol if isinstance(symbol, str) else None, term if isinstance(term, str) else None))
    return out


def classes_in_store(uri: str) -> dict[str, LabelClass]:
    """Concept URI -> how the store's label set versions describe it (name, symbol,
    colour): what a prediction of the same classes reuses when no vocabulary is at hand."""
    out: dict[str, LabelClass] = {}
    for child in children(uri, LABELS):
        if parse_label_set(child) is not None:
            label = dict(open_group(uri, f"{LABELS}/{child}").attrs).get("ome", {}).get("image-label", {})
            out.update({c.uri: c for c in label_classes_of(label if isinstance(label, dict) else {})})
    return out


def describe_classes(uris: Sequence[str], known: dict[str, LabelClass]) -> list[LabelClass]:
    """Label classes 1..K for class URIs (index i -> value i + 1), described by ``known``
    where it has them, else by the URI's last segment and a fallback colour."""
    out = []
    for i, u in enumerate(uris):
        k = known.get(u)
        if k is None:
            tail = re.split(r"[/#:]", u.rstrip("/#:"))[-1] or u
            k = LabelClass(0, u, tail, fallback_colour(u))
        out.append(LabelClass(i + 1, u, k.name, k.colour, k.symbol))
    return out


# --------------------------------------------------------------------------- pixels


def label_dtype(max_value: int) -> np.dtype:
    """The smallest unsigned type for label values up to ``max_value``."""
    if max_value <= 255:
        return np.dtype(np.uint8)
    if max_value <= 65535:
        return np.dtype(np.uint16)
    raise ValueError(f"label value {max_value} above 65535")


def create_label_levels(group: Any, image_uri: str, dtype: np.dtype) -> list[Any]:
    """Create the (1, y, x) arrays ``0..L-1`` of a label image in ``group``, one per level
    of the image at ``image_uri`` (same shapes and chunk grid), all 0."""
    from mis.imagery.omezarr import _compressor

    image = open_group(image_uri)
    out = []
    for k, ds in enumerate(image.attrs["ome"]["multiscales"][0]["datasets"]):
        img = image[ds["path"]]
        _, h, w = img.shape
        _, cy, cx = img.chunks
        out.append(group.create_array(str(k), shape=(1, h, w), chunks=(1, cy, cx), dtype=dtype, fill_value=0,
                                      compressors=[_compressor(dtype)], dimension_names=("c", "y", "x")))
    return out


def mode2x(tile: np.ndarray) -> np.ndarray:
    """2x2 mode of a (h, w) label tile -> (ceil(h/2), ceil(w/2)), over the non-zero values
    of each block (0 only where all four are 0; ties: the first in raster order; an odd
    last row/column is paired with itself). Thin scribbles so survive zooming out."""
    h, w = tile.shape
    if h % 2 or w % 2:
        tile = np.pad(tile, ((0, h % 2), (0, w % 2)), mode="edge")
    q = [tile[0::2, 0::2], tile[0::2, 1::2], tile[1::2, 0::2], tile[1::2, 1::2]]
    scores = np.stack([(a != 0) * (1 + sum((a == b).astype(np.int8) for j, b in enumerate(q) if j != i))
                       for i, a in enumerate(q)])
    return np.choose(np.argmax(scores, axis=0), q)


def build_pyramid(group: Any) -> None:
    """Fill levels ``1..L-1`` of a label image from level 0, one target chunk at a time
    (memory: 4 chunks), leaving all-0 chunks unwritten."""
    n = len(group.attrs["ome"]["multiscales"][0]["datasets"])
    for k in range(1, n):
        src, dst = group[str(k - 1)], group[str(k)]
        _, h, w = dst.shape
        _, cy, cx = dst.chunks
        for y0, x0, th, tw in tiles((h, w), (cy, cx)):
            y1, x1 = y0 + th, x0 + tw
            block = np.asarray(src[0, 2 * y0 : 2 * y1, 2 * x0 : 2 * x1])
            if block.any():
                dst[0, y0:y1, x0:x1] = mode2x(block)[: y1 - y0, : x1 - x0]


class ClassIndexArray:
    """A prediction's level-0 label array (1, y, x) seen as the (y, x) class-index array
    the ingestion reads: value ``v >= 1`` -> index ``v - 1``, 0 -> ``nodata``. Slicing
    reads only the chunks touched, like the zarr array itself."""

    def __init__(self, labels: Any, nodata: int, dtype: np.dtype) -> None:
        self._labels = labels
        self.nodata = int(nodata)
        self.dtype = np.dtype(dtype)
        self.shape = tuple(labels.shape[1:])
        self.chunks = tuple(labels.chunks[1:])
        self.ndim = 2

    @property
    def attrs(self) -> Any:
        """The label array's attributes (``classes``, ``run``)."""
        return self._labels.attrs

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        values = np.asarray(self._labels[(0, *key)])
        out = values.astype(self.dtype)
        np.subtract(out, 1, out=out, where=values > 0)
        out[values == 0] = self.nodata
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:, :]
        return out if dtype is None else out.astype(dtype)
