"""Class-map cleaning: small components absorbed, boundary cuts, minimum grain size, and
chunk-by-chunk processing equal to the whole image."""

from __future__ import annotations

import numpy as np
import pytest

from mis.grains.cleaning import (
    DEFAULT_MIN_GRAIN_PX,
    RAW_COMPONENTS,
    BadValue,
    GrainRules,
    clean_chunked,
    clean_image,
    describe_rules,
)
from mis.grains.labelling import label_image
from mis.grains.metrics import measure_grains

from tests.test_labelling import blobs

FORMS = [False, True, True, True]  # class 0: background (boundary evidence), 1-3 minerals
P = 1.0


def grains(values, cut):
    return label_image(np.where(cut, 0, values), ignore=[0])


def two_grains(line_value: int = 0, right: int = 1, gaps=()) -> np.ndarray:
    """Two 20 x 20 grains side by side (classes 1 and ``right``) with a 1-px boundary line
    of ``line_value`` between them, missing at the rows ``gaps``."""
    a = np.full((30, 51), 0, dtype=np.uint8)
    a[5:25, 5:25] = 1
    a[5:25, 26:46] = right
    a[5:25, 25] = line_value
    for g in gaps:
        a[5 + g, 25] = 1
    return a


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("rules", [GrainRules(), GrainRules(min_area_um2=6.0, bridge_px=1, fill_px=1),
                                   GrainRules(split=False), GrainRules(min_area_um2=0.0)],
                         ids=["default", "small", "no-split", "split-only"])
def test_chunked_cleaning_equals_the_whole_image(seed, rules):
    a = blobs((61, 93), 4, seed=seed, sigma=2.5, noise=0.06)
    rng = np.random.default_rng(seed)
    prob = np.where(rng.random(a.shape) < 0.15, rng.uniform(0.2, 0.5, a.shape), rng.uniform(0.6, 1.0, a.shape))
    for p in (None, prob.astype(np.float32)):
        whole = clean_image(a, FORMS, rules, P, p)
        assert (whole[0] != a).any() and (rules.split is False or whole[1].any())
        for tile in ((11, 13), (32, 48)):
            chunked = clean_chunked(a, tile, FORMS, rules, P, p)
            np.testing.assert_array_equal(chunked[0], whole[0], err_msg=f"classes, tile {tile}")
            np.testing.assert_array_equal(chunked[1], whole[1], err_msg=f"cuts, tile {tile}")


def test_specks_and_small_components_take_the_class_around_them():
    a = np.full((40, 40), 1, dtype=np.uint8)
    a[:, 20:] = 2
    a[10, 5] = 3  # a speck in grain 1
    a[30:33, 30:33] = 0  # a 9 px pore in grain 2
    a[19:21, 19:21] = 3  # 4 px on the boundary: 2 edges to class 1, 4 to class 2 ... ties go low
    a[0:6, 0:6] = 3  # 36 px: a grain, kept
    cleaned, cut = clean_image(a, FORMS, GrainRules(split=False), P)
    assert cleaned[10, 5] == 1 and (cleaned[30:33, 30:33] == 2).all()
    assert set(np.unique(cleaned[19:21, 19:21])) <= {1, 2}
    assert (cleaned[0:6, 0:6] == 3).all() and not cut.any()
    g = grains(cleaned, cut)
    assert g.max() == 3 and np.bincount(g.ravel())[1:].min() >= DEFAULT_MIN_GRAIN_PX


def test_uncertain_blobs_up_to_three_times_the_cut_off_are_noise():
    a = np.full((40, 40), 1, dtype=np.uint8)
    a[10:16, 10:16] = 2  # 36 px: above the cut-off of 16 px
    a[25:31, 25:31] = 3
    prob = np.full(a.shape, 0.9, np.float32)
    prob[10:16, 10:16] = 0.4  # the classifier was unsure of the class-2 blob, sure of the class-3 one
    cleaned, _ = clean_image(a, FORMS, GrainRules(fill_px=0), P, prob)
    assert (cleaned[10:16, 10:16] == 1).all() and (cleaned[25:31, 25:31] == 3).all()


def test_a_boundary_line_splits_two_grains_of_one_mineral_even_with_gaps():
    for gaps in ((), (3,), (3, 9, 10, 15)):
        cleaned, cut = clean_image(two_grains(gaps=gaps), FORMS, GrainRules(), P)
        g = grains(cleaned, cut)
        assert g.max() == 2, gaps
        # the line's pixels are mineral again (modal %); only its centre line is cut
        assert (cleaned[5:25, 25] == 1).all() and cut[5:25, 25].all() and cut.sum() == 20
    # without splitting, one grain; with raw components the gapped line leaks too
    cleaned, cut = clean_image(two_grains(gaps=(3,)), FORMS, GrainRules(split=False), P)
    assert grains(cleaned, cut).max() == 1
    assert label_image(two_grains(gaps=(3,)), ignore=[0]).max() == 1


def test_a_line_between_two_minerals_goes_to_the_grains_uncut():
    cleaned, cut = clean_image(two_grains(right=2), FORMS, GrainRules(), P)
    assert not cut.any() and set(np.unique(cleaned[6:24, 25])) <= {1, 2}
    areas = np.bincount(grains(cleaned, cut).ravel())[1:]
    # every line pixel joins a grain but the two ends, which meet the background around
    assert areas.size == 2 and areas.min() >= 400 and areas.sum() == 818


def test_low_probability_pixels_are_a_boundary_too():
    a = two_grains(line_value=1)  # the classifier called the line quartz, but was unsure
    prob = np.full(a.shape, 0.95, np.float32)
    prob[5:25, 25] = 0.35
    cleaned, cut = clean_image(a, FORMS, GrainRules(), P, prob)
    assert grains(cleaned, cut).max() == 2
    cleaned, cut = clean_image(a, FORMS, GrainRules(confidence=0.0), P, prob)  # probability ignored
    assert grains(cleaned, cut).max() == 1


def test_a_pore_is_no_boundary_line():
    a = np.full((40, 60), 1, dtype=np.uint8)
    a[10:30, 25:35] = 0  # a 10 px wide pore inside one grain
    cleaned, cut = clean_image(a, FORMS, GrainRules(), P)
    assert (cleaned[10:30, 25:35] == 0).all() and not cut.any()
    assert grains(cleaned, cut).max() == 1


def test_raw_components_are_untouched_and_grains_measure_alike():
    a = blobs((50, 70), 4, seed=5, noise=0.05)
    cleaned, cut = clean_image(a, FORMS, RAW_COMPONENTS, P)
    np.testing.assert_array_equal(cleaned, a)
    assert not cut.any() and RAW_COMPONENTS.halo(P) == 0
    raw = measure_grains(a, (16, 16), P, ignore=[0])
    ruled = measure_grains(a, (16, 16), P, ignore=[0], rules=GrainRules())
    cleaned, cut = clean_image(a, FORMS, GrainRules(), P)
    assert len(ruled) == grains(cleaned, cut).max() < len(raw)
    assert ruled.count.min() >= DEFAULT_MIN_GRAIN_PX


def test_rules_are_validated_and_stated():
    with pytest.raises(ValueError, match="minimum grain area must be a finite number"):
        GrainRules(min_area_um2=-1)
    with pytest.raises(ValueError, match="bridge_px must be an integer"):
        GrainRules(bridge_px=99)
    with pytest.raises(ValueError, match="confidence must be a probability"):
        GrainRules(confidence=1.5)
    r = GrainRules(min_area_um2=10.0)
    assert r.min_px(0.5) == 40 and r.min_px(5.0) == 1 and not GrainRules(min_area_um2=1, split=False).active(5.0)
    d = GrainRules().parameters(2.0)
    assert (d["min_grain_area_um2"], d["min_grain_px"], d["split"]) == (64.0, 16, True)
    assert d["min_grain_area_source"].startswith("default")
    assert "minimum grain area 64 µm² (16 px, default)" in describe_rules(d)
    assert "not touching the image border" in describe_rules(d)
    assert "raw 4-connected components" in describe_rules(RAW_COMPONENTS.parameters(2.0))
    with pytest.raises(BadValue, match=r"class value 9 is outside the class list \(0..3\)"):
        clean_image(np.full((4, 4), 9, np.uint8), FORMS, GrainRules(), P)


def test_a_thin_sliver_beside_a_cut_is_no_grain():
    a = two_grains()
    a[5:25, 27] = 0  # a second line: a strip 1 px wide (20 px) between two cuts
    cleaned, cut = clean_image(a, FORMS, GrainRules(), P)
    g = grains(cleaned, cut)
    assert g.max() == 2 and cut[5:25, 26].all() and (cleaned[5:25, 26] == 1).all()
    b = two_grains()
    b[5:25, 30] = 0  # a strip 4 px wide, 80 px: a grain
    cleaned, cut = clean_image(b, FORMS, GrainRules(), P)
    assert grains(cleaned, cut).max() == 3

