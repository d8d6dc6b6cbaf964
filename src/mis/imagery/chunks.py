"""Pixel windows <-> zarr chunks.

Tile iterators, one per meaning: :func:`tiles` -- plain windows of a tile grid;
:func:`tile_rows` -- the same grid row by row, each tile with its grid index (what a
row-by-row stream such as the grain labelling consumes); :func:`halo_tiles` -- windows
read with a halo of real neighbours (:func:`padded_window`) for filters that look
around a pixel.

A *window* is ``(y0, x0, height, width)`` in pixels of one pyramid level. ``chunks`` and
``shape`` are the array's chunk shape and shape, either ``(y, x)`` or ``(c, y, x)`` (only
the last two axes are spatial; a channel axis is covered whole).

Chunk keys are the zarr v3 *default* chunk-key encoding with ``/`` separator, relative to
the array: ``"c/<ic>/<iy>/<ix>"`` for a ``(c, y, x)`` array (``"c/<iy>/<ix>"`` for 2-D).
With the MIS layout (all channels in one chunk) ``ic`` is always 0. The key of the
array at path ``"0"`` in the store is therefore ``"0/" + key``.

Windows are clipped to the array: a window hanging over the right or bottom edge maps to
the edge chunks, and :func:`chunk_key_to_window` returns the clipped extent of edge chunks.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from itertools import groupby

__all__ = [
    "Window",
    "window_to_chunk_indices",
    "window_to_chunk_keys",
    "chunk_index_to_key",
    "chunk_key_to_index",
    "chunk_key_to_window",
    "chunk_index_to_window",
    "iter_chunk_windows",
    "tiles",
    "tile_rows",
    "padded_window",
    "halo_tiles",
]

Window = tuple[int, int, int, int]  # (y0, x0, height, width)


def _yx(seq: Sequence[int], what: str) -> tuple[int, int]:
    if len(seq) not in (2, 3):
        raise ValueError(f"{what} must be (y, x) or (c, y, x), got {tuple(seq)}")
    y, x = int(seq[-2]), int(seq[-1])
    if what == "chunks" and (y <= 0 or x <= 0):
        raise ValueError(f"chunk sizes must be positive, got {tuple(seq)}")
    if y < 0 or x < 0:
        raise ValueError(f"{what} must be non-negative, got {tuple(seq)}")
    return y, x


def _clip(window: Window, shape: Sequence[int]) -> tuple[int, int, int, int] | None:
    """Clip a window to the array; ``(y0, x0, y1, x1)`` or ``None`` when empty."""
    y0, x0, h, w = (int(v) for v in window)
    if h < 0 or w < 0:
        raise ValueError(f"window height/width must be non-negative, got {window}")
    if y0 < 0 or x0 < 0:
        raise ValueError(f"window origin must be non-negative, got {window}")
    H, W = _yx(shape, "shape")
    y1, x1 = min(H, y0 + h), min(W, x0 + w)
    if y0 >= y1 or x0 >= x1:
        return None
    return y0, x0, y1, x1


def _n_channel_chunks(chunks: Sequence[int], shape: Sequence[int]) -> int | None:
    """Number of chunks along the channel axis, or None for a 2-D array."""
    if len(chunks) != len(shape):
        raise ValueError(f"chunks {tuple(chunks)} and shape {tuple(shape)} differ in rank")
    if len(shape) == 2:
        return None
    return max(1, -(-int(shape[0]) // int(chunks[0])))


def window_to_chunk_indices(
    window: Window, chunks: Sequence[int], shape: Sequence[int]
) -> list[tuple[int, int]]:
    """``(iy, ix)`` chunk grid indices a window touches, row-major; ``[]`` when empty."""
    clipped = _clip(window, shape)
    if clipped is None:
        return []
    cy, cx = _yx(chunks, "chunks")
    y0, x0, y1, x1 = clipped
    return [
        (iy, ix)
        for iy in range(y0 // cy, (y1 - 1) // cy + 1)
        for ix in range(x0 // cx, (x1 - 1) // cx + 1)
    ]


def chunk_index_to_key(index: Sequence[int], chunks: Sequence[int], shape: Sequence[int],
                       c_index: int = 0) -> str:
    """zarr v3 default-encoding key (``"c/0/iy/ix"`` or ``"c/iy/ix"``) of a chunk."""
    iy, ix = (int(v) for v in index[-2:])
    ncc = _n_channel_chunks(chunks, shape)
    if ncc is None:
        return f"c/{iy}/{ix}"
    if not 0 <= c_index < ncc:
        raise ValueError(f"channel chunk index {c_index} outside 0..{ncc - 1}")
    return f"c/{c_index}/{iy}/{ix}"


def window_to_chunk_keys(
    window: Window, chunks: Sequence[int], shape: Sequence[int]
) -> list[str]:
    """zarr v3 chunk keys (relative to the array) of every chunk a window touches."""
    ncc = _n_channel_chunks(chunks, shape)
    idx = window_to_chunk_indices(window, chunks, shape)
    if ncc is None:
        return [f"c/{iy}/{ix}" for iy, ix in idx]
    return [f"c/{ic}/{iy}/{ix}" for ic in range(ncc) for iy, ix in idx]


def chunk_key_to_index(key: str) -> tuple[int, ...]:
    """Grid index of a key: ``"c/0/1/2"`` -> ``(0, 1, 2)``; also accepts keys prefixed by
    the array path (``"0/c/0/1/2"``) and zarr v2 style ``"0.1.2"``."""
    k = key.strip("/")
    if "/c/" in f"/{k}":
        k = f"/{k}".split("/c/", 1)[1]
        parts = k.split("/")
    elif k == "c":
        parts = []
    elif "." in k and "/" not in k:
        parts = k.split(".")
    else:
        parts = k.split("/")
    try:
        index = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"not a zarr chunk key: {key!r}") from None
    if len(index) < 2 or any(i < 0 for i in index):
        raise ValueError(f"not a 2-D or 3-D zarr chunk key: {key!r}")
    return index


def chunk_index_to_window(
    index: Sequence[int], chunks: Sequence[int], shape: Sequence[int]
) -> Window:
    """The pixel window ``(y0, x0, height, width)`` of chunk ``(.., iy, ix)``, clipped."""
    cy, cx = _yx(chunks, "chunks")
    H, W = _yx(shape, "shape")
    iy, ix = (int(v) for v in index[-2:])
    y0, x0 = iy * cy, ix * cx
    if not (0 <= y0 < H and 0 <= x0 < W):
        raise ValueError(f"chunk {tuple(index)} lies outside an array of shape {tuple(shape)}")
    return (y0, x0, min(cy, H - y0), min(cx, W - x0))


def chunk_key_to_window(key: str, chunks: Sequence[int], shape: Sequence[int]) -> Window:
    """The pixel window ``(y0, x0, height, width)`` covered by a chunk key, clipped."""
    index = chunk_key_to_index(key)
    if len(index) != len(shape):
        raise ValueError(f"chunk key {key!r} has rank {len(index)}, array has {len(shape)}")
    ncc = _n_channel_chunks(chunks, shape)
    if ncc is not None and index[0] >= ncc:
        raise ValueError(f"chunk key {key!r}: channel chunk {index[0]} outside 0..{ncc - 1}")
    return chunk_index_to_window(index, chunks, shape)


def iter_chunk_windows(
    chunks: Sequence[int], shape: Sequence[int]
) -> Iterator[tuple[tuple[int, int], Window]]:
    """Every ``((iy, ix), window)`` of the spatial chunk grid, row-major."""
    cy, cx = _yx(chunks, "chunks")
    H, W = _yx(shape, "shape")
    for iy in range(-(-H // cy)):
        for ix in range(-(-W // cx)):
            yield (iy, ix), chunk_index_to_window((iy, ix), chunks, shape)


def tiles(shape: Sequence[int], tile: Sequence[int]) -> Iterator[Window]:
    """Every window ``(y0, x0, height, width)`` of a grid of ``tile``-sized tiles over an
    array of ``shape`` (only the last two axes count), row-major, clipped at the edges."""
    for _, window in iter_chunk_windows(tile, shape):
        yield window


def tile_rows(shape: Sequence[int], tile: Sequence[int]
              ) -> Iterator[tuple[int, list[tuple[int, int, int, int, int, int]]]]:
    """Rows of tiles: ``(iy, [(iy, ix, y0, x0, h, w), ...])`` over an image of ``shape``
    (the chunk grid of :func:`iter_chunk_windows`, row by row)."""
    for iy, row in groupby(iter_chunk_windows(tile[-2:], shape[-2:]), key=lambda cell: cell[0][0]):
        yield iy, [(iy, ix, *window) for (_, ix), window in row]


def padded_window(shape: tuple[int, int], y0: int, y1: int, x0: int, x1: int, halo_px: int,
                  align: int = 1) -> tuple[int, int, int, int]:
    """``(ry0, ry1, rx0, rx1)``: the region to read for the window ``[y0, y1) x [x0, x1)``
    of an (H, W) image, with at least ``halo_px`` real neighbours on each side (clipped
    at the image border).

    With ``align`` > 1 (CNN features, ``align`` = the network's total stride) the region
    starts on a multiple of ``align`` (so the pooling grids line up with the whole
    image's) and its size is congruent to the image's modulo ``align`` (TensorFlow
    "same" padding of the strided convolutions depends on the input size's parity at
    every stride; equal parities give the whole image's padding, hence its numbers)."""
    h, w = shape
    hal = int(math.ceil(halo_px / align) * align)
    ry0, rx0 = max(0, (y0 - hal) // align * align), max(0, (x0 - hal) // align * align)
    ry1, rx1 = min(h, y1 + hal), min(w, x1 + hal)
    if align > 1:
        ry1 += (h - ry1) % align
        rx1 += (w - rx1) % align
    return ry0, ry1, rx0, rx1


def halo_tiles(
    shape: tuple[int, int], tile: int | tuple[int, int], halo_px: int, align: int = 1
) -> list[tuple[tuple[slice, slice], tuple[slice, slice], tuple[slice, slice]]]:
    """Tiles of an (H, W) image: for each, (read, write, inner) slices -- ``read`` the
    tile plus its :func:`padded_window`, ``write`` where its result goes, ``inner`` where
    that result sits inside the features of ``read``. Tile origins are multiples of the
    tile size."""
    h, w = shape
    th, tw = (tile, tile) if isinstance(tile, int) else tile
    out = []
    for y0 in range(0, h, th):
        for x0 in range(0, w, tw):
            y1, x1 = min(y0 + th, h), min(x0 + tw, w)
            ya, yb, xa, xb = padded_window(shape, y0, y1, x0, x1, halo_px, align)
            out.append(((slice(ya, yb), slice(xa, xb)), (slice(y0, y1), slice(x0, x1)),
                        (slice(y0 - ya, y1 - ya), slice(x0 - xa, x1 - xa))))
    return out
