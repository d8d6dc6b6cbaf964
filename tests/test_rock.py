"""Rock statistics: modal mineralogy, grain size, association, liberation, surface area."""

from __future__ import annotations

import numpy as np
import pytest

from mis.grains.rock import (
    BACKGROUND,
    LITHOLOGY,
    MINERAL,
    PORE_EPOXY,
    ClassInfo,
    LiberationClasses,
    LogHistogram,
    RockAccumulator,
    association_shares,
    edge_counts,
    liberation_spectrum,
    modal_mineralogy,
    propose_lithology,
    surface_area,
    tile_edges,
    weighted_percentiles,
)

CLASSES = [
    ClassInfo(0, BACKGROUND, 1, "segmentation-class", "background"),
    ClassInfo(1, MINERAL + "quartz", 2, "mineral", "quartz", "Qz", 2.65),
    ClassInfo(2, MINERAL + "chalcopyrite", 3, "mineral", "chalcopyrite", "Ccp", 4.19, mineral_class="sulfide"),
    ClassInfo(3, PORE_EPOXY, 4, "segmentation-class", "pore / epoxy"),
]


def test_modal_mineralogy_leaves_out_non_minerals_and_weights_by_density():
    area, wt = modal_mineralogy(np.array([1000, 300, 100, 50]), CLASSES)
    assert area == pytest.approx({1: 0.75, 2: 0.25})
    m = {1: 0.75 * 2.65, 2: 0.25 * 4.19}
    assert wt == pytest.approx({i: v / sum(m.values()) for i, v in m.items()})
    nodens = [CLASSES[0], ClassInfo(1, MINERAL + "x", 9, "mineral", "x")]
    assert modal_mineralogy(np.array([5, 5]), nodens)[1] is None


def test_log_histogram_percentiles_are_within_half_a_percent():
    rng = np.random.default_rng(0)
    ecd = rng.lognormal(3, 1, 5000)
    area = np.pi * (ecd / 2) ** 2
    h = LogHistogram(2)
    h.add(np.ones(ecd.size, int), ecd, area)
    for weight, w in (("area", area), ("number", np.ones_like(area))):
        got = h.percentiles(1, (10, 50, 90), weight)
        ref = weighted_percentiles(ecd, w, (10, 50, 90))
        np.testing.assert_allclose(got, ref, rtol=0.011)
    assert h.percentiles(0, (50,)) == [None]


def test_edges_and_association():
    v = np.array([[1, 1, 2],
                  [1, 2, 2],
                  [0, 0, 2]])
    e = tile_edges(v, 4)
    assert e[1, 2] == e[2, 1] == 3 and e[1, 0] == 1 and e[2, 0] == 2
    shares = association_shares(e, CLASSES)
    assert shares[MINERAL + "quartz"] == pytest.approx({MINERAL + "chalcopyrite": 0.75, BACKGROUND: 0.25})
    assert shares[MINERAL + "chalcopyrite"] == pytest.approx({MINERAL + "quartz": 0.6, BACKGROUND: 0.4})
    np.testing.assert_array_equal(edge_counts(v[:, 1], v[:, 2], 4), tile_edges(v, 4) - tile_edges(v[:, :2], 4)
                                  - tile_edges(v[:, 2:], 4))


def test_surface_area_of_a_square_grain():
    v = np.zeros((20, 20), dtype=int)
    v[5:15, 5:15] = 2  # a 10 x 10 px chalcopyrite square in background
    e = tile_edges(v, 4)
    px = np.bincount(v.ravel(), minlength=4)
    sa = surface_area(e, px, 2.0, CLASSES)[MINERAL + "chalcopyrite"]
    assert sa["sv_per_um"] == pytest.approx(40 * 2.0 / (100 * 4.0))  # boundary / area = 4 / side
    assert sa["ssa_m2_g"] == pytest.approx(sa["sv_per_um"] / 4.19)


def test_liberation_spectrum_by_particle_area():
    mineral = np.array([10.0, 50.0, 100.0, 0.0, 5.0])
    particle = np.array([100.0, 100.0, 100.0, 80.0, 50.0])
    s = liberation_spectrum(mineral, particle)
    # shares 0.1 (locked), 0.5 (middling), 1.0 (liberated), 0.1 (locked)
    assert s["area_share"] == pytest.approx({"locked": 15 / 165, "middling": 50 / 165, "liberated": 100 / 165})
    assert s["particles"] == {"locked": 2, "middling": 1, "liberated": 1} and s["n_particles"] == 4
    custom = LiberationClasses(bounds=(0.3, 0.6, 0.9), names=("a", "b", "c", "d"))
    assert liberation_spectrum(mineral, particle, custom)["particles"] == {"a": 2, "b": 1, "c": 0, "d": 1}
    with pytest.raises(ValueError):
        LiberationClasses(bounds=(0.5,), names=("x",))


def test_lithology_rule():
    q, kf, pl = MINERAL + "quartz", MINERAL + "k-feldspar", MINERAL + "plagioclase"
    assert propose_lithology({q: 0.3, kf: 0.35, pl: 0.3, MINERAL + "biotite": 0.05}) == LITHOLOGY + "monzogranite"
    assert propose_lithology({q: 0.3, pl: 0.6, MINERAL + "hornblende": 0.1}) == LITHOLOGY + "tonalite"
    assert propose_lithology({q: 0.02, pl: 0.5, kf: 0.02, MINERAL + "augite": 0.46}) == LITHOLOGY + "diorite"
    assert propose_lithology({MINERAL + "dolomite": 0.7, MINERAL + "calcite": 0.2, q: 0.1}) == LITHOLOGY + "dolostone"
    assert propose_lithology({MINERAL + "pyrite": 0.6, q: 0.4}) is None
    assert propose_lithology({}) is None


def test_accumulator_puts_it_together():
    acc = RockAccumulator(CLASSES, 0.5, liberation_minerals=[2])
    v = np.zeros((20, 20), dtype=int)
    v[2:10, 2:10] = 1
    v[10:14, 2:10] = 2
    acc.add_pixels(np.bincount(v.ravel(), minlength=4))
    acc.add_edges(tile_edges(v, 4))
    acc.add_grains(np.array([1, 2]), np.array([4.5, 2.2]), np.array([16.0, 8.0]))
    acc.add_particles(np.array([[0, 64, 32, 0]]))
    r = acc.result()
    assert r.area_fraction == pytest.approx({MINERAL + "quartz": 2 / 3, MINERAL + "chalcopyrite": 1 / 3})
    assert sum(r.wt_fraction.values()) == pytest.approx(1.0)
    assert r.grain_size[MINERAL + "quartz"]["n"] == 1
    assert r.grain_size[MINERAL + "quartz"]["d50_um"] == pytest.approx(4.5, rel=0.01)
    assert r.liberation["minerals"][MINERAL + "chalcopyrite"]["area_share"]["middling"] == pytest.approx(1.0)
    assert r.association["boundary_share"][MINERAL + "chalcopyrite"][MINERAL + "quartz"] == pytest.approx(8 / 24)
    assert r.lithology_uri is None and r.lithology_source is None
    assert acc.result(lithology_uri=LITHOLOGY + "granite").lithology_source == "user"
    assert [c[0] for c in r.constituents()] == [MINERAL + "quartz", MINERAL + "chalcopyrite"]
