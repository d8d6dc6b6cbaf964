"""IIIF Image API 3.0 (and Presentation 3 manifests) over the MIS image pyramids.

Pure functions and a small reader class, testable without HTTP; the starlette routes are
in :mod:`mis.imagery.iiif_routes`.

Compliance: **level 1** of the Image API 3.0 (regionByPx, regionSquare, sizeByW, sizeByH,
sizeByWh, ``max``, rotation 0, quality ``default``, jpg, base-URI redirect, CORS, JSON-LD
media type) plus the ``extraFeatures`` regionByPct, sizeByPct, sizeByConfinedWh,
sizeUpscaling (only with ``^``, as 3.0 requires) and profileLinkHeader; ``extraQualities``
``color``/``gray``; ``extraFormats`` png (lossless) and webp when Pillow has it.

Error statuses (the body is a one-line plain-text message):

* 400 -- malformed or impossible request: bad region/size/rotation syntax, a region outside
  the image or of zero size, scaling up without ``^``, a size beyond ``maxWidth``/
  ``maxHeight``/``maxArea``, an unknown quality or format, a bad band selection;
* 404 -- no image with that identifier;
* 501 -- a well-formed rotation other than 0 (or mirroring): valid IIIF, not implemented.

**Which pyramid level serves a request**: the smallest level (largest scale factor 2^k)
whose pixel window covering the requested region is at least as large as the requested
output size in both directions (:func:`plan_read`). Only that level's chunks that the
window touches are read (``read_region``); the window is then resampled (Pillow, with the
exact fractional region as the source box) unless it already has the output size, which
is the case for every tile a viewer asks for from ``info.json``'s ``tiles`` and for every
entry of ``sizes``. Such tiles are the stored level pixels unchanged (lossless with png).

**Bands -> display** (multispectral stacks, EDS maps): the displayed bands are chosen with
``bands``: a comma-separated list of 1-based band numbers (GDAL convention) or band names,
one band (greyscale) or three (red, green, blue), e.g. ``bands=4,3,2`` (false colour). It
is given as a query parameter (``.../default.jpg?bands=4,3,2``, ``info.json?bands=4,3,2``)
or inside the identifier (``/iiif/3/12;bands=4,3,2/...``); the ``id`` of an
``info.json`` asked for with a band selection carries the identifier form, so viewers that
build tile URLs from the ``id`` keep the selection. Default: 1 band -> greyscale,
2 bands -> the first band in greyscale, 3 or more -> the first three as red, green, blue
(an RGBA image shows RGB).

**Bit depth**: 8-bit unsigned images are shown unchanged. Every other type (uint16, int,
float) is mapped linearly to 0..255 by a **percentile stretch per band**: the 0.5th and
99.5th percentiles of that band over the image's coarsest pyramid level (the whole image
in at most 512 x 512 mean-downsampled pixels; one chunk read), computed on the first
request and kept for the life of the reader. The same stretch is applied to every level
and tile, so tiles never show seams. NaN maps to 0.
"""

from __future__ import annotations

import io
import math
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mis.catalogue.ids import positive_id

__all__ = [
    "IIIFError",
    "Limits",
    "DEFAULT_LIMITS",
    "TILE",
    "STRETCH_PERCENTILES",
    "Region",
    "ImageRequest",
    "Plan",
    "parse_identifier",
    "parse_region",
    "parse_size",
    "parse_rotation",
    "parse_quality_format",
    "parse_image_request",
    "parse_bands",
    "display_band_names",
    "default_bands",
    "plan_read",
    "level_shapes_for",
    "Pyramid",
    "Rendered",
    "info_json",
    "image_service_ref",
    "manifest_json",
    "collection_json",
    "lang",
    "nav_place",
    "Rights",
    "NO_RIGHTS",
    "supported_formats",
    "MEDIA_TYPES",
]

IMAGE_CONTEXT = "http://iiif.io/api/image/3/context.json"
PRESENTATION_CONTEXT = "http://iiif.io/api/presentation/3/context.json"
#: The navPlace extension's context (listed before the Presentation context, as it requires).
NAVPLACE_CONTEXT = "http://iiif.io/api/extension/navplace/context.json"
PROTOCOL = "http://iiif.io/api/image"
PROFILE = "level1"
PROFILE_URI = "http://iiif.io/api/image/3/level1.json"
TILE = 512
#: Percentiles (low, high) of the per-band linear stretch of non-8-bit images.
STRETCH_PERCENTILES = (0.5, 99.5)
EXTRA_FEATURES = [
    "regionByPct",
    "sizeByPct",
    "sizeByConfinedWh",
    "sizeUpscaling",
    "profileLinkHeader",
]
MEDIA_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
_PIL_FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}
JPEG_QUALITY = 90
_KNOWN_QUALITIES = {"default", "color", "gray", "bitonal"}


class IIIFError(Exception):
    """A request the service refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _bad(message: str) -> IIIFError:
    return IIIFError(400, message)


@dataclass(frozen=True)
class Limits:
    """Largest output image (``maxWidth``/``maxHeight``/``maxArea`` of ``info.json``)."""

    max_width: int = 8192
    max_height: int = 8192
    max_area: int = 4096 * 4096
    #: Largest factor a ``^`` size may scale a region up by: upscaling adds no detail,
    #: only memory (16 renders of ``^max`` on a 320 px image took 2.6 GB without it).
    max_upscale: float = 4.0


DEFAULT_LIMITS = Limits()


def supported_formats() -> list[str]:
    """Output formats: jpg and png always, webp if this Pillow was built with it."""
    from PIL import features

    out = ["jpg", "png"]
    if features.check("webp"):
        out.append("webp")
    return out


# ------------------------------------------------------------------------------ parsing

#: Numbers of a request: ASCII digits only (``\d`` would take Arabic-Indic and other
#: digits), at most 9 of them (more only overflow or hit Python's int-conversion limit:
#: no image is a billion pixels wide).
_INT = re.compile(r"[0-9]{1,9}")
_NUM = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})?|\.[0-9]{1,9}")
_ID = re.compile(r"(?P<id>[^;]+)(;bands=(?P<bands>[^;]*))?")


def parse_identifier(identifier: str) -> tuple[int, str | None]:
    """``"12"`` -> ``(12, None)``; ``"12;bands=4,3,2"`` -> ``(12, "4,3,2")``.

    Anything that is not a positive integer id is unknown: :class:`IIIFError` 404.
    """
    m = _ID.fullmatch(identifier)
    if not m or positive_id(m["id"]) is None:
        raise IIIFError(404, f"no image with identifier {identifier!r} (identifiers are "
                             "image ids, optionally followed by ';bands=...')")
    return int(m["id"]), m["bands"]


@dataclass(frozen=True)
class Region:
    """A region in level-0 pixels, already clipped to the image."""

    x: int
    y: int
    w: int
    h: int


def parse_region(text: str, width: int, height: int) -> Region:
    """IIIF region: ``full``, ``square``, ``x,y,w,h`` or ``pct:x,y,w,h`` -> clipped Region."""
    if text == "full":
        return Region(0, 0, width, height)
    if text == "square":
        s = min(width, height)
        return Region((width - s) // 2, (height - s) // 2, s, s)
    if text.startswith("pct:"):
        parts = text[4:].split(",")
        if len(parts) != 4 or not all(_NUM.fullmatch(p) for p in parts):
            raise _bad(f"region {text!r}: expected pct:x,y,w,h with non-negative numbers")
        px, py, pw, ph = (float(p) for p in parts)
        if pw <= 0 or ph <= 0:
            raise _bad(f"region {text!r}: width and height must be greater than 0")
        x, y = round(width * px / 100), round(height * py / 100)
        x1, y1 = round(width * (px + pw) / 100), round(height * (py + ph) / 100)
        x1, y1 = min(width, max(x1, x + 1)), min(height, max(y1, y + 1))
    else:
        parts = text.split(",")
        if len(parts) != 4 or not all(_INT.fullmatch(p) for p in parts):
            raise _bad(f"region {text!r}: expected full, square, x,y,w,h (non-negative "
                       "integers) or pct:x,y,w,h")
        x, y, w, h = (int(p) for p in parts)
        if w == 0 or h == 0:
            raise _bad(f"region {text!r}: width and height must be greater than 0")
        x1, y1 = min(width, x + w), min(height, y + h)
    if x >= width or y >= height:
        raise _bad(f"region {text!r} lies outside the image ({width} x {height} px)")
    return Region(x, y, x1 - x, y1 - y)


def parse_size(text: str, region_w: int, region_h: int, limits: Limits = DEFAULT_LIMITS
               ) -> tuple[int, int]:
    """IIIF size (``max``, ``w,``, ``,h``, ``w,h``, ``!w,h``, ``pct:n``, each optionally
    prefixed by ``^``) for a region of ``region_w x region_h`` -> output ``(w, h)``.

    Without ``^`` a size larger than the region is refused (400), as Image API 3.0 requires.
    """
    up = text.startswith("^")
    body = text[1:] if up else text
    rw, rh = region_w, region_h
    fits = min(limits.max_width / rw, limits.max_height / rh,
               math.sqrt(limits.max_area / (rw * rh)), max(1.0, limits.max_upscale))
    if body == "max":
        scale = fits if up else min(1.0, fits)
        w, h = max(1, math.floor(rw * scale)), max(1, math.floor(rh * scale))
        return w, h
    if body.startswith("pct:"):
        n = body[4:]
        if not _NUM.fullmatch(n):
            raise _bad(f"size {text!r}: expected pct:n with a non-negative number n")
        p = float(n)
        if p <= 0:
            raise _bad(f"size {text!r}: the percentage must be greater than 0")
        if p > 100 and not up:
            raise _bad(f"size {text!r}: more than 100 % needs the ^ prefix (^pct:{n})")
        w, h = round(rw * p / 100), round(rh * p / 100)
    elif body.startswith("!"):
        parts = body[1:].split(",")
        if len(parts) != 2 or not all(_INT.fullmatch(v) for v in parts):
            raise _bad(f"size {text!r}: expected !w,h with positive integers")
        bw, bh = int(parts[0]), int(parts[1])
        if bw == 0 or bh == 0:
            raise _bad(f"size {text!r}: width and height must be greater than 0")
        scale = min(bw / rw, bh / rh)
        if not up:
            scale = min(scale, 1.0)
        w, h = min(bw, round(rw * scale)), min(bh, round(rh * scale))
    else:
        parts = body.split(",")
        if len(parts) != 2 or not all(_INT.fullmatch(v) or v == "" for v in parts) \
                or parts == ["", ""]:
            raise _bad(f"size {text!r}: expected max, w,  ,h  w,h  !w,h or pct:n "
                       "(optionally prefixed by ^)")
        sw, sh = parts
        if sw and sh:
            w, h = int(sw), int(sh)
        elif sw:
            w = int(sw)
            h = round(rh * w / rw)
        else:
            h = int(sh)
            w = round(rw * h / rh)
        if (sw and int(sw) == 0) or (sh and int(sh) == 0):
            raise _bad(f"size {text!r}: width and height must be greater than 0")
        if not up and (w > rw or h > rh):
            raise _bad(f"size {text!r} is larger than the region ({rw} x {rh} px); "
                       f"scaling up needs the ^ prefix (^{body})")
    if w < 1 or h < 1:
        raise _bad(f"size {text!r} gives an empty image for a region of {rw} x {rh} px")
    if w > limits.max_width or h > limits.max_height or w * h > limits.max_area:
        raise _bad(f"size {text!r} gives {w} x {h} px, more than this service returns "
                   f"(maxWidth {limits.max_width}, maxHeight {limits.max_height}, "
                   f"maxArea {limits.max_area})")
    if up and max(w / rw, h / rh) > max(1.0, limits.max_upscale):
        raise _bad(f"size {text!r} scales the region ({rw} x {rh} px) up more than "
                   f"{limits.max_upscale:g} times, the most this service does")
    return w, h


def parse_rotation(text: str) -> float:
    """IIIF rotation; only ``0`` is implemented (other valid rotations: 501)."""
    mirror = text.startswith("!")
    body = text[1:] if mirror else text
    if not _NUM.fullmatch(body) or float(body) > 360:
        raise _bad(f"rotation {text!r}: expected a number of degrees 0..360, "
                   "optionally prefixed by !")
    deg = float(body)
    if mirror or deg not in (0.0, 360.0):
        raise IIIFError(501, f"rotation {text!r} is not implemented: this service "
                             "supports rotation 0 only (IIIF level 1)")
    return 0.0


def parse_quality_format(text: str, formats: Sequence[str] | None = None) -> tuple[str, str]:
    """``"default.jpg"`` -> ``("default", "jpg")``; unknown quality or format -> 400."""
    quality, dot, fmt = text.rpartition(".")
    if not dot or not quality or not fmt:
        raise _bad(f"{text!r}: expected {{quality}}.{{format}}, e.g. default.jpg")
    if quality not in _KNOWN_QUALITIES:
        raise _bad(f"quality {quality!r}: expected default, color or gray")
    if quality == "bitonal":
        raise _bad("quality 'bitonal' is not supported (default, color, gray are)")
    formats = list(formats) if formats is not None else supported_formats()
    if fmt not in formats:
        raise _bad(f"format {fmt!r} is not supported; use one of {', '.join(formats)}")
    return quality, fmt


@dataclass(frozen=True)
class ImageRequest:
    region: Region
    width: int
    height: int
    quality: str
    format: str


def parse_image_request(region: str, size: str, rotation: str, quality_format: str,
                        width: int, height: int, limits: Limits = DEFAULT_LIMITS,
                        formats: Sequence[str] | None = None) -> ImageRequest:
    """All four path parameters of an image request, for an image of ``width x height``.

    Checked in the order of the URL (region, size, rotation, quality.format), except that
    the syntax of rotation/quality/format is checked before the image-dependent parts, so
    a malformed request is a 400 whatever the image.
    """
    parse_rotation(rotation)
    quality, fmt = parse_quality_format(quality_format, formats)
    reg = parse_region(region, width, height)
    w, h = parse_size(size, reg.w, reg.h, limits)
    return ImageRequest(reg, w, h, quality, fmt)


def default_bands(n_bands: int) -> tuple[int, ...]:
    """0-based band indices shown by default: grey for 1 or 2 bands, else the first 3."""
    if n_bands < 1:
        raise ValueError("an image has at least one band")
    return (0,) if n_bands < 3 else (0, 1, 2)


def display_band_names(names: Sequence[str], n_bands: int) -> list[str]:
    """The band names a ``bands`` selection may use: the catalogue's, else R, G, B for
    3 bands, else band1..bandN."""
    if len(names) == n_bands:
        return list(names)
    return ["R", "G", "B"] if n_bands == 3 else [f"band{i + 1}" for i in range(n_bands)]


def parse_bands(text: str | None, band_names: Sequence[str]) -> tuple[int, ...]:
    """A ``bands`` selection (1-based numbers or band names; 1 or 3 of them) -> 0-based
    indices. ``None``/empty -> :func:`default_bands`."""
    n = len(band_names)
    if text is None or text.strip() == "":
        return default_bands(n)
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (1, 3):
        raise _bad(f"bands={text!r}: give 1 band (greyscale) or 3 bands (red,green,blue)")
    out = []
    for p in parts:
        if _INT.fullmatch(p):
            i = int(p)
            if not 1 <= i <= n:
                raise _bad(f"bands={text!r}: band {i} does not exist; this image has bands "
                           f"1..{n} ({', '.join(band_names)})")
            out.append(i - 1)
        elif p in band_names:
            out.append(list(band_names).index(p))
        else:
            raise _bad(f"bands={text!r}: {p!r} is neither a band number 1..{n} nor a band "
                       f"name ({', '.join(band_names)})")
    return tuple(out)


# ------------------------------------------------------------------------------ planning


def level_shapes_for(height: int, width: int, n_levels: int) -> list[tuple[int, int]]:
    """``(h, w)`` of levels 0..n-1 of an MIS pyramid (halving, rounding up)."""
    shapes = [(int(height), int(width))]
    for _ in range(n_levels - 1):
        h, w = shapes[-1]
        shapes.append(((h + 1) // 2, (w + 1) // 2))
    return shapes


@dataclass(frozen=True)
class Plan:
    """How a request is served: read ``window`` (y0, x0, h, w) of pyramid ``level`` and
    resample its sub-box ``box`` (left, top, right, bottom; window pixels) to ``out``
    (w, h); ``resample`` is False when the window already is the output."""

    level: int
    window: tuple[int, int, int, int]
    box: tuple[float, float, float, float]
    out: tuple[int, int]
    resample: bool


def plan_read(region: Region, out_w: int, out_h: int,
              level_shapes: Sequence[tuple[int, int]]) -> Plan:
    """Choose the smallest pyramid level whose window over ``region`` has at least
    ``out_w x out_h`` pixels, and the window to read there."""
    H, W = level_shapes[0]
    for k in range(len(level_shapes) - 1, -1, -1):
        f = 1 << k
        lh, lw = level_shapes[k]
        x0, y0 = region.x // f, region.y // f
        x1 = min(lw, -(-(region.x + region.w) // f))
        y1 = min(lh, -(-(region.y + region.h) // f))
        if (x1 - x0 >= out_w and y1 - y0 >= out_h) or k == 0:
            break
    # exact region in this level's pixels; a region reaching the image's right/bottom edge
    # maps to the level's last (edge-replicated) pixel
    right = (x1 - x0) if region.x + region.w >= W else (region.x + region.w) / f - x0
    bottom = (y1 - y0) if region.y + region.h >= H else (region.y + region.h) / f - y0
    box = (region.x / f - x0, region.y / f - y0, right, bottom)
    exact = (x1 - x0, y1 - y0) == (out_w, out_h) and box == (0, 0, x1 - x0, y1 - y0)
    return Plan(k, (y0, x0, y1 - y0, x1 - x0), box, (out_w, out_h), not exact)


# ------------------------------------------------------------------------------ rendering


def encode(img: Any, fmt: str) -> bytes:
    """Encode a Pillow image: JPEG quality 90; PNG with libpng's fast settings (zlib level
    1, RLE strategy, SUB filter: ~2x faster than Pillow's PNG at a similar size); WebP
    quality 90."""
    if fmt == "png":
        import imagecodecs

        return bytes(imagecodecs.png_encode(np.asarray(img), level=1, strategy=3, filter=16))
    buf = io.BytesIO()
    img.save(buf, _PIL_FORMATS[fmt], quality=JPEG_QUALITY)
    return buf.getvalue()


@dataclass
class Rendered:
    body: bytes
    media_type: str
    plan: Plan


@dataclass
class Pyramid:
    """The levels (``zarr.Array``s, ``(c, y, x)``, level 0 first) of one image, with the
    per-band display stretch. Thread-safe for reading."""

    levels: Sequence[Any]
    band_names: Sequence[str] = ()
    _stretch: dict[int, tuple[float, float]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.band_names = display_band_names(self.band_names, int(self.levels[0].shape[0]))

    @classmethod
    def open(cls, uri: str, n_levels: int | None = None,
             band_names: Sequence[str] = ()) -> Pyramid:
        """Open the levels of the image store at ``uri`` (read-only)."""
        from mis.imagery.omezarr import open_level, read_metadata

        if n_levels is None:
            n_levels = len(read_metadata(uri)["ome"]["multiscales"][0]["datasets"])
        return cls([open_level(uri, k) for k in range(n_levels)], band_names)

    @property
    def shapes(self) -> list[tuple[int, int]]:
        return [(int(a.shape[1]), int(a.shape[2])) for a in self.levels]

    @property
    def width(self) -> int:
        return int(self.levels[0].shape[2])

    @property
    def height(self) -> int:
        return int(self.levels[0].shape[1])

    @property
    def n_bands(self) -> int:
        return int(self.levels[0].shape[0])

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.levels[0].dtype)

    def read(self, level: int, window: tuple[int, int, int, int],
             bands: Sequence[int]) -> np.ndarray:
        """``(len(bands), h, w)`` pixels of a window of one level (only its chunks)."""
        from mis.imagery.omezarr import read_region

        arr = self.levels[level]
        y0, x0, h, w = window
        if tuple(bands) == tuple(range(self.n_bands)):
            return read_region(arr, level, y0, x0, h, w)
        return np.asarray(arr.oindex[list(bands), y0:y0 + h, x0:x0 + w])

    def stretch(self, band: int) -> tuple[float, float]:
        """``(lo, hi)`` display range of a band (percentiles of the coarsest level)."""
        with self._lock:
            got = self._stretch.get(band)
        if got is not None:
            return got
        top = self.levels[-1]
        data = np.asarray(top.oindex[[band], :, :])[0].astype(np.float64)
        finite = data[np.isfinite(data)]
        if finite.size == 0:
            lo, hi = 0.0, 1.0
        else:
            lo, hi = (float(v) for v in np.percentile(finite, STRETCH_PERCENTILES))
            if not hi > lo:
                hi = lo + 1.0
        with self._lock:
            self._stretch[band] = (lo, hi)
        return lo, hi

    def to_uint8(self, data: np.ndarray, bands: Sequence[int]) -> np.ndarray:
        """8-bit display values of ``data`` (rows = ``bands``)."""
        if data.dtype == np.uint8:
            return data
        out = np.empty(data.shape, dtype=np.uint8)
        for i, b in enumerate(bands):
            lo, hi = self.stretch(b)
            v = (data[i].astype(np.float32) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
            np.nan_to_num(v, copy=False, nan=0.0)
            np.clip(v + 0.5, 0, 255, out=v)
            out[i] = v.astype(np.uint8)
        return out

    def render(self, req: ImageRequest, bands: Sequence[int] | None = None) -> Rendered:
        """Encode the requested image. ``bands``: 0-based, 1 or 3 (default: see module)."""
        from PIL import Image

        bands = tuple(bands) if bands is not None else default_bands(self.n_bands)
        if req.quality == "color" and len(bands) != 3:
            raise _bad("quality 'color' needs three displayed bands; this image shows one "
                       "(ask for bands=r,g,b or quality default/gray)")
        plan = plan_read(req.region, req.width, req.height, self.shapes)
        data = self.to_uint8(self.read(plan.level, plan.window, bands), bands)
        if len(bands) == 3:  # merging 3 planes is ~10x faster than a (c,y,x)->(y,x,c) copy
            img = Image.merge("RGB", [Image.fromarray(np.ascontiguousarray(p), "L")
                                      for p in data])
        else:
            img = Image.fromarray(np.ascontiguousarray(data[0]), "L")
        if plan.resample:
            img = img.resize(plan.out, Image.Resampling.BICUBIC, box=plan.box)
        if req.quality == "gray" and img.mode != "L":
            img = img.convert("L")
        return Rendered(encode(img, req.format), MEDIA_TYPES[req.format], plan)


# ------------------------------------------------------------------------------ documents


def info_json(service_id: str, width: int, height: int, n_levels: int, *,
              displayed_bands: int = 3, limits: Limits = DEFAULT_LIMITS,
              formats: Sequence[str] | None = None, tile: int = TILE,
              extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Image API 3.0 information document of one image (service ``service_id``)."""
    formats = list(formats) if formats is not None else supported_formats()
    shapes = level_shapes_for(height, width, n_levels)
    sizes = [
        {"width": w, "height": h}
        for h, w in reversed(shapes)
        if w <= limits.max_width and h <= limits.max_height and w * h <= limits.max_area
    ]
    doc: dict[str, Any] = {
        "@context": IMAGE_CONTEXT,
        "id": service_id,
        "type": "ImageService3",
        "protocol": PROTOCOL,
        "profile": PROFILE,
        "width": int(width),
        "height": int(height),
        "maxWidth": limits.max_width,
        "maxHeight": limits.max_height,
        "maxArea": limits.max_area,
        "sizes": sizes,
        "tiles": [{"width": tile, "height": tile,
                   "scaleFactors": [1 << k for k in range(n_levels)]}],
        "preferredFormats": ["jpg"],
        "extraFormats": [f for f in formats if f != "jpg"],
        "extraQualities": ["color", "gray"] if displayed_bands == 3 else ["gray"],
        "extraFeatures": list(EXTRA_FEATURES),
    }
    if extra:
        doc.update(extra)
    return doc


def image_service_ref(service_id: str) -> dict[str, Any]:
    """How a Presentation 3 resource points at an image service."""
    return {"id": service_id, "type": "ImageService3", "profile": PROFILE}


def lang(value: str, language: str = "none") -> dict[str, list[str]]:
    """A Presentation 3 language map of one value (``none``: not in a language, e.g. a name)."""
    return {language: [value]}


def _meta(label: str, value: str) -> dict[str, Any]:
    return {"label": lang(label, "en"), "value": lang(value)}


@dataclass(frozen=True)
class CanvasImage:
    """What a manifest needs of one image."""

    image_id: int
    name: str
    width: int
    height: int
    n_levels: int
    service_id: str
    pixel_size_um: float | None = None
    modality: str | None = None
    bands: Sequence[str] = ()
    displayed_bands: int = 3


@dataclass(frozen=True)
class Rights:
    """What a manifest says about its reuse: ``rights`` (a Creative Commons or
    RightsStatements.org URI) and the ``requiredStatement`` a viewer shows."""

    uri: str | None = None
    label: str = "Attribution"
    statement: str | None = None

    def apply(self, doc: dict[str, Any]) -> None:
        """Set ``rights`` and ``requiredStatement`` of a manifest or collection ``doc``."""
        if self.uri:
            # IIIF wants these URIs as their owners publish them: http, no query
            doc["rights"] = self.uri.replace("https://creativecommons.org/", "http://creativecommons.org/")
        if self.statement:
            doc["requiredStatement"] = {"label": lang(self.label, "en"), "value": lang(self.statement, "en")}


#: No reuse terms: the default of every function that takes ``rights``.
NO_RIGHTS = Rights()


def nav_place(feature_id: str, label: str, lon: float, lat: float, z: float | None = None) -> dict[str, Any]:
    """The navPlace of a resource at one point (a GeoJSON-LD FeatureCollection)."""
    coordinates = [lon, lat] + ([z] if z is not None else [])
    return {"id": f"{feature_id}/place", "type": "FeatureCollection", "features": [{
        "id": f"{feature_id}/place/1", "type": "Feature", "properties": {"label": lang(label, "en")},
        "geometry": {"type": "Point", "coordinates": coordinates}}]}


def _max_size(width: int, height: int, limits: Limits) -> tuple[int, int]:
    return parse_size("max", width, height, limits)


def manifest_json(manifest_id: str, label: str, images: Sequence[CanvasImage], *,
                  metadata: Sequence[tuple[str, str]] = (), summary: str | None = None,
                  limits: Limits = DEFAULT_LIMITS, viewer_url: str | None = None,
                  place: dict[str, Any] | None = None, see_also: Sequence[dict[str, Any]] = (),
                  part_of: Sequence[dict[str, Any]] = (), rights: Rights = NO_RIGHTS,
                  annotations: dict[int, str] | None = None) -> dict[str, Any]:
    """A Presentation API 3 manifest: one canvas per image, each painted by its image
    service (``full/max`` as the static body, the service for deep zoom); the first
    image's thumbnail is the manifest's. ``place`` (:func:`nav_place`) puts it on a map
    (navPlace extension), ``see_also`` and ``part_of`` link it to its record and its
    collections, ``rights`` says how it may be reused, ``annotations`` names the
    AnnotationPage of an image's canvas (image id -> its URL: the grains)."""
    if not images:
        raise ValueError("a IIIF manifest needs at least one canvas")
    base = manifest_id.rsplit("/", 1)[0]
    items = []
    for im in images:
        canvas_id = f"{base}/canvas/{im.image_id}"
        mw, mh = _max_size(im.width, im.height, limits)
        shapes = level_shapes_for(im.height, im.width, im.n_levels)
        th, tw = shapes[-1]
        md = [_meta("image id", str(im.image_id))]
        if im.modality:
            md.append(_meta("modality", im.modality))
        if im.pixel_size_um:
            md.append(_meta("pixel size", f"{im.pixel_size_um:g} µm"))
        if im.bands:
            md.append(_meta("bands", ", ".join(im.bands)))
        canvas_annotations = ({"annotations": [{"id": annotations[im.image_id], "type": "AnnotationPage"}]}
                              if annotations and im.image_id in annotations else {})
        items.append({
            **canvas_annotations,
            "id": canvas_id,
            "type": "Canvas",
            "label": lang(im.name),
            "width": im.width,
            "height": im.height,
            "metadata": md,
            "thumbnail": [{
                "id": f"{im.service_id}/full/{tw},{th}/0/default.jpg",
                "type": "Image", "format": "image/jpeg", "width": tw, "height": th,
                "service": [image_service_ref(im.service_id)],
            }],
            "items": [{
                "id": f"{canvas_id}/page",
                "type": "AnnotationPage",
                "items": [{
                    "id": f"{canvas_id}/page/image",
                    "type": "Annotation",
                    "motivation": "painting",
                    "target": canvas_id,
                    "body": {
                        "id": f"{im.service_id}/full/max/0/default.jpg",
                        "type": "Image",
                        "format": "image/jpeg",
                        "width": mw,
                        "height": mh,
                        "service": [image_service_ref(im.service_id)],
                    },
                }],
            }],
        })
    doc: dict[str, Any] = {
        "@context": [NAVPLACE_CONTEXT, PRESENTATION_CONTEXT] if place else PRESENTATION_CONTEXT,
        "id": manifest_id,
        "type": "Manifest",
        "label": lang(label),
        "metadata": [_meta(k, v) for k, v in metadata],
        "thumbnail": items[0]["thumbnail"],
        "items": items,
    }
    rights.apply(doc)
    if place:
        doc["navPlace"] = place
    if see_also:
        doc["seeAlso"] = list(see_also)
    if part_of:
        doc["partOf"] = list(part_of)
    if summary:
        doc["summary"] = lang(summary, "en")
    if viewer_url:
        doc["homepage"] = [{"id": viewer_url, "type": "Text", "label": lang(label),
                            "format": "text/html"}]
    return doc


def collection_json(collection_id: str, label: str, items: Sequence[dict[str, Any]], *,
                    summary: str | None = None, rights: Rights = NO_RIGHTS,
                    see_also: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """A Presentation API 3 collection of manifests or collections (``items``: each
    ``{"id", "type", "label"}``, with a ``thumbnail`` where there is one), in the given
    order."""
    doc: dict[str, Any] = {"@context": PRESENTATION_CONTEXT, "id": collection_id, "type": "Collection",
                           "label": lang(label), "items": list(items)}
    if summary:
        doc["summary"] = lang(summary, "en")
    rights.apply(doc)
    if see_also:
        doc["seeAlso"] = list(see_also)
    return doc
