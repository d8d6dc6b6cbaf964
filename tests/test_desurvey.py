"""Desurvey tests: published and analytic cases, an independent implementation, CRS.

Pure numpy/pyproj: no database needed.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose
from wellpathpy.mincurve import minimum_curvature as wpp_minimum_curvature

from mis.drillholes.crs import grid_factors, transformer, utm_epsg
from mis.drillholes.desurvey import (
    Collar,
    desurvey,
    desurvey_batch,
    desurvey_offsets,
    position_at,
)

MM = 1e-3  # the accuracy asked of positions: 1 mm
COLLAR = Collar(x=17.5, y=60.0, elevation=350.0, hole_id="DH-1")  # UTM 33N, east of CM


def _unit(dip, azi):
    d, a = np.radians(dip), np.radians(azi)
    return np.array([np.cos(d) * np.sin(a), np.cos(d) * np.cos(a), np.sin(d)])


def _angles(t):
    """(dip, azimuth) in degrees of a unit ENU vector."""
    return np.degrees(np.arcsin(np.clip(t[2], -1, 1))), np.degrees(np.arctan2(t[0], t[1])) % 360


def _enu(tr):
    return np.column_stack([tr.east, tr.north, tr.up])


# ----------------------------------------------------------------- (1) reference cases


def test_published_minimum_curvature_example():
    """Lapeyrouse, *Formulas and Calculations for Drilling, Production and Workover*
    (2nd ed., Gulf Professional Publishing), minimum curvature example, as reproduced at
    drillingformulas.com/minimum-curvature-method: survey 1 at 3500 ft, inclination 15 deg,
    azimuth 20 deg; survey 2 at 3600 ft, 25 deg, 45 deg. Published: dogleg 12.95 deg,
    RF 1.00408, North 27.22 ft, East 19.45 ft, TVD 94.01 ft. The book rounds to 0.01 ft,
    so this checks to that rounding (half a unit); the analytic arcs below check to 1 mm.
    The printed RF is not checked: it disagrees with the printed dogleg itself
    (2/b tan(b/2) = 1.00428 for b = 0.22605 rad), while N, E and TVD follow from 1.00428.
    """
    east, north, up, dogleg = desurvey_offsets(
        [3500.0, 3600.0], [15.0, 25.0], [20.0, 45.0], convention="inclination"
    )
    assert dogleg[1] == pytest.approx(12.95, abs=0.005)
    assert np.radians(dogleg[1]) == pytest.approx(0.22605, abs=5e-6)
    assert north[1] == pytest.approx(27.22, abs=0.005)
    assert east[1] == pytest.approx(19.45, abs=0.005)
    assert -up[1] == pytest.approx(94.01, abs=0.005)


def test_vertical_plane_arc_is_exact():
    """A hole kicked off vertical that builds at a constant rate to horizontal is a quarter
    circle of radius R = L / (pi/2): it ends R below and R out along its azimuth. Minimum
    curvature is exact on circular arcs, whatever the station spacing."""
    length, azi = 471.238898, 30.0  # R = 300 m
    radius = length / (np.pi / 2)
    md = np.sort(np.r_[0.0, length, np.random.default_rng(1).uniform(0, length, 7)])
    dip = -90.0 + 90.0 * md / length
    tr = desurvey(COLLAR, md, dip, np.full(md.size, azi))
    end = np.array([radius * np.sin(np.radians(azi)), radius * np.cos(np.radians(azi)), -radius])
    assert_allclose(_enu(tr)[-1], end, atol=MM)
    # Every station, not just the last, lies on the circle.
    theta = np.radians(90.0 * md / length)
    horizontal = radius * (1 - np.cos(theta))
    assert_allclose(tr.east, horizontal * np.sin(np.radians(azi)), atol=MM)
    assert_allclose(tr.north, horizontal * np.cos(np.radians(azi)), atol=MM)
    assert_allclose(tr.up, -radius * np.sin(theta), atol=MM)
    # Build rate 90 deg over L: dogleg severity is constant.
    assert_allclose(tr.dogleg_severity(30.0), 90.0 / length * 30.0, rtol=1e-9)


def _tilted_arc(radius=250.0, length=600.0, seed=7):
    """A circle in an arbitrary plane: t(s) = rotation of t0 about the plane normal b by
    s/R, position p(s) = R [sin(s/R) t0 + (1 - cos(s/R)) (b x t0)]."""
    rng = np.random.default_rng(seed)
    t0 = _unit(-70.0, 10.0)
    b = np.cross(t0, rng.normal(size=3))
    b /= np.linalg.norm(b)
    n0 = np.cross(b, t0)

    def tangent(s):
        a = np.asarray(s)[..., None] / radius
        return np.cos(a) * t0 + np.sin(a) * n0

    def point(s):
        a = np.asarray(s)[..., None] / radius
        return radius * (np.sin(a) * t0 + (1 - np.cos(a)) * n0)

    return tangent, point, length


def test_tilted_arc_and_position_at_are_exact():
    tangent, point, length = _tilted_arc()
    md = np.r_[0.0, 35.0, 120.0, 190.0, 330.0, 480.0, length]
    dip, azi = _angles(tangent(md).T)
    tr = desurvey(COLLAR, md, dip, azi)
    assert_allclose(_enu(tr), point(md), atol=MM)
    # Arbitrary depths between stations land on the exact arc (1 mm) ...
    depths = np.random.default_rng(3).uniform(0, length, 200)
    pos = position_at(tr, depths)
    at_stations = position_at(tr, md)
    shift = np.array([tr.x[0], tr.y[0], tr.z[0]])
    exact = point(depths)
    got = np.column_stack([pos.x, pos.y, pos.z]) - shift
    # local grid = ground rotated by -gamma and scaled by k (horizontally)
    g = np.radians(tr.convergence)
    rot = np.array([[np.cos(g), -np.sin(g)], [np.sin(g), np.cos(g)]])
    exact_grid = np.column_stack([tr.scale * exact[:, :2] @ rot.T, exact[:, 2]])
    assert_allclose(got, exact_grid, atol=MM)
    assert_allclose(at_stations.x, tr.x, atol=1e-9)
    # ... while the chord between stations would miss by metres.
    chord = np.column_stack([np.interp(depths, md, tr.east), np.interp(depths, md, tr.north)])
    assert np.max(np.linalg.norm(chord - exact[:, :2], axis=1)) > 1.0


# ------------------------------------------------------- (2) independent implementation


def _random_survey(rng, n):
    md = np.cumsum(np.r_[0.0, rng.uniform(3.0, 60.0, n - 1)])
    inc = np.clip(rng.uniform(0, 60) + np.cumsum(rng.normal(0, 4, n)), 0.0, 170.0)
    azi = (rng.uniform(0, 360) + np.cumsum(rng.normal(0, 8, n))) % 360
    return md, inc, azi


def test_matches_wellpathpy_on_random_surveys():
    """wellpathpy (inclination from vertical, TVD positive down, returns tvd, N, E, DLS)
    is an independent minimum curvature implementation; ours must agree to 1 mm."""
    rng = np.random.default_rng(2024)
    for _ in range(50):
        md, inc, azi = _random_survey(rng, int(rng.integers(2, 80)))
        tvd, north, east, dls = wpp_minimum_curvature(md, inc, azi, course_length=30)
        tr = desurvey(COLLAR, md, inc, azi, convention="inclination")
        assert_allclose(tr.east, east, atol=MM)
        assert_allclose(tr.north, north, atol=MM)
        assert_allclose(tr.up, -tvd, atol=MM)
        assert_allclose(tr.dogleg_severity(30.0), dls[1:], atol=1e-6)


def test_other_methods_follow_their_textbook_formulas():
    md, inc, azi = _random_survey(np.random.default_rng(5), 12)
    t = np.array([_unit(i - 90.0, a) for i, a in zip(inc, azi, strict=True)])
    steps = np.diff(md)[:, None]
    expected = {
        "tangential": np.cumsum(steps * t[1:], axis=0),
        "balanced_tangential": np.cumsum(steps / 2 * (t[:-1] + t[1:]), axis=0),
    }
    for method, exp in expected.items():
        e, n, u, _ = desurvey_offsets(md, inc, azi, method=method, convention="inclination")
        assert_allclose(np.column_stack([e, n, u])[1:], exp, atol=1e-9)
        tr = desurvey(COLLAR, md, inc, azi, method=method, convention="inclination")
        assert_allclose(_enu(tr)[1:], exp, atol=1e-9)
        pos = position_at(tr, md)
        assert_allclose(pos.z, tr.z, atol=1e-9)


# ------------------------------------------------------------------ (3) straight holes


def test_no_survey_is_straight_along_collar_orientation():
    c = Collar(17.5, 60.0, 350.0, dip=-60.0, azimuth=30.0, length=200.0)
    tr = desurvey(c)
    assert_allclose(tr.md, [0.0, 200.0])
    assert_allclose(_enu(tr)[-1], 200.0 * _unit(-60.0, 30.0), atol=1e-9)
    assert tr.z[-1] == pytest.approx(350.0 - 200.0 * np.sin(np.radians(60.0)), abs=1e-9)
    # A vertical collar needs no azimuth.
    tr = desurvey(Collar(17.5, 60.0, 350.0, dip=-90.0, length=80.0))
    assert_allclose(_enu(tr)[-1], [0.0, 0.0, -80.0], atol=1e-9)


def test_one_survey_is_straight_from_the_collar():
    """A single survey below 0 m applies from 0 m (surveys win over a collar setup)."""
    c = Collar(17.5, 60.0, 350.0, dip=-45.0, azimuth=100.0, length=150.0)
    tr = desurvey(c, [20.0], [-70.0], [250.0])
    assert_allclose(tr.md, [0.0, 20.0, 150.0])
    assert_allclose(_enu(tr), np.outer(tr.md, _unit(-70.0, 250.0)), atol=1e-9)
    assert_allclose(tr.dogleg, 0.0, atol=1e-9)
    mid = position_at(tr, 75.0)
    assert mid.z.shape == ()
    assert float(mid.z) == pytest.approx(350.0 - 75.0 * np.sin(np.radians(70.0)), abs=1e-9)


def test_bad_surveys_are_refused_with_the_hole_named():
    with pytest.raises(ValueError, match=r"DH-1.*increase strictly"):
        desurvey(COLLAR, [0.0, 50.0, 50.0], [-60, -60, -60], [0, 0, 0])
    with pytest.raises(ValueError, match=r"DH-9.*deeper than the hole length"):
        short = Collar(17.5, 60.0, 0.0, length=40.0, hole_id="DH-9")
        desurvey(short, [0.0, 50.0], [-60, -60], [0, 0])
    with pytest.raises(ValueError, match="no collar dip"):
        desurvey(Collar(17.5, 60.0, 0.0, length=40.0))
    with pytest.raises(ValueError, match="dip 95.0"):
        desurvey(COLLAR, [0.0], [95.0], [0.0])
    with pytest.raises(ValueError, match="method"):
        desurvey(COLLAR, [0.0], [-90.0], [0.0], method="radius_of_curvature")


# ------------------------------------------------------------------- (4) position_at


def test_position_at_stations_and_on_the_arc():
    md = np.array([0.0, 40.0, 110.0, 180.0])
    dip = np.array([-80.0, -71.0, -60.0, -52.0])
    azi = np.array([300.0, 318.0, 341.0, 5.0])
    tr = desurvey(COLLAR, md, dip, azi)
    at = position_at(tr, md)
    for name in ("x", "y", "z"):
        assert_allclose(getattr(at, name), getattr(tr, name), atol=1e-9)
    lon, lat, elev = tr.lonlat()
    assert_allclose(at.lon, lon, atol=1e-12)
    assert_allclose(at.lat, lat, atol=1e-12)
    assert_allclose(at.elevation, elev, atol=1e-9)

    # Insert a station at 77 m with the direction slerped on the dogleg of 40..110 m:
    # the sub-arcs of a circular arc are circular arcs, so a finer desurvey must put
    # that station where position_at says.
    d, s = 77.0, (77.0 - 40.0) / 70.0
    t1, t2 = _unit(dip[1], azi[1]), _unit(dip[2], azi[2])
    beta = np.arccos(np.clip(t1 @ t2, -1, 1))
    t = (np.sin((1 - s) * beta) * t1 + np.sin(s * beta) * t2) / np.sin(beta)
    d_dip, d_azi = _angles(t)
    finer = desurvey(
        COLLAR, np.insert(md, 2, d), np.insert(dip, 2, d_dip), np.insert(azi, 2, d_azi)
    )
    p = position_at(tr, d)
    assert_allclose([p.x, p.y, p.z], [finer.x[2], finer.y[2], finer.z[2]], atol=MM)
    assert_allclose(finer.z[[0, 1, 3, 4]], tr.z, atol=MM)

    with pytest.raises(ValueError, match=r"depth 180.5 m is outside hole 'DH-1' \(0 to 180.0 m\)"):
        position_at(tr, [10.0, 180.5])
    with pytest.raises(ValueError, match="depth -1.0 m"):
        tr.position_at(-1.0)


def test_position_at_shape():
    tr = desurvey(COLLAR, [0.0, 100.0], [-60.0, -50.0], [10.0, 20.0])
    pos = position_at(tr, np.linspace(0, 100, 12).reshape(3, 4))
    assert pos.lon.shape == (3, 4) and pos.x.shape == (3, 4)


# ---------------------------------------------------------- (5) conventions, references


def test_inclination_equals_dip_convention():
    md, inc, azi = _random_survey(np.random.default_rng(11), 20)
    a = desurvey(COLLAR, md, inc, azi, convention="inclination")
    b = desurvey(COLLAR, md, inc - 90.0, azi, convention="dip")
    assert_allclose(_enu(a), _enu(b), atol=1e-9)
    assert_allclose(a.dip, b.dip)


def test_magnetic_declination_rotates_azimuth():
    md = np.array([0.0, 60.0, 150.0])
    dip = np.array([-60.0, -55.0, -50.0])
    azi = np.array([40.0, 45.0, 52.0])
    decl = -12.5  # magnetic north 12.5 deg west of true north
    mag = desurvey(COLLAR, md, dip, azi, azimuth_reference="magnetic", declination=decl)
    true = desurvey(COLLAR, md, dip, azi + decl)
    assert_allclose(mag.azimuth, (azi + decl) % 360)
    assert_allclose(_enu(mag), _enu(true), atol=1e-9)
    # Declination rotates the plan view about the collar, leaving the depth alone.
    r = np.radians(decl)
    plain = desurvey(COLLAR, md, dip, azi)
    rot_e = plain.east * np.cos(r) + plain.north * np.sin(r)
    rot_n = -plain.east * np.sin(r) + plain.north * np.cos(r)
    assert_allclose(mag.east, rot_e, atol=1e-9)
    assert_allclose(mag.north, rot_n, atol=1e-9)
    assert_allclose(mag.up, plain.up, atol=1e-9)


def test_grid_azimuth_uses_meridian_convergence_with_its_sign():
    """gamma (PROJ) is the clockwise angle from true north to grid north: check it against
    the grid bearing of a short step due north, then that a grid azimuth equals the true
    azimuth gamma larger, so a hole surveyed along grid north runs along the grid y axis."""
    gamma, k = grid_factors(32633, 17.5, 60.0)
    to_utm = transformer(4326, 32633)
    x0, y0 = to_utm.transform(17.5, 60.0)
    x1, y1 = to_utm.transform(17.5, 60.0 + 1e-5)
    assert gamma > 0 and np.degrees(np.arctan2(x1 - x0, y1 - y0)) == pytest.approx(-gamma, abs=1e-6)
    assert 0.9996 < k < 1.0

    md, dip = np.array([0.0, 300.0]), np.array([-30.0, -30.0])
    tr = desurvey(COLLAR, md, dip, [0.0, 0.0], azimuth_reference="grid")
    assert_allclose(tr.azimuth, gamma)
    assert tr.x[-1] == pytest.approx(tr.x[0], abs=1e-9)
    assert tr.y[-1] - tr.y[0] == pytest.approx(k * 300.0 * np.cos(np.radians(30.0)), abs=1e-9)
    # A true-north hole drifts west of the grid axis by gamma.
    tr = desurvey(COLLAR, md, dip, [0.0, 0.0])
    bearing = np.degrees(np.arctan2(tr.x[-1] - tr.x[0], tr.y[-1] - tr.y[0]))
    assert bearing == pytest.approx(-gamma, abs=1e-9)


def test_utm_zone_choice():
    assert utm_epsg(17.5, 60.0) == 32633
    assert utm_epsg(-70.6, -33.4) == 32719
    assert utm_epsg(5.3, 60.4) == 32632  # Bergen: Norway exception (32V)
    assert utm_epsg(15.6, 78.2) == 32633  # Svalbard
    assert list(utm_epsg([179.9, -180.0], [0.0, 0.0])) == [32660, 32601]
    with pytest.raises(ValueError, match="local_epsg"):
        utm_epsg(0.0, 86.0)


# ------------------------------------------------------------ (6) collar CRS round trip


def test_projected_collar_gives_the_same_trace_as_lonlat():
    md = np.array([0.0, 80.0, 200.0, 340.0])
    dip = np.array([-65.0, -62.0, -57.0, -55.0])
    azi = np.array([120.0, 126.0, 133.0, 137.0])
    for lon, lat in [(17.5, 60.0), (-70.6, -33.4)]:
        epsg = int(utm_epsg(lon, lat))
        x, y = transformer(4326, epsg).transform(lon, lat)
        a = desurvey(Collar(lon, lat, 1200.0), md, dip, azi)
        b = desurvey(Collar(x, y, 1200.0, epsg=epsg), md, dip, azi)
        assert a.epsg == b.epsg == epsg
        for name in ("x", "y", "z"):
            assert_allclose(getattr(a, name), getattr(b, name), atol=1e-6)
        lon_a, lat_a, z_a = a.lonlat()
        lon_b, lat_b, z_b = b.lonlat()
        assert lon_a[0] == pytest.approx(lon, abs=1e-9) and lat_a[0] == pytest.approx(lat, abs=1e-9)
        assert_allclose(lon_a, lon_b, atol=1e-10)
        assert_allclose(lat_a, lat_b, atol=1e-10)
        assert_allclose(z_a, 1200.0 + a.up)


def test_explicit_local_crs_and_wkt():
    md, dip, azi = [0.0, 100.0], [-60.0, -55.0], [45.0, 50.0]
    utm = desurvey(COLLAR, md, dip, azi)
    other = desurvey(COLLAR, md, dip, azi, local_epsg=3006)  # SWEREF99 TM
    assert other.epsg == 3006
    lon_u, lat_u, _ = utm.lonlat()
    lon_o, lat_o, _ = other.lonlat()
    # Same ground trace whichever grid it was computed in (~1e-8 deg = 1 mm).
    assert_allclose(lon_o, lon_u, atol=2e-8)
    assert_allclose(lat_o, lat_u, atol=1e-8)
    wkt = utm.trace_wkt()
    assert wkt.startswith("LINESTRING Z (17.500000000 60.000000000 350.0000, ")
    line = utm.linestring()
    assert line.has_z and len(line.coords) == 2
    with pytest.raises(ValueError, match="not a projected CRS"):
        desurvey(COLLAR, md, dip, azi, local_epsg=4326)


# ------------------------------------------------------------------------ (7) batch


def test_batch_equals_per_hole():
    rng = np.random.default_rng(99)
    n_holes = 40
    lon = rng.uniform(-75.0, 30.0, n_holes)  # spans many UTM zones, both hemispheres
    lat = rng.uniform(-45.0, 70.0, n_holes)
    elev = rng.uniform(0, 3000, n_holes)
    c_dip = np.where(rng.random(n_holes) < 0.5, rng.uniform(-90, -45, n_holes), np.nan)
    c_azi = np.where(np.isfinite(c_dip), rng.uniform(0, 360, n_holes), np.nan)
    mds, dips, azis, counts, lengths = [], [], [], [], []
    for h in range(n_holes):
        n = 0 if np.isfinite(c_dip[h]) and h % 3 == 0 else int(rng.integers(1, 25))
        md, inc, azi = _random_survey(rng, max(n, 1))
        md = (md + rng.choice([0.0, 12.0]))[:n]
        mds.append(md), dips.append(inc[:n] - 90.0), azis.append(azi[:n]), counts.append(n)
        extra = rng.choice([np.nan, 30.0])
        lengths.append((md[-1] if n else 50.0) + (0.0 if np.isnan(extra) else extra))
    offsets = np.r_[0, np.cumsum(counts)]
    ids = [f"H{h}" for h in range(n_holes)]
    kw = dict(azimuth_reference="magnetic", declination=rng.uniform(-20, 20, n_holes))
    batch = desurvey_batch(
        lon, lat, elev, np.concatenate(mds), np.concatenate(dips), np.concatenate(azis), offsets,
        collar_dip=c_dip, collar_azimuth=c_azi, length=lengths, hole_ids=ids, **kw,
    )  # fmt: skip
    assert len(batch) == n_holes and len(set(batch.epsg)) > 5
    blon, blat, bz = batch.lonlat()
    dls = batch.dogleg_severity()
    for h, tr in enumerate(batch):
        given = np.isfinite(c_dip[h])
        c = Collar(
            lon[h], lat[h], elev[h],
            dip=c_dip[h] if given else None, azimuth=c_azi[h] if given else None,
            length=lengths[h], hole_id=ids[h],
        )  # fmt: skip
        one = desurvey(
            c, mds[h], dips[h], azis[h],
            azimuth_reference="magnetic", declination=kw["declination"][h],
        )  # fmt: skip
        assert tr.hole_id == one.hole_id and tr.epsg == one.epsg
        assert tr.length == pytest.approx(lengths[h])
        for name in ("md", "x", "y", "z", "east", "north", "up", "dip", "azimuth", "dogleg"):
            assert_allclose(getattr(tr, name), getattr(one, name), atol=1e-9, err_msg=name)
        sl = slice(batch.offsets[h], batch.offsets[h + 1])
        lon1, lat1, _ = one.lonlat()
        assert_allclose(blon[sl], lon1, atol=1e-12)
        assert_allclose(blat[sl], lat1, atol=1e-12)
        assert np.isnan(dls[sl][0])
        assert_allclose(dls[sl][1:], one.dogleg_severity(), atol=1e-9)


def test_offsets_core_is_segmented():
    """desurvey_offsets over ragged holes equals one call per hole."""
    rng = np.random.default_rng(4)
    holes = [_random_survey(rng, int(rng.integers(1, 30))) for _ in range(20)]
    offsets = np.r_[0, np.cumsum([h[0].size for h in holes])]
    cat = [np.concatenate([h[i] for h in holes]) for i in range(3)]
    e, n, u, dl = desurvey_offsets(*cat, offsets, convention="inclination")
    for h, (md, inc, azi) in enumerate(holes):
        sl = slice(offsets[h], offsets[h + 1])
        e1, n1, u1, dl1 = desurvey_offsets(md, inc, azi, convention="inclination")
        assert_allclose(np.c_[e[sl], n[sl], u[sl]], np.c_[e1, n1, u1], atol=1e-9)
        assert_allclose(dl[sl], dl1, atol=1e-12)


# ------------------------------------------------------------------------ edge cases


def test_cardinal_directions_are_exact():
    """sin/cos come from the half-angle tangent: check the poles and axes stay exact."""
    md = np.array([0.0, 100.0])
    cases = [(0.0, (0, 1)), (90.0, (1, 0)), (180.0, (0, -1)), (270.0, (-1, 0)), (360.0, (0, 1))]
    for azi, unit in cases:
        e, n, u, _ = desurvey_offsets(md, [0.0, 0.0], [azi, azi])
        assert_allclose([e[1], n[1], u[1]], [100 * unit[0], 100 * unit[1], 0.0], atol=1e-12)
    e, n, u, _ = desurvey_offsets(md, [-90.0, -90.0], [123.0, 321.0])
    assert_allclose([e[1], n[1], u[1]], [0.0, 0.0, -100.0], atol=1e-12)


def test_tiny_doglegs_keep_precision():
    """Doglegs of 1e-7 deg: the ratio factor is 1 and the dogleg is not lost to rounding."""
    e, n, u, dl = desurvey_offsets([0.0, 30.0], [-60.0, -60.0 + 1e-7], [45.0, 45.0])
    assert dl[1] == pytest.approx(1e-7, rel=1e-6)
    assert_allclose([e[1], n[1], u[1]], 30.0 * _unit(-60.0 + 0.5e-7, 45.0), atol=1e-12)


def test_hole_turning_back_is_refused():
    with pytest.raises(ValueError, match="turns back on itself"):
        desurvey(COLLAR, [0.0, 10.0], [-45.0, 45.0], [0.0, 180.0])
