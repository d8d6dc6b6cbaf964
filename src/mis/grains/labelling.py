"""Connected components of a class map, chunk by chunk, identical to labelling it whole.

A *component* (a grain, or a particle for liberation) is a maximal set of pixels of the
same class value joined through their **4-neighbours** (edge neighbours; scipy/skimage
``connectivity=1``). Why 4 and not 8:

- a component's outline must be a valid OGC **Polygon** (the ``grain.outline`` column is
  ``geometry(Polygon)``). Two pixels that meet only at a corner share a single point, so
  an 8-connected component can be a "bow tie", which no valid Polygon describes (its
  exterior ring would touch itself, or it would have to be a MultiPolygon). The union of
  the pixel squares of a 4-connected set is always one valid Polygon (a hole may touch
  the shell or another hole at one vertex, which OGC allows);
- it is the usual digital-topology pairing (4-connected objects, 8-connected background):
  two grains of the same mineral meeting only at a pixel corner stay two grains, the
  conservative reading of a class map, where a single corner of contact is below what
  the segmentation resolves.

Values listed in ``ignore`` (background, pore/epoxy, unclassified) form no component
(label 0).

Chunked labelling (bounded memory, any image size)
--------------------------------------------------
The image is cut into tiles (the zarr chunks). Each tile is labelled on its own
(:func:`label_tile`, in parallel); a :class:`ComponentStream` then takes the tiles in
raster order and joins the tile components that touch across tile edges: two pixels
facing each other across an edge, with the same value, belong to the same component
(union-find, done as connected components of the small "touching" graph with
:func:`scipy.sparse.csgraph.connected_components`).
With 4-connectivity only edge neighbours matter; a component crossing a tile *corner*
is joined through the two tiles it passes by, or not at all, exactly as in a whole-image
labelling.

The stream keeps a *frontier*: the bottom row of the last tile pushed in every column,
and the right edge of the last tile. A component that touches no frontier pixel can
grow no further: it is *final* and handed out at once (with its statistics merged), so
memory holds the components still open on the frontier (and two strips), never the
image, nor even a row of tiles.

Per-component statistics are reduced while merging (sum, min, max, or, first) and ragged
lists (polygon pieces, tiles spanned, references) are concatenated; see
:class:`ComponentStream`.

Canonical numbering: every component is keyed by the linear index ``row * width + col``
of its first pixel in raster order (``first``). It does not depend on the tiling, and
ranking components by it gives the numbering of :func:`skimage.measure.label` on the
whole image; :func:`label_chunked` does that and is tested pixel for pixel against
:func:`label_image`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mis.imagery.chunks import tile_rows

__all__ = [
    "CONNECTIVITY",
    "Ragged",
    "TileComponents",
    "LocalLabels",
    "TileResult",
    "ComponentStream",
    "ignore_lut",
    "label_tile",
    "label_image",
    "label_chunked",
    "tile_components",
]

#: Neighbourhood of components: 1 = 4-neighbours (edges), as scipy/skimage count it.
CONNECTIVITY = 1


# --------------------------------------------------------------------------- ragged lists
@dataclass
class Ragged:
    """A list of lists as ``values`` + ``offsets`` (item i owns ``values[offsets[i]:offsets[i+1]]``)."""

    values: np.ndarray
    offsets: NDArray[np.int64]

    @classmethod
    def empty(cls, n: int, dtype: Any = np.int64) -> Ragged:
        return cls(np.empty(0, dtype=dtype), np.zeros(n + 1, dtype=np.int64))

    @classmethod
    def singletons(cls, values: np.ndarray) -> Ragged:
        return cls(values, np.arange(values.shape[0] + 1, dtype=np.int64))

    def __len__(self) -> int:
        return self.offsets.size - 1

    def lengths(self) -> NDArray[np.int64]:
        return np.diff(self.offsets)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i] : self.offsets[i + 1]]

    def take(self, idx: NDArray[np.integer]) -> Ragged:
        """The lists of items ``idx``, in that order."""
        idx = np.asarray(idx, dtype=np.int64)
        lens = self.lengths()[idx]
        offsets = np.zeros(idx.size + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        if offsets[-1] == 0:
            return Ragged(self.values[:0], offsets)
        starts = self.offsets[:-1][idx]
        pos = np.repeat(starts - offsets[:-1], lens) + np.arange(offsets[-1])
        return Ragged(self.values[pos], offsets)

    @staticmethod
    def concat(parts: Sequence[Ragged]) -> Ragged:
        if len(parts) == 1:
            return parts[0]
        values = np.concatenate([p.values for p in parts])
        lens = np.concatenate([p.lengths() for p in parts])
        offsets = np.zeros(lens.size + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        return Ragged(values, offsets)

    def group(self, group: NDArray[np.int64], n_groups: int, unique: bool = False) -> Ragged:
        """Concatenate the lists of items with the same ``group`` (stable), one per group.

        With ``unique`` (integer values only) each group's list is sorted and deduplicated.
        """
        lens = self.lengths()
        item_of_value = np.repeat(np.arange(lens.size), lens)
        g = group[item_of_value]
        if unique:
            order = np.lexsort((self.values, g))
            g, vals = g[order], self.values[order]
            keep = np.ones(g.size, dtype=bool)
            if g.size > 1:
                keep[1:] = (g[1:] != g[:-1]) | (vals[1:] != vals[:-1])
            g, vals = g[keep], vals[keep]
        else:
            order = np.argsort(g, kind="stable")
            g, vals = g[order], self.values[order]
        offsets = np.zeros(n_groups + 1, dtype=np.int64)
        np.cumsum(np.bincount(g, minlength=n_groups), out=offsets[1:])
        return Ragged(vals, offsets)


# --------------------------------------------------------------------------- one tile
def ignore_lut(ignore: Iterable[int], max_value: int) -> NDArray[np.int32]:
    """Lookup table value -> value + 1 (kept) or 0 (ignored), for values 0..max_value."""
    lut = np.arange(1, max_value + 2, dtype=np.int32)
    for v in ignore:
        if 0 <= int(v) <= max_value:
            lut[int(v)] = 0
    return lut


@dataclass
class LocalLabels:
    """Components of one tile: ``labels`` 1..n (0 = none), the class ``value`` of each
    component and the flat index (in the tile) of its first pixel in raster order."""

    labels: NDArray[np.int32]
    n: int
    value: NDArray[np.int32]
    first: NDArray[np.int64]


def label_tile(values: np.ndarray, lut: NDArray[np.int32], exclude: NDArray[np.bool_] | None = None) -> LocalLabels:
    """4-connected components of equal value in one tile (ignored values -> 0); pixels in
    ``exclude`` (the cut pixels of :mod:`mis.grains.cleaning`) belong to no component."""
    from skimage.measure import label

    from mis.grains.cleaning import check_values

    v = np.asarray(values)
    check_values(v, lut.size)
    mapped = lut[v]
    if exclude is not None:
        mapped = np.where(exclude, 0, mapped)
    labels = label(mapped, background=0, connectivity=CONNECTIVITY).astype(np.int32, copy=False)
    flat = labels.ravel()
    n = int(flat.max()) if flat.size else 0
    # skimage numbers components in raster order of their first pixel, so the running
    # maximum steps up by one exactly at each first pixel.
    acc = np.maximum.accumulate(flat)
    first = np.flatnonzero(np.diff(acc, prepend=0) > 0)
    if first.size != n or (n and not np.array_equal(flat[first], np.arange(1, n + 1))):
        _, first = np.unique(flat, return_index=True)  # pragma: no cover - other numbering
        first = first[1:] if flat[first[0]] == 0 else first
    value = (mapped.ravel()[first] - 1).astype(np.int32)
    return LocalLabels(labels, n, value, first.astype(np.int64))


@dataclass
class TileComponents:
    """What the merge needs from one tile: its place, edge strips and per-component stats.

    ``top``/``bottom`` (length w) and ``left``/``right`` (length h) are the local labels
    on the tile's edges (0 = no component). ``stats`` maps a name to an array with one
    row per component (first axis n); ``ragged`` maps a name to a :class:`Ragged` with one
    list per component.
    """

    iy: int
    ix: int
    y0: int
    x0: int
    h: int
    w: int
    n: int
    value: NDArray[np.int32]
    first: NDArray[np.int64]  # global linear index of the first pixel
    top: NDArray[np.int32]
    bottom: NDArray[np.int32]
    left: NDArray[np.int32]
    right: NDArray[np.int32]
    stats: dict[str, np.ndarray] = field(default_factory=dict)
    ragged: dict[str, Ragged] = field(default_factory=dict)


def tile_components(local: LocalLabels, iy: int, ix: int, y0: int, x0: int,
                    width: int) -> TileComponents:
    """A :class:`TileComponents` (no stats yet) from a labelled tile at ``(y0, x0)``."""
    lab = local.labels
    h, w = lab.shape
    fr, fc = np.divmod(local.first, w)
    first = (y0 + fr) * width + (x0 + fc)
    return TileComponents(
        iy=iy, ix=ix, y0=y0, x0=x0, h=h, w=w, n=local.n, value=local.value,
        first=first.astype(np.int64), top=lab[0].copy(), bottom=lab[-1].copy(),
        left=lab[:, 0].copy(), right=lab[:, -1].copy(),
    )


# --------------------------------------------------------------------------- merging
def _gather(table: NDArray[np.int64], idx: NDArray[np.int64]) -> NDArray[np.int64]:
    """``table[idx]`` where ``idx >= 0``, else -1 (also for an empty table)."""
    out = np.full(idx.shape, -1, dtype=np.int64)
    ok = idx >= 0
    out[ok] = table[idx[ok]]
    return out


#: How a statistic is merged: sum, min, max, or (booleans), first (equal in a component).
REDUCERS = ("sum", "min", "max", "or", "first")


def _reduce(kind: str, values: np.ndarray, group: NDArray[np.int64], n: int) -> np.ndarray:
    if kind == "sum":
        if values.ndim == 1 and values.dtype.kind == "f":
            return np.bincount(group, weights=values, minlength=n).astype(values.dtype, copy=False)
        out = np.zeros((n, *values.shape[1:]), dtype=values.dtype)
        np.add.at(out, group, values)
        return out
    if kind in ("min", "max"):
        if values.dtype.kind == "f":
            fill = np.inf if kind == "min" else -np.inf
        else:
            info = np.iinfo(values.dtype)
            fill = info.max if kind == "min" else info.min
        out = np.full((n, *values.shape[1:]), fill, dtype=values.dtype)
        (np.minimum if kind == "min" else np.maximum).at(out, group, values)
        return out
    if kind == "or":
        out = np.zeros((n, *values.shape[1:]), dtype=bool)
        np.logical_or.at(out, group, values)
        return out
    if kind == "first":
        out = np.zeros((n, *values.shape[1:]), dtype=values.dtype)
        out[group] = values
        return out
    raise ValueError(f"unknown reducer {kind!r}; use one of {REDUCERS}")


@dataclass
class Components:
    """A set of (merged) components: their value, key (first pixel), stats and lists.

    ``tiles`` lists the tiles ``iy * n_tiles_x + ix`` each component covers (sorted, unique).
    """

    value: NDArray[np.int32]
    first: NDArray[np.int64]
    stats: dict[str, np.ndarray]
    ragged: dict[str, Ragged]
    tiles: Ragged

    def __len__(self) -> int:
        return int(self.value.size)

    def take(self, idx: NDArray[np.integer]) -> Components:
        return Components(self.value[idx], self.first[idx],
                          {k: v[idx] for k, v in self.stats.items()},
                          {k: r.take(idx) for k, r in self.ragged.items()}, self.tiles.take(idx))


@dataclass
class TileResult:
    """The outcome of pushing one tile.

    ``final``: the components completed by this tile (they touch no open edge any more).
    ``final_of[j]`` is the index in ``final`` of the tile's local component ``j`` (1-based;
    index 0 unused) or -1 when its component is still open; ``open_of[j]`` is then its
    index among the open components (valid until the next push), so that callers can
    attach data to it (:meth:`ComponentStream.attach`).
    """

    final: Components
    final_of: NDArray[np.int64]
    open_of: NDArray[np.int64]


class ComponentStream:
    """Joins tile components into whole components; see the module docstring.

    Tiles are pushed one at a time in raster order (:meth:`push_tile`). The stream keeps
    the *frontier*: for every image column the open component (if any) at the bottom
    pixel of the last tile pushed in that column, and along the right edge of the last
    tile; a component is final as soon as it touches neither. Memory: the open
    components (those on the frontier) and two strips, never the image or a tile row.

    ``reducers`` maps each statistic the tiles carry to how it merges (:data:`REDUCERS`);
    ``ragged`` names the per-component lists to concatenate.
    """

    def __init__(self, shape: Sequence[int], tile: Sequence[int], reducers: dict[str, str],
                 ragged: Sequence[str] = ()) -> None:
        self.height, self.width = (int(v) for v in shape[-2:])
        self.th, self.tw = (int(v) for v in tile[-2:])
        if self.th <= 0 or self.tw <= 0:
            raise ValueError(f"tile sizes must be positive, got {tuple(tile)}")
        self.n_rows = -(-self.height // self.th)
        self.n_cols = -(-self.width // self.tw)
        for kind in reducers.values():
            if kind not in REDUCERS:
                raise ValueError(f"unknown reducer {kind!r}; use one of {REDUCERS}")
        self.reducers = dict(reducers)
        self.ragged_names = tuple(ragged)
        self.next_tile = 0
        self.open: Components | None = None
        self.frontier = np.full(self.width, -1, dtype=np.int64)  # open index per column
        self.right = np.full(self.th, -1, dtype=np.int64)  # open index along the last right edge
        self.pending_attach: dict[str, list[tuple[NDArray[np.int64], Ragged]]] = {}

    @property
    def n_open(self) -> int:
        return 0 if self.open is None else len(self.open)

    @property
    def done(self) -> bool:
        return self.next_tile >= self.n_rows * self.n_cols

    def attach(self, name: str, open_index: NDArray[np.int64], lists: Ragged) -> None:
        """Append ``lists[i]`` to ragged list ``name`` of open component ``open_index[i]``
        (indices as given by the last :class:`TileResult`)."""
        if name not in self.ragged_names:
            raise KeyError(f"{name!r} is not a ragged list of this stream")
        self.pending_attach.setdefault(name, []).append((np.asarray(open_index, np.int64), lists))

    def _apply_attach(self) -> None:
        if not self.pending_attach or self.open is None:
            self.pending_attach.clear()
            return
        n = len(self.open)
        for name, items in self.pending_attach.items():
            base = self.open.ragged[name]
            extra = Ragged.concat([lists for _, lists in items])
            owners = np.concatenate([idx for idx, _ in items])
            both = Ragged.concat([base, extra])
            group = np.concatenate([np.arange(n), owners])
            self.open.ragged[name] = both.group(group, n)
        self.pending_attach.clear()

    def push_tile(self, tile: TileComponents) -> TileResult:
        """Merge the next tile (raster order) with the open components."""
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        iy, ix = divmod(self.next_tile, self.n_cols)
        if self.done:
            raise ValueError("every tile has been pushed already")
        if (tile.iy, tile.ix) != (iy, ix):
            raise ValueError(f"tiles must come in raster order: expected tile ({iy}, {ix}), got ({tile.iy}, {tile.ix})")
        self._apply_attach()
        n_open = self.n_open
        n_nodes = n_open + tile.n
        x0, w, h = tile.x0, tile.w, tile.h
        value = np.concatenate([self.open.value if self.open is not None else np.empty(0, np.int32),
                                tile.value]).astype(np.int32)

        def nodes(local: np.ndarray) -> NDArray[np.int64]:
            out = local.astype(np.int64) + (n_open - 1)
            out[local == 0] = -1
            return out

        a_list, b_list = [], []
        for open_side, local_side in ((self.frontier[x0 : x0 + w], tile.top),
                                      (self.right[:h] if ix > 0 else np.full(h, -1, np.int64), tile.left)):
            loc = nodes(local_side)
            ok = (open_side >= 0) & (loc >= 0)
            ok[ok] = value[open_side[ok]] == value[loc[ok]]
            a_list.append(open_side[ok])
            b_list.append(loc[ok])
        a = np.concatenate(a_list)
        b = np.concatenate(b_list)
        if a.size:
            graph = coo_matrix((np.ones(a.size, dtype=np.int8), (a, b)), shape=(n_nodes, n_nodes))
            n_groups, group = connected_components(graph, directed=False)
            group = group.astype(np.int64)
        else:
            n_groups, group = n_nodes, np.arange(n_nodes, dtype=np.int64)
        merged = self._merge(tile, group, n_groups, value)

        # The new frontier, in group ids: this tile's bottom row (unless it is the last
        # tile row) replaces its columns; its right edge (unless last column) the right strip.
        frontier = _gather(group, self.frontier)
        frontier[x0 : x0 + w] = _gather(group, nodes(tile.bottom)) if iy < self.n_rows - 1 else -1
        right = _gather(group, nodes(tile.right)) if ix < self.n_cols - 1 else np.full(h, -1, np.int64)
        is_open = np.zeros(n_groups, dtype=bool)
        is_open[frontier[frontier >= 0]] = True
        is_open[right[right >= 0]] = True
        open_ids = np.flatnonzero(is_open)
        final_ids = np.flatnonzero(~is_open)
        open_index = np.full(n_groups, -1, dtype=np.int64)
        open_index[open_ids] = np.arange(open_ids.size)
        final_index = np.full(n_groups, -1, dtype=np.int64)
        final_index[final_ids] = np.arange(final_ids.size)

        self.open = merged.take(open_ids) if open_ids.size else None
        self.frontier = _gather(open_index, frontier)
        self.right = np.full(self.th, -1, dtype=np.int64)
        self.right[:h] = _gather(open_index, right)
        self.next_tile += 1

        g = group[n_open:]
        fo = np.full(tile.n + 1, -1, dtype=np.int64)
        oo = np.full(tile.n + 1, -1, dtype=np.int64)
        fo[1:] = final_index[g]
        oo[1:] = open_index[g]
        return TileResult(merged.take(final_ids), fo, oo)

    def _merge(self, tile: TileComponents, group: NDArray[np.int64], n_groups: int,
               value: NDArray[np.int32]) -> Components:
        opened = self.open
        first = tile.first if opened is None else np.concatenate([opened.first, tile.first])
        stats = {}
        for name, kind in self.reducers.items():
            vals = tile.stats[name] if opened is None else np.concatenate([opened.stats[name], tile.stats[name]])
            stats[name] = _reduce(kind, vals, group, n_groups)
        ragged = {}
        for name in self.ragged_names:
            part = tile.ragged[name] if name in tile.ragged else Ragged.empty(tile.n)
            both = part if opened is None else Ragged.concat([opened.ragged[name], part])
            ragged[name] = both.group(group, n_groups)
        tile_ids = Ragged.singletons(np.full(tile.n, tile.iy * self.n_cols + tile.ix, dtype=np.int64))
        tile_lists = tile_ids if opened is None else Ragged.concat([opened.tiles, tile_ids])
        # Every node of a group has the same value; the key is the smallest first pixel.
        out_value = np.zeros(n_groups, dtype=np.int32)
        out_value[group] = value
        out_first = np.full(n_groups, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(out_first, group, first)
        return Components(out_value, out_first, stats, ragged, tile_lists.group(group, n_groups, unique=True))


# --------------------------------------------------------------------------- whole images


def label_image(values: np.ndarray, ignore: Iterable[int] = ()) -> NDArray[np.int64]:
    """Reference labelling of a whole image at once: 4-connected components of equal
    value, numbered 1.. in raster order of their first pixel; ignored values -> 0."""
    v = np.asarray(values)
    lut = ignore_lut(ignore, int(v.max()) if v.size else 0)
    return label_tile(v, lut).labels.astype(np.int64)


def label_chunked(values: Any, tile: Sequence[int], ignore: Iterable[int] = (),
                  read: Callable[[int, int, int, int], np.ndarray] | None = None,
                  max_value: int | None = None) -> NDArray[np.int64]:
    """The same labels as :func:`label_image`, computed tile by tile with a
    :class:`ComponentStream`.

    Each tile's local labels ride through the stream as a ragged list of references
    ``tile << 32 | local label``; at the end every component is numbered by the rank of
    its first pixel and painted back. The full label array is assembled for the caller,
    so this is for checking and small images; the ingestion never holds it.
    """
    if read is None:
        def read(y0: int, x0: int, h: int, w: int) -> np.ndarray:
            return np.asarray(values[y0 : y0 + h, x0 : x0 + w])
    if max_value is None:
        arr = np.asarray(values)
        max_value = int(arr.max()) if arr.size else 0
    return _label_by_keys(values, tile, ignore_lut(ignore, max_value), read)


def _label_by_keys(values: Any, tile: Sequence[int], lut: NDArray[np.int32],
                   read: Callable[[int, int, int, int], np.ndarray]) -> NDArray[np.int64]:
    """Label tile by tile, carry each tile's local labels through the stream as a ragged
    list of (tile, local label) references, and paint the final rank of every component."""
    shape = values.shape
    H, W = (int(v) for v in shape[-2:])
    stream = ComponentStream(shape, tile, reducers={}, ragged=("refs",))
    n_cols = stream.n_cols
    local_labels: dict[int, np.ndarray] = {}
    finals_first: list[np.ndarray] = []
    finals_refs: list[Ragged] = []
    for _, row in tile_rows(shape, tile):
        for iy, ix, y0, x0, h, w in row:
            local = label_tile(read(y0, x0, h, w), lut)
            local_labels[iy * n_cols + ix] = local.labels
            tc = tile_components(local, iy, ix, y0, x0, W)
            # ref = tile id * 2^32 + local label
            tile_refs = (np.int64(iy * n_cols + ix) << 32) + np.arange(1, local.n + 1, dtype=np.int64)
            tc.ragged["refs"] = Ragged.singletons(tile_refs)
            res = stream.push_tile(tc)
            finals_first.append(res.final.first)
            finals_refs.append(res.final.ragged["refs"])
    first = np.concatenate(finals_first)
    refs = Ragged.concat(finals_refs)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(1, first.size + 1)
    out = np.zeros((H, W), dtype=np.int64)
    owner = np.repeat(rank, refs.lengths())
    tile_of = refs.values >> 32
    local_of = refs.values & 0xFFFFFFFF
    th, tw = stream.th, stream.tw
    for t, labels in local_labels.items():
        sel = tile_of == t
        lut_t = np.zeros(labels.max() + 1 if labels.size else 1, dtype=np.int64)
        lut_t[local_of[sel]] = owner[sel]
        iy, ix = divmod(t, n_cols)
        out[iy * th : iy * th + labels.shape[0], ix * tw : ix * tw + labels.shape[1]] = lut_t[labels]
    return out
