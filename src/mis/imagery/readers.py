"""Source image readers: TIFF / BigTIFF / OME-TIFF, PNG, JPEG and multi-file band stacks.

Every reader is an :class:`ImageSource` that presents the image with axes ``(c, y, x)``
and reads *row ranges* on demand, so the importer can stream an image band by band:

* **TIFF, BigTIFF, OME-TIFF** (tiled or striped, any codec tifffile/imagecodecs decode):
  tifffile's zarr interface (``series.aszarr()``) reads only the tiles/strips a row range
  touches, so memory stays bounded by the band height, not the image size. Before any
  pixel is read, the tile/strip table is checked against the file size, so a truncated
  file is refused up front. Only a TIFF stored as one single strip has to be decoded whole.
* **PNG** (imagecodecs, 8/16-bit, grey/RGB/RGBA) and **JPEG** (Pillow, which -- unlike
  libjpeg-turbo through imagecodecs -- reports a truncated stream as an error) have no
  random access: they are decoded whole, so their header's size is checked against a
  budget (:data:`DECODE_BUDGET_BYTES`) before a pixel is decoded: a 2 MB PNG may declare
  50,000 x 50,000 px. Above it the file is refused; save such images as tiled TIFF.
* Other formats Pillow understands (BMP, GIF, WebP, ...) are decoded whole by Pillow,
  under the same budget (which stands in for Pillow's own bomb limit).
* A **band stack** (:class:`BandStack`): several files of equal height, width and dtype;
  their channels are concatenated in the order given (several greyscale files = bands).

Any unreadable, truncated or corrupted input raises :class:`ImageReadError`, which names
the file and says what is wrong.
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "ImageReadError",
    "ImageSource",
    "TiffSource",
    "DecodedSource",
    "BandStack",
    "detect_format",
    "open_source",
    "read_image",
]

# Axes tifffile uses for channel-like dimensions (C channel, S samples, E lambda).
_CHANNEL_AXES = "CSE"
_PIL_LOCK = threading.Lock()


class ImageReadError(ValueError):
    """A source image cannot be read: names the file and what is wrong with it."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass
class ImageSource:
    """An image seen as ``(c, y, x)`` that can be read by row ranges.

    Subclasses implement :meth:`_read_rows`. ``block_rows`` is the natural read
    granularity (tile or strip height) so callers can align their bands to it.
    ``channel_names``, ``wavelengths_nm`` and ``pixel_size_um`` carry what the file itself
    says (``None`` where it says nothing).
    """

    paths: tuple[Path, ...]
    shape: tuple[int, int, int]
    dtype: np.dtype
    block_rows: int
    format: str
    channel_names: list[str | None] = field(default_factory=list)
    wavelengths_nm: list[float | None] = field(default_factory=list)
    pixel_size_um: float | None = None

    @property
    def nbytes(self) -> int:
        c, h, w = self.shape
        return c * h * w * self.dtype.itemsize

    def read_rows(self, y0: int, y1: int) -> np.ndarray:
        """Rows ``y0 <= y < y1`` of every channel, as a ``(c, y1 - y0, x)`` array."""
        h = self.shape[1]
        if not 0 <= y0 < y1 <= h:
            raise IndexError(f"row range {y0}:{y1} outside image height {h}")
        return self._read_rows(y0, y1)

    def read_region(self, y0: int, x0: int, height: int, width: int) -> np.ndarray:
        """A ``(c, height, width)`` window (clipped to the image)."""
        _, h, w = self.shape
        y1, x1 = min(h, y0 + height), min(w, x0 + width)
        return self.read_rows(y0, y1)[:, :, x0:x1]

    def iter_bands(self, band_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(y0, band)`` for consecutive bands of ``band_rows`` rows (last shorter).

        Reads in blocks that are a multiple of both ``band_rows`` and the source's own
        tile/strip height, so no tile is decoded twice.
        """
        h = self.shape[1]
        block = band_rows * max(1, -(-self.block_rows // band_rows))
        for b0 in range(0, h, block):
            b1 = min(h, b0 + block)
            data = self.read_rows(b0, b1)
            for y0 in range(b0, b1, band_rows):
                yield y0, data[:, y0 - b0 : min(b1, y0 + band_rows) - b0]
            del data

    def _read_rows(self, y0: int, y1: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------
# format detection


def detect_format(path: str | Path) -> str:
    """``"tiff"``, ``"png"``, ``"jpeg"`` or ``"other"`` from the file's magic bytes."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            head = fh.read(16)
    except FileNotFoundError:
        raise ImageReadError(p, "no such file") from None
    except IsADirectoryError:
        raise ImageReadError(p, "is a directory, not an image file") from None
    except OSError as exc:
        raise ImageReadError(p, f"cannot open: {exc}") from exc
    if not head:
        raise ImageReadError(p, "file is empty (0 bytes)")
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    return "other"


# --------------------------------------------------------------------------------------
# TIFF


def _tiff_header_problem(p: Path) -> str | None:
    """Explain a TIFF whose header or first directory is cut off, else None."""
    import struct

    size = p.stat().st_size
    with open(p, "rb") as fh:
        head = fh.read(16)
    bo = "<" if head[:2] == b"II" else ">"
    big = len(head) >= 4 and struct.unpack(bo + "H", head[2:4])[0] == 43
    need = 16 if big else 8
    if size < need:
        return f"file is truncated: {size} bytes, shorter than a TIFF header ({need} bytes)"
    offset = struct.unpack(bo + ("Q" if big else "I"), head[8:16] if big else head[4:8])[0]
    if offset >= size:
        return (f"file is truncated: its first image directory (IFD) is at byte {offset}, "
                f"beyond the end of the file ({size} bytes)")
    return None


class TiffSource(ImageSource):
    """TIFF / BigTIFF / OME-TIFF, read region-wise through tifffile's zarr interface."""

    def __init__(self, path: str | Path, *, series: int = 0):
        import tifffile
        import zarr

        p = Path(path)
        try:
            tf = tifffile.TiffFile(p)
        except Exception as exc:  # TiffFileError, struct.error, ValueError, ...
            hint = _tiff_header_problem(p)
            raise ImageReadError(p, hint or f"not a readable TIFF: {exc}") from exc
        self._tf = tf
        try:
            if not tf.series or not len(tf.pages):
                raise ImageReadError(p, _tiff_header_problem(p) or "TIFF contains no image")
            if series >= len(tf.series):
                raise ImageReadError(p, f"TIFF has {len(tf.series)} series, not {series + 1}")
            s = tf.series[series]
            axes, shape = s.axes, tuple(int(n) for n in s.shape)
            if "Y" not in axes or "X" not in axes:
                raise ImageReadError(p, f"series axes {axes!r} have no Y and X axes")
            self._check_not_truncated(p, s)
            index: list[int | slice] = []
            kept: list[str] = []
            for ax, n in zip(axes, shape, strict=True):
                if ax in "YX" or ax in _CHANNEL_AXES:
                    index.append(slice(None))
                    kept.append(ax)
                elif n == 1:
                    index.append(0)
                else:
                    raise ImageReadError(
                        p,
                        f"has a {ax} axis of length {n} (axes {axes}, shape {shape}); only "
                        "2-D images with channels are supported -- export one plane",
                    )
            self._index = index
            self._yi = axes.index("Y")
            self._xi = axes.index("X")
            # transpose the kept axes to (channel axes..., Y, X)
            chan = [i for i, ax in enumerate(kept) if ax in _CHANNEL_AXES]
            self._perm = [*chan, kept.index("Y"), kept.index("X")]
            c = int(np.prod([shape[axes.index(kept[i])] for i in chan])) if chan else 1
            h, w = shape[axes.index("Y")], shape[axes.index("X")]
            try:
                self._z = zarr.open_array(s.aszarr(level=0), mode="r")
            except Exception as exc:
                raise ImageReadError(p, f"cannot map TIFF tiles/strips: {exc}") from exc
            block = int(self._z.chunks[self._yi])
            dtype = np.dtype(s.dtype)
            names, waves, psize = self._ome_metadata(tf, series, c)
        except BaseException:
            tf.close()
            raise
        super().__init__(
            paths=(p,),
            shape=(c, h, w),
            dtype=dtype,
            block_rows=block,
            format="ome-tiff" if tf.is_ome else ("bigtiff" if tf.is_bigtiff else "tiff"),
            channel_names=names,
            wavelengths_nm=waves,
            pixel_size_um=psize,
        )

    @staticmethod
    def _check_not_truncated(p: Path, s: object) -> None:
        """Refuse a file whose tile/strip table points past its end."""
        size = p.stat().st_size
        for k, page in enumerate(s.pages):  # type: ignore[attr-defined]
            if page is None:
                raise ImageReadError(p, f"page {k} of the image series is missing")
            offsets = np.asarray(page.dataoffsets, dtype=np.int64)
            counts = np.asarray(page.databytecounts, dtype=np.int64)
            present = counts > 0
            if present.any():
                ends = offsets[present] + counts[present]
                worst = int(ends.max())
                if worst > size:
                    n_bad = int((ends > size).sum())
                    raise ImageReadError(
                        p,
                        f"file is truncated: {n_bad} of {len(offsets)} tiles/strips of page "
                        f"{k} end beyond the end of the file (need {worst} bytes, file has "
                        f"{size})",
                    )

    @staticmethod
    def _ome_metadata(
        tf: object, series: int, c: int
    ) -> tuple[list[str | None], list[float | None], float | None]:
        names: list[str | None] = [None] * c
        waves: list[float | None] = [None] * c
        psize: float | None = None
        if not getattr(tf, "is_ome", False) or not getattr(tf, "ome_metadata", None):
            return names, waves, psize
        try:
            root = ET.fromstring(tf.ome_metadata)  # type: ignore[attr-defined]
        except ET.ParseError:
            return names, waves, psize
        ns = {"ome": root.tag.split("}")[0].strip("{")} if root.tag.startswith("{") else {}
        q = (lambda t: f"ome:{t}") if ns else (lambda t: t)
        images = root.findall(q("Image"), ns)
        if series >= len(images):
            return names, waves, psize
        pixels = images[series].find(q("Pixels"), ns)
        if pixels is None:
            return names, waves, psize
        factor = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3, "m": 1e6, "cm": 1e4}
        sx = pixels.get("PhysicalSizeX")
        unit = pixels.get("PhysicalSizeXUnit", "µm")
        if sx is not None and unit in factor:
            try:
                psize = float(sx) * factor[unit]
            except ValueError:
                psize = None
        chans = pixels.findall(q("Channel"), ns)
        if len(chans) == c:
            for i, ch in enumerate(chans):
                names[i] = ch.get("Name")
                wl = ch.get("EmissionWavelength")
                wunit = ch.get("EmissionWavelengthUnit", "nm")
                if wl is not None and wunit in ("nm", "µm", "um"):
                    try:
                        waves[i] = float(wl) * (1.0 if wunit == "nm" else 1e3)
                    except ValueError:
                        pass
        return names, waves, psize

    def _read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        index = list(self._index)
        index[self._yi] = slice(y0, y1)
        index[self._xi] = slice(x0, x1)
        try:
            data = np.asarray(self._z[tuple(index)])
        except Exception as exc:
            raise ImageReadError(
                self.paths[0],
                f"cannot decode rows {y0}-{y1 - 1} (corrupted or truncated data): "
                f"{type(exc).__name__}: {exc}",
            ) from exc
        # contiguous (c, y, x): zarr copies chunks out of it far faster than out of a
        # strided view of the interleaved (y, x, s) layout
        return np.ascontiguousarray(data.transpose(self._perm)).reshape(
            self.shape[0], y1 - y0, x1 - x0)

    def _read_rows(self, y0: int, y1: int) -> np.ndarray:
        return self._read(y0, y1, 0, self.shape[2])

    def read_region(self, y0: int, x0: int, height: int, width: int) -> np.ndarray:
        """A ``(c, height, width)`` window (clipped), decoding only the tiles it touches."""
        _, h, w = self.shape
        y1, x1 = min(h, y0 + height), min(w, x0 + width)
        if not (0 <= y0 < y1 and 0 <= x0 < x1):
            raise IndexError(f"window {(y0, x0, height, width)} outside image {h} x {w}")
        return self._read(y0, y1, x0, x1)

    def close(self) -> None:
        self._tf.close()


# --------------------------------------------------------------------------------------
# formats decoded whole (PNG, JPEG, others through Pillow)


class DecodedSource(ImageSource):
    """An image decoded whole into memory (PNG, JPEG, other Pillow formats)."""

    def __init__(self, path: Path, data: np.ndarray, fmt: str):
        if data.ndim == 2:
            data = data[np.newaxis]
        elif data.ndim == 3:
            data = np.ascontiguousarray(np.moveaxis(data, -1, 0))
        else:
            raise ImageReadError(path, f"unexpected decoded array shape {data.shape}")
        if data.dtype == bool:
            data = data.astype(np.uint8)
        self._data = data
        c, h, w = data.shape
        super().__init__(
            paths=(path,),
            shape=(int(c), int(h), int(w)),
            dtype=data.dtype,
            block_rows=int(h),
            format=fmt,
            channel_names=[None] * c,
            wavelengths_nm=[None] * c,
        )

    def _read_rows(self, y0: int, y1: int) -> np.ndarray:
        return self._data[:, y0:y1]

    def close(self) -> None:
        self._data = np.empty((0, 0, 0), self.dtype)


#: Most bytes a format without random access (PNG, JPEG, BMP ...) may decode to.
DECODE_BUDGET_BYTES = 2 * 1024**3


def check_decode_budget(p: Path, width: int, height: int, channels: int, bytes_per_sample: int,
                        budget: int | None = None) -> None:
    """ImageReadError if decoding ``p`` whole would take more than ``budget`` bytes."""
    budget = DECODE_BUDGET_BYTES if budget is None else budget
    need = int(width) * int(height) * int(channels) * int(bytes_per_sample)
    if need > budget:
        raise ImageReadError(p, f"declares {width} x {height} px x {channels} channel(s): decoding it whole would "
                                f"take {need / 1024**3:.1f} GiB, more than the {budget / 1024**3:.1f} GiB budget "
                                "for formats without random access; save it as a tiled TIFF")


#: PNG colour type -> channels once decoded (palette images become RGBA at most).
_PNG_CHANNELS = {0: 1, 2: 3, 3: 4, 4: 2, 6: 4}


def _decode_png(p: Path) -> np.ndarray:
    import imagecodecs

    data = p.read_bytes()
    if len(data) < 26 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ImageReadError(p, "corrupted or truncated PNG: no PNG header")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    check_decode_budget(p, width, height, _PNG_CHANNELS.get(data[25], 4), 2 if data[24] == 16 else 1)
    try:
        return imagecodecs.png_decode(data)
    except Exception as exc:
        raise ImageReadError(p, f"corrupted or truncated PNG: {exc}") from exc


def _decode_pillow(p: Path, fmt: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    with _PIL_LOCK:  # microscope images are legitimately larger than Pillow's bomb limit:
        old = Image.MAX_IMAGE_PIXELS  # ours (check_decode_budget, on the header) stands instead
        Image.MAX_IMAGE_PIXELS = None
        try:
            with Image.open(p) as im:
                sample = {"I;16": 2, "I;16B": 2, "I;16L": 2, "I": 4, "F": 4}.get(im.mode, 1)
                check_decode_budget(p, im.width, im.height, max(len(im.getbands()), 3 if im.mode == "P" else 1), sample)
                im.load()
                pixels: Image.Image = im
                if im.mode in ("P", "PA"):
                    pixels = im.convert("RGBA" if "transparency" in im.info else "RGB")
                elif im.mode == "CMYK":
                    pixels = im.convert("RGB")
                elif im.mode == "1":
                    pixels = im.convert("L")
                return np.asarray(pixels)
        except ImageReadError:
            raise
        except UnidentifiedImageError:
            raise ImageReadError(
                p, "not a recognised image format (expected TIFF, PNG, JPEG or another "
                "format Pillow reads)") from None
        except Exception as exc:
            what = "truncated or corrupted" if isinstance(exc, OSError) else "unreadable"
            raise ImageReadError(p, f"{what} {fmt.upper()}: {exc}") from exc
        finally:
            Image.MAX_IMAGE_PIXELS = old


# --------------------------------------------------------------------------------------
# band stacks


class BandStack(ImageSource):
    """Several sources of equal height/width/dtype whose channels are concatenated."""

    def __init__(self, sources: Sequence[ImageSource]):
        if not sources:
            raise ValueError("a band stack needs at least one source")
        first = sources[0]
        _, h, w = first.shape
        for s in sources[1:]:
            if s.shape[1:] != (h, w):
                raise ImageReadError(
                    s.paths[0],
                    f"band stack size mismatch: {s.shape[2]} x {s.shape[1]} px (width x "
                    f"height), but {first.paths[0].name} is {w} x {h} px",
                )
            if s.dtype != first.dtype:
                raise ImageReadError(
                    s.paths[0],
                    f"band stack dtype mismatch: {s.dtype}, but {first.paths[0].name} is "
                    f"{first.dtype}",
                )
        self._sources = list(sources)
        names: list[str | None] = []
        waves: list[float | None] = []
        for s in sources:
            if s.shape[0] == 1 and not s.channel_names[0]:
                names.append(s.paths[0].stem)
            else:
                names.extend(s.channel_names)
            waves.extend(s.wavelengths_nm)
        psizes = {s.pixel_size_um for s in sources if s.pixel_size_um is not None}
        super().__init__(
            paths=tuple(p for s in sources for p in s.paths),
            shape=(sum(s.shape[0] for s in sources), h, w),
            dtype=first.dtype,
            block_rows=max(s.block_rows for s in sources),
            format="stack(" + ",".join(s.format for s in sources) + ")",
            channel_names=names,
            wavelengths_nm=waves,
            pixel_size_um=psizes.pop() if len(psizes) == 1 else None,
        )

    def _read_rows(self, y0: int, y1: int) -> np.ndarray:
        out = np.empty((self.shape[0], y1 - y0, self.shape[2]), self.dtype)
        c = 0
        for s in self._sources:
            n = s.shape[0]
            out[c : c + n] = s.read_rows(y0, y1)
            c += n
        return out

    def close(self) -> None:
        for s in self._sources:
            s.close()


# --------------------------------------------------------------------------------------
# entry points


def _open_one(path: str | Path) -> ImageSource:
    p = Path(path)
    fmt = detect_format(p)
    if fmt == "tiff":
        return TiffSource(p)
    if fmt == "png":
        return DecodedSource(p, _decode_png(p), "png")
    if fmt == "jpeg":
        return DecodedSource(p, _decode_pillow(p, "jpeg"), "jpeg")
    return DecodedSource(p, _decode_pillow(p, "image"), "other")


def open_source(sources: str | Path | Sequence[str | Path]) -> ImageSource:
    """Open one image file, or several as a band stack, as an :class:`ImageSource`.

    Raises :class:`ImageReadError` naming the file for anything unreadable.
    """
    if isinstance(sources, (str, Path)):
        return _open_one(sources)
    paths = list(sources)
    if not paths:
        raise ValueError("no source image given")
    if len(paths) == 1:
        return _open_one(paths[0])
    opened: list[ImageSource] = []
    try:
        for p in paths:
            opened.append(_open_one(p))
        return BandStack(opened)
    except BaseException:
        for s in opened:
            s.close()
        raise


def read_image(sources: str | Path | Sequence[str | Path]) -> np.ndarray:
    """Read a whole (small) image as a ``(c, y, x)`` array. For tests and thumbnails."""
    with open_source(sources) as src:
        return np.array(src.read_rows(0, src.shape[1]))
