"""Grain metrics: known shapes, micrometre outlines, and independence from the chunking."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from mis.grains.labelling import label_image
from mis.grains.metrics import measure_grains

from tests.test_labelling import blobs

P = 0.5  # µm per pixel


def one(a, tile=(16, 16), **kw):
    t = measure_grains(a, tile, P, ignore=[0], **kw)
    assert len(t) == 1
    return t


def test_rectangle():
    a = np.zeros((40, 70), dtype=np.uint8)
    a[12:22, 20:60] = 1  # 10 rows x 40 columns, across tiles
    t = one(a)
    assert t.area_um2[0] == pytest.approx(400 * P * P)
    # corners cut through the edge midpoints: 2 (39 + 9) + 4 sqrt(1/2) px, no staircase
    assert t.perimeter_um[0] == pytest.approx((96 + 4 * math.sqrt(0.5)) * P)
    assert t.ecd_um[0] == pytest.approx(2 * math.sqrt(400 / math.pi) * P)
    assert t.major_axis_um[0] == pytest.approx(4 * math.sqrt(40**2 / 12) * P)
    assert t.minor_axis_um[0] == pytest.approx(4 * math.sqrt(10**2 / 12) * P)
    assert t.orientation_deg[0] == pytest.approx(0.0, abs=1e-6) or t.orientation_deg[0] == pytest.approx(180.0)
    assert t.aspect_ratio[0] == pytest.approx(4.0)
    assert t.solidity[0] == pytest.approx(1.0)
    assert t.form_factor[0] == pytest.approx(4 * math.pi * 399.5 / (96 + 4 * math.sqrt(0.5)) ** 2)
    assert t.feret_max_um[0] == pytest.approx(math.sqrt(40**2 + 10**2) * P)
    assert t.feret_min_um[0] == pytest.approx(10 * P)
    assert t.roundness[0] == pytest.approx(4 * 400 / (math.pi * 1700))
    assert t.centroid_x_um[0] == pytest.approx(39.5 * P) and t.centroid_y_um[0] == pytest.approx(16.5 * P)
    # pixel centres at index * p: the outline runs half a pixel outside them
    assert t.outline[0].bounds == pytest.approx(((20 - 0.5) * P, (12 - 0.5) * P, (60 - 0.5) * P, (22 - 0.5) * P))
    assert not t.touches_border[0]
    assert list(t.tiles[0]) == [1, 2, 3, 6, 7, 8]  # 5 tiles wide: tile rows 0-1, columns 1-3
    assert t.label[0] == 12 * 70 + 20


def test_single_pixel():
    a = np.zeros((8, 8), dtype=np.uint8)
    a[0, 5] = 3
    t = one(a, tile=(4, 4))
    assert t.major_axis_um[0] == pytest.approx(4 / math.sqrt(12) * P) == t.minor_axis_um[0]
    assert t.aspect_ratio[0] == pytest.approx(1.0)
    assert t.feret_max_um[0] == pytest.approx(math.sqrt(2) * P)
    assert t.feret_min_um[0] == pytest.approx(P)
    # the pixel's square with its corners cut through the edge midpoints: a diamond
    assert t.outline[0].bounds == pytest.approx((4.5 * P, -0.5 * P, 5.5 * P, 0.5 * P))
    assert t.outline[0].area == pytest.approx(0.5 * P * P)
    assert t.outline[0].centroid.equals(shapely.Point(5 * P, 0))
    assert t.touches_border[0] and t.class_index[0] == 3


def test_disc_is_round_and_solid():
    yy, xx = np.mgrid[:80, :80]
    a = ((yy - 40.3) ** 2 + (xx - 39.6) ** 2 <= 20**2).astype(np.uint8)
    t = one(a, tile=(32, 32))
    assert t.form_factor[0] > 0.88
    assert t.roundness[0] > 0.9  # Feret of the pixel squares is ~1 px longer than the disc
    assert t.solidity[0] > 0.96
    assert t.aspect_ratio[0] < 1.03
    assert t.feret_max_um[0] == pytest.approx(41 * P, abs=1.5 * P)
    assert t.perimeter_um[0] == pytest.approx(2 * math.pi * 20 * P, rel=0.07)


@pytest.mark.parametrize("angle", [30.0, 120.0])
def test_orientation_is_measured_from_x_towards_y_down(angle):
    yy, xx = np.mgrid[:100, :100].astype(float)
    th = math.radians(angle)
    u = (xx - 50) * math.cos(th) + (yy - 50) * math.sin(th)  # along the major axis
    v = -(xx - 50) * math.sin(th) + (yy - 50) * math.cos(th)
    a = ((u / 35) ** 2 + (v / 12) ** 2 <= 1).astype(np.uint8)
    t = one(a, tile=(40, 40))
    assert t.orientation_deg[0] == pytest.approx(angle, abs=1.0)
    assert t.aspect_ratio[0] == pytest.approx(35 / 12, rel=0.05)


def test_holes_are_kept_and_outlines_are_valid():
    a = np.zeros((50, 50), dtype=np.uint8)
    a[5:45, 5:45] = 2
    a[15:30, 20:35] = 0  # a hole crossing tile boundaries
    a[30, 35] = 0  # touching the hole's corner diagonally
    t = one(a, tile=(16, 16))
    poly = t.outline[0]
    assert poly.geom_type == "Polygon" and poly.is_valid and len(poly.interiors) >= 1
    assert t.area_um2[0] == pytest.approx((1600 - 226) * P * P)
    assert t.outline[0].area == pytest.approx(t.area_um2[0], rel=0.01)
    assert t.solidity[0] < 1


def pixel_union(mask: np.ndarray) -> shapely.Geometry:
    ys, xs = np.nonzero(mask)
    return shapely.union_all(shapely.box(xs - 0.5, ys - 0.5, xs + 0.5, ys + 0.5))


def test_simplified_outlines_stay_within_half_a_pixel():
    a = blobs((120, 130), 3, seed=11, sigma=4, noise=0.0)
    t = measure_grains(a, (32, 32), 1.0, ignore=[0])
    ref = label_image(a, ignore=[0])
    big = np.argsort(-t.area_um2)[:15]
    for i in big:
        rank = int(np.searchsorted(np.sort(t.label), t.label[i])) + 1
        raw = pixel_union(ref == rank)
        simple = t.outline[i]
        assert simple.is_valid and simple.geom_type == "Polygon"
        assert shapely.hausdorff_distance(simple, raw) <= 0.5 + 1e-9
        assert len(simple.exterior.coords) <= len(raw.exterior.coords)


def test_random_maps_give_valid_polygons_and_exact_areas():
    a = blobs((150, 160), 4, seed=5, sigma=2.5)
    t = measure_grains(a, (24, 40), P, ignore=[0])
    ref = label_image(a, ignore=[0])
    assert len(t) == ref.max()
    np.testing.assert_array_equal(t.count, np.bincount(ref.ravel())[1:])
    assert np.all(shapely.is_valid(t.outline)) and np.all(shapely.get_type_id(t.outline) == 3)
    assert np.all((t.solidity > 0) & (t.solidity <= 1))
    assert np.all((t.form_factor > 0) & (t.form_factor <= 1))
    assert np.all((t.roundness > 0) & (t.roundness <= 1))
    assert np.all(t.feret_min_um <= t.feret_max_um + 1e-9) and np.all(t.aspect_ratio >= 1)
    assert np.all((t.orientation_deg >= 0) & (t.orientation_deg < 180))


def test_metrics_do_not_depend_on_the_chunking():
    a = blobs((128, 128), 3, seed=2, sigma=5)
    prob = np.random.default_rng(0).uniform(0.3, 1.0, a.shape)
    whole = measure_grains(a, (128, 128), P, ignore=[0], probability=prob)
    tiled = measure_grains(a, (16, 32), P, ignore=[0], probability=prob)
    np.testing.assert_array_equal(whole.label, tiled.label)
    for name in ("area_um2", "ecd_um", "centroid_x_um", "centroid_y_um", "major_axis_um", "minor_axis_um",
                 "aspect_ratio", "solidity", "feret_max_um", "feret_min_um", "roundness", "mean_probability"):
        np.testing.assert_allclose(getattr(tiled, name), getattr(whole, name), rtol=1e-9, atol=1e-9, err_msg=name)
    np.testing.assert_array_equal(whole.touches_border, tiled.touches_border)
    np.testing.assert_allclose(tiled.perimeter_um, whole.perimeter_um, rtol=1e-9)
    np.testing.assert_allclose(tiled.form_factor, whole.form_factor, rtol=1e-9)
    ref = label_image(a, ignore=[0])
    np.testing.assert_allclose(whole.mean_probability,
                               np.bincount(ref.ravel(), prob.ravel())[1:] / np.bincount(ref.ravel())[1:])
