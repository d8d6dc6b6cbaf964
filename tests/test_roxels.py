"""Roxels: composition, dominant class and grain, depth registration, world positions."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from mis.drillholes.desurvey import Collar, desurvey
from mis.grains.labelling import label_image
from mis.grains.roxels import (
    DepthRegistration,
    HolePositioner,
    check_roxel_size,
    composition,
    pick_dominant,
    pointz_ewkb,
    roxel_grid,
    tile_roxels,
)

from tests.test_labelling import blobs


def test_roxel_size_must_divide_the_chunk():
    check_roxel_size(16, (512, 512))
    check_roxel_size(8, (3, 64, 64))
    with pytest.raises(ValueError, match="roxel size 12 must divide the chunk size 64 x 64"):
        check_roxel_size(12, (64, 64))
    with pytest.raises(ValueError, match="positive"):
        check_roxel_size(0, (64, 64))
    assert roxel_grid((3, 100, 130), 16) == (7, 9)


def test_composition_counts_and_clipped_edge_windows():
    a = blobs((40, 37), 3, seed=4)
    tr = tile_roxels(a, None, 0, 0, 16, 3)
    assert (tr.rows.max() + 1, tr.cols.max() + 1) == (3, 3)
    for i in range(tr.rows.size):
        win = a[tr.rows[i] * 16 : tr.rows[i] * 16 + 16, tr.cols[i] * 16 : tr.cols[i] * 16 + 16]
        np.testing.assert_array_equal(tr.counts[i], np.bincount(win.ravel(), minlength=3))
        assert tr.pixels[i] == win.size
    frac, dom, domf = composition(tr.counts, tr.pixels)
    np.testing.assert_allclose(frac.sum(axis=1), 1.0, rtol=1e-6)
    assert np.all(frac[np.arange(frac.shape[0]), dom] == domf)
    assert tr.pixels[-1] == 8 * 5  # the corner roxel holds 8 x 5 pixels


def test_dominant_class_ties_go_to_the_lower_index():
    counts = np.array([[0, 5, 5], [3, 1, 0]])
    _, dom, domf = composition(counts, counts.sum(axis=1))
    assert list(dom) == [1, 0] and domf[0] == pytest.approx(0.5)


def test_pick_dominant_sums_parts_of_one_grain_and_breaks_ties_by_label():
    roxel = np.array([0, 0, 0, 1, 1, 2])
    grain = np.array([10, 11, 10, 20, 21, 30])
    count = np.array([3, 5, 3, 4, 4, 1])
    label = np.array([100, 50, 100, 7, 6, 1])
    out = pick_dominant(roxel, grain, count, label, 4)
    assert list(out) == [10, 21, 30, -1]


def test_dominant_grain_candidates_match_brute_force():
    a = blobs((64, 64), 3, seed=9, sigma=3)
    labels = label_image(a, ignore=[0])
    tr = tile_roxels(a, labels, 0, 0, 16, 3)
    got = pick_dominant(tr.pair_roxel, tr.pair_label, tr.pair_count, tr.pair_label, tr.rows.size)
    for i in range(tr.rows.size):
        win = labels[tr.rows[i] * 16 : tr.rows[i] * 16 + 16, tr.cols[i] * 16 : tr.cols[i] * 16 + 16].ravel()
        win = win[win > 0]
        if win.size == 0:
            assert got[i] == -1
            continue
        c = np.bincount(win)
        assert got[i] == np.flatnonzero(c == c.max())[0]


def test_depth_registration_along_an_axis_and_at_the_plug():
    reg = DepthRegistration(height=64, width=161, axis="x", top_m=110.0, bottom_m=111.6)
    d = reg.roxel_depths(np.zeros(11, int), np.arange(11), 16)
    assert d[0] == pytest.approx(110.0 + 7.5 * 0.01)
    assert d[10] == pytest.approx(110.0 + 160 * 0.01)  # last roxel: one column, the last pixel
    assert np.all(np.diff(d) > 0)
    yreg = DepthRegistration(height=101, width=20, axis="y", top_m=5.0, bottom_m=6.0)
    assert yreg.roxel_depths(np.array([0]), np.array([0]), 4)[0] == pytest.approx(5.0 + 1.5 / 100)
    plug = DepthRegistration(height=10, width=10, plug_from_m=20.0, plug_to_m=20.3)
    assert np.all(plug.roxel_depths(np.arange(3), np.arange(3), 4) == pytest.approx(20.15))
    assert np.isnan(DepthRegistration(height=1, width=1).roxel_depths(np.array([0]), np.array([0]), 1)[0])


HOLE = {"name": "DH-1", "collar_x": None, "collar_y": None, "collar_lon": -70.05, "collar_lat": -22.05,
        "collar_epsg": 4326, "elevation_m": 2500.0, "length_m": 300.0, "dip": -60.0, "azimuth": 90.0,
        "azimuth_reference": "true", "magnetic_declination_deg": None, "local_epsg": None,
        "desurvey_method": "minimum_curvature"}


def test_positions_come_from_desurveying_the_hole():
    surveys = [(0.0, -60.0, 90.0), (150.0, -70.0, 100.0), (300.0, -75.0, 110.0)]
    pos = HolePositioner.from_rows(HOLE, surveys)
    assert pos.method == "desurvey"
    lon, lat, z = pos.positions(np.array([0.0, 100.0, 100.0, np.nan, 225.0]))
    trace = desurvey(Collar(-70.05, -22.05, 2500.0, length=300.0), [0, 150, 300], [-60, -70, -75], [90, 100, 110])
    ref = trace.position_at([0.0, 100.0, 225.0])
    np.testing.assert_allclose(lon[[0, 1, 4]], ref.lon, atol=1e-12)
    np.testing.assert_allclose(z[[0, 1, 4]], ref.z, atol=1e-9)
    assert lon[1] == lon[2] and np.isnan(lon[3])
    assert z[0] == pytest.approx(2500.0) and lon[0] == pytest.approx(-70.05)


def test_straight_hole_without_surveys_uses_the_collar_orientation():
    lon, lat, z = HolePositioner.from_rows(HOLE, []).positions(np.array([100.0]))
    assert z[0] == pytest.approx(2500.0 - 100 * np.sin(np.radians(60)), abs=1e-6)
    assert lon[0] > -70.05 and lat[0] == pytest.approx(-22.05, abs=1e-6)


def test_falls_back_to_the_stored_trace_when_the_hole_cannot_be_desurveyed():
    bad = {**HOLE, "dip": None}
    trace = np.array([[-70.05, -22.05, 2500.0], [-70.04, -22.05, 2240.0]])
    pos = HolePositioner.from_rows(bad, [], trace)
    assert pos.method == "trace" and "interpolated along the stored trace" in pos.note
    lon, lat, z = pos.positions(np.array([0.0, 300.0]))
    assert z[0] == pytest.approx(2500.0) and z[1] == pytest.approx(2240.0)
    assert HolePositioner.from_rows(bad, []).method == "none"


def test_pointz_ewkb_is_what_postgis_reads():
    rec = pointz_ewkb(np.array([-70.1, 1.5]), np.array([-22.0, 2.5]), np.array([2400.0, -3.0]))
    geoms = shapely.from_wkb([r.tobytes() for r in rec])
    assert shapely.get_srid(geoms).tolist() == [4326, 4326]
    assert geoms[0].has_z and (geoms[0].x, geoms[0].y, geoms[0].z) == (-70.1, -22.0, 2400.0)
