"""Connected components across chunks: identical to labelling the whole image at once."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from scipy import ndimage

from mis.grains.labelling import (
    ComponentStream,
    Ragged,
    ignore_lut,
    label_chunked,
    label_image,
    label_tile,
    tile_components,
)
from mis.grains.metrics import tile_pieces
from mis.imagery.chunks import tile_rows


def blobs(shape, k, seed, sigma=3.0, noise=0.03):
    """A class map of organic blobs of classes 0..k-1 with salt-and-pepper specks."""
    rng = np.random.default_rng(seed)
    field = np.stack([ndimage.gaussian_filter(rng.normal(size=shape), sigma) for _ in range(k)])
    out = np.argmax(field, axis=0).astype(np.uint8)
    speck = rng.random(shape) < noise
    out[speck] = rng.integers(0, k, int(speck.sum()))
    return out


def corner_cases(tile: int = 16) -> np.ndarray:
    """Shapes crossing tile corners on a 4 x 4 tile image (values: 0 background, 1, 2)."""
    t = tile
    a = np.zeros((4 * t, 4 * t), dtype=np.uint8)
    # a plus centred on the corner shared by tiles (0,0), (0,1), (1,0), (1,1)
    a[t - 3 : t + 3, t - 1 : t + 1] = 1
    a[t - 1 : t + 1, t - 3 : t + 3] = 1
    # a staircase through the corner of tiles (0,2),(0,3),(1,2),(1,3): 4-connected steps
    for i in range(-4, 4):
        a[t + i, 3 * t + i] = 2
        a[t + i, 3 * t + i + 1] = 2
    # two pixels meeting only diagonally at a tile corner: two components under 4-connectivity
    a[2 * t - 1, 2 * t - 1] = 1
    a[2 * t, 2 * t] = 1
    # a U that leaves tile row 2 and joins again two tile rows below
    a[2 * t + 2 : 4 * t - 2, 5] = 2
    a[2 * t + 2 : 4 * t - 2, 9] = 2
    a[4 * t - 3, 5:10] = 2
    # a ring around a tile corner with a hole touching its shell at a vertex
    y, x = 3 * t, 3 * t
    a[y - 3 : y + 3, x - 3 : x + 3] = 1
    a[y - 2 : y + 2, x - 2 : x + 2] = 0
    a[y + 2, x + 2] = 0  # the hole's corner meets the outside diagonally
    return a


def test_label_image_is_skimage_4_connected():
    a = blobs((60, 70), 3, seed=1)
    from skimage.measure import label

    lut = np.array([0, 2, 3])
    np.testing.assert_array_equal(label_image(a, ignore=[0]), label(lut[a], background=0, connectivity=1))


def test_corner_touching_pixels_are_separate_grains():
    checker = (np.indices((6, 6)).sum(axis=0) % 2).astype(np.uint8)
    labels = label_image(checker, ignore=[0])
    assert labels.max() == 18 and np.all(np.bincount(labels.ravel())[1:] == 1)
    np.testing.assert_array_equal(label_chunked(checker, (2, 3), ignore=[0]), labels)


@pytest.mark.parametrize("tile", [16, 7])
def test_corner_cases_match_whole_image_pixel_for_pixel(tile):
    a = corner_cases(16)
    ref = label_image(a, ignore=[0])
    got = label_chunked(a, (tile, tile), ignore=[0])
    np.testing.assert_array_equal(got, ref)
    # the plus is one grain across four tiles; the U is one grain; the diagonal pair is two
    assert len(np.unique(ref[15:17, 13:19])) == 1
    assert ref[2 * 16 + 2, 5] == ref[2 * 16 + 2, 9]
    assert ref[31, 31] != ref[32, 32]


@pytest.mark.parametrize("seed", range(6))
def test_random_maps_and_tilings_match_whole_image(seed):
    rng = np.random.default_rng(100 + seed)
    shape = tuple(int(v) for v in rng.integers(90, 200, 2))
    a = blobs(shape, int(rng.integers(2, 5)), seed=seed, sigma=float(rng.uniform(1.5, 5)))
    tile = tuple(int(v) for v in rng.integers(9, 70, 2))
    ignore = [0] if seed % 2 else []
    np.testing.assert_array_equal(label_chunked(a, tile, ignore=ignore), label_image(a, ignore=ignore))


def test_image_several_chunks_wide_with_64px_chunks():
    a = blobs((200, 330), 4, seed=7, sigma=6)
    ref = label_image(a, ignore=[0])
    np.testing.assert_array_equal(label_chunked(a, (64, 64), ignore=[0]), ref)
    # plenty of grains do cross chunk boundaries in this image
    crossing = np.union1d(np.intersect1d(ref[:, 63], ref[:, 64]), np.intersect1d(ref[63, :], ref[64, :]))
    assert crossing[crossing > 0].size > 10


def _stream_stats(a, tile, ignore):
    """Counts and first pixels of whole components through a ComponentStream."""
    H, W = a.shape
    lut = ignore_lut(ignore, int(a.max()))
    stream = ComponentStream(a.shape, tile, {"count": "sum", "maxr": "max", "edge": "or"})
    firsts, counts, maxr, tiles = [], [], [], []
    for _, row in tile_rows(a.shape, tile):
        for iy, ix, y0, x0, h, w in row:
            local = label_tile(a[y0 : y0 + h, x0 : x0 + w], lut)
            tc = tile_components(local, iy, ix, y0, x0, W)
            flat = local.labels.ravel()
            rows = np.repeat(np.arange(y0, y0 + h), w)
            mr = np.full(local.n + 1, -1)
            np.maximum.at(mr, flat, rows)
            tc.stats = {"count": np.bincount(flat, minlength=local.n + 1)[1:], "maxr": mr[1:],
                        "edge": np.zeros(local.n, bool)}
            res = stream.push_tile(tc)
            firsts.append(res.final.first)
            counts.append(res.final.stats["count"])
            maxr.append(res.final.stats["maxr"])
            tiles += [list(res.final.tiles[i]) for i in range(len(res.final))]
    return np.concatenate(firsts), np.concatenate(counts), np.concatenate(maxr), tiles


def test_stream_merges_statistics_and_lists_the_chunks_spanned():
    a = blobs((150, 170), 3, seed=3, sigma=5)
    tile = (32, 40)
    ref = label_image(a, ignore=[0])
    first, count, maxr, tiles = _stream_stats(a, tile, [0])
    order = np.argsort(first)
    n = ref.max()
    assert first.size == n
    flat = ref.ravel()
    ref_first = np.array([np.flatnonzero(flat == i)[0] for i in range(1, n + 1)])
    np.testing.assert_array_equal(first[order], ref_first)
    np.testing.assert_array_equal(count[order], np.bincount(flat)[1:])
    rows = np.indices(a.shape)[0].ravel()
    ref_maxr = ndimage.maximum(rows, flat, index=np.arange(1, n + 1))
    np.testing.assert_array_equal(maxr[order], ref_maxr)
    n_cols = -(-a.shape[1] // tile[1])
    for rank, i in enumerate(order):
        ys, xs = np.nonzero(ref == rank + 1)
        expected = sorted(set((ys // tile[0] * n_cols + xs // tile[1]).tolist()))
        assert tiles[i] == expected


def test_components_are_final_as_soon_as_they_stop_growing():
    a = np.zeros((40, 20), dtype=np.uint8)
    a[2:5, 2:5] = 1  # inside tile (0, 0)
    a[8:14, 8:12] = 1  # crosses into tiles (0, 1), (1, 0) and (1, 1)
    a[12:14, 15:17] = 1  # inside tile (1, 1)
    stream = ComponentStream(a.shape, (10, 10), {})
    lut = ignore_lut([0], 1)
    seen = []
    for _, row in tile_rows(a.shape, (10, 10)):
        for iy, ix, y0, x0, h, w in row:
            tc = tile_components(label_tile(a[y0 : y0 + h, x0 : x0 + w], lut), iy, ix, y0, x0, 20)
            seen.append(len(stream.push_tile(tc).final))
            assert stream.n_open <= 1
    assert seen == [1, 0, 0, 2, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="every tile has been pushed"):
        stream.push_tile(tc)


def test_outline_pieces_union_into_one_valid_polygon_per_component():
    a = corner_cases(16)
    lut = ignore_lut([0], 2)
    stream = ComponentStream(a.shape, (16, 16), {}, ragged=("pieces",))
    polys = []
    for _, row in tile_rows(a.shape, (16, 16)):
        for iy, ix, y0, x0, h, w in row:
            local = label_tile(a[y0 : y0 + h, x0 : x0 + w], lut)
            tc = tile_components(local, iy, ix, y0, x0, a.shape[1])
            tc.ragged["pieces"] = tile_pieces(local, y0, x0)
            res = stream.push_tile(tc)
            pieces = res.final.ragged["pieces"]
            polys += [shapely.union_all(pieces[i]) for i in range(len(res.final))]
    ref = label_image(a, ignore=[0])
    assert len(polys) == ref.max()
    for p in polys:
        assert p.geom_type == "Polygon" and p.is_valid
    assert sum(p.area for p in polys) == np.count_nonzero(ref)
    assert sum(len(p.interiors) for p in polys) >= 1  # the ring keeps its hole


def test_tiles_must_come_in_raster_order():
    a = np.ones((20, 20), dtype=np.uint8)
    stream = ComponentStream(a.shape, (10, 10), {})
    local = label_tile(a[:10, 10:], ignore_lut([], 1))
    with pytest.raises(ValueError, match=r"raster order: expected tile \(0, 0\), got \(0, 1\)"):
        stream.push_tile(tile_components(local, 0, 1, 0, 10, 20))


def test_ragged_group_and_take():
    r = Ragged(np.array([5, 6, 7, 8, 9]), np.array([0, 2, 2, 5]))
    g = r.group(np.array([1, 0, 1]), 2)
    assert [list(g[i]) for i in range(2)] == [[], [5, 6, 7, 8, 9]]
    u = Ragged(np.array([3, 1, 3, 2]), np.array([0, 2, 4])).group(np.array([0, 0]), 1, unique=True)
    assert list(u[0]) == [1, 2, 3]
    assert [list(x) for x in (r.take(np.array([2, 0]))[i] for i in range(2))] == [[7, 8, 9], [5, 6]]


def test_values_outside_the_class_list_are_refused():
    with pytest.raises(ValueError, match="class value 5 is outside the class list"):
        label_tile(np.array([[0, 5]], dtype=np.uint8), ignore_lut([0], 3))
