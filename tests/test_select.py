"""`--features auto`: strokes, folds, union columns, and a choice that follows the data;
and the second section generator the suite is built on."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from mis.segment.config import FeatureConfig
from mis.segment.filters import compute_features
from mis.segment.select import (
    CANDIDATES,
    _fold_plan,
    candidate_columns,
    select_features,
    stroke_groups,
    union_config,
)
from mis.segment.varied import QUICK_SUITE, SUITE, Phase, SectionSpec, make_section


def _positions(mask: np.ndarray, image: int = 0) -> np.ndarray:
    r, c = np.nonzero(mask)
    return np.stack([np.full_like(r, image), r, c], 1)


def test_strokes_are_8_connected_components_per_image():
    m = np.zeros((20, 30), bool)
    m[2, 2:10] = True  # a horizontal stroke
    m[3:8, 10] = True  # touching it diagonally: the same stroke
    m[15, 15:25] = True  # another
    m[0, 29] = True  # a lone pixel
    pos = np.concatenate([_positions(m, 0), _positions(m, 1)])
    g = stroke_groups(pos)
    assert len(np.unique(g)) == 6  # 3 per image, images never joined
    first = g[: m.sum()]
    r, c = np.nonzero(m)
    assert len({first[i] for i in np.flatnonzero(((r == 2) & (c < 10)) | (c == 10))}) == 1


def test_folds_keep_strokes_whole_and_cut_a_lone_stroke():
    m = np.zeros((60, 60), bool)
    for row in range(2, 60, 6):
        m[row, 5:40] = True  # 10 strokes of class 1
    lone = np.zeros_like(m)
    lone[50:52, 45:59] = True  # class 2 has one stroke only
    m[50:52] = False
    pos = np.concatenate([_positions(m), _positions(lone)])
    y = np.concatenate([np.ones(m.sum(), np.int64), np.full(lone.sum(), 2)])
    g = stroke_groups(pos)
    fold = _fold_plan(g, y, pos, 4, np.random.default_rng(0))
    for s in np.unique(g[y == 1]):
        assert len(np.unique(fold[g == s])) == 1  # whole strokes
    assert set(fold[y == 1]) == {0, 1, 2, 3}
    assert set(fold[y == 2]) == {0, 1, 2, 3}  # the lone stroke cut into 4 pieces


def test_candidate_columns_of_the_union_are_the_candidates_own_features():
    img = np.random.default_rng(1).integers(0, 255, (2, 70, 90), dtype=np.uint8)
    union = union_config(CANDIDATES)
    fu, _ = compute_features(img, union)
    for cfg in CANDIDATES.values():
        f, _ = compute_features(img, cfg)
        assert torch.equal(fu[candidate_columns(cfg, union, 2)], f)


def test_union_refuses_candidates_with_other_global_settings():
    other = FeatureConfig(filters={"gaussian": (2.0,)}, include_raw=False, truncate=4.0)
    with pytest.raises(ValueError, match="global feature settings"):
        union_config({**CANDIDATES, "other": other})


def _select(sec, candidates):
    union = union_config(candidates)
    f, _ = compute_features(sec.image, union)
    m = sec.scribbles > 0
    X = f[:, torch.from_numpy(m)].T.contiguous()
    y = torch.from_numpy(sec.scribbles[m].astype(np.int64))
    return select_features(X, y, _positions(m), sec.image.shape[0], candidates)


def test_auto_needs_texture_where_colour_cannot_tell_and_not_where_it_can():
    # two phases of the same grey, one mottled at 3 px: colour alone cannot separate them
    pair = SectionSpec("t", "texture pair", (Phase((0.5,), "flat"), Phase((0.5,), "band", 3.0, 0.08),
                                             Phase((0.8,))), seed=5, grain_size=40, noise=0.01,
                       scribble_fraction=0.01)
    sel = _select(make_section(pair, (256, 256)), CANDIDATES)
    assert sel.name != "colour" and sel.scores[sel.name] > sel.scores["colour"] + 0.05
    assert sel.strokes >= 6 and sel.folds == 4
    # phases that differ by grey level only: the cheapest candidate is as good as any
    flat = replace(pair, phases=(Phase((0.2,)), Phase((0.5,)), Phase((0.8,))))
    assert _select(make_section(flat, (256, 256)), CANDIDATES).name == "colour"


def test_varied_sections_are_deterministic_and_scribbled_as_specified():
    assert len(SUITE) >= 12 and len({s.seed for s in SUITE}) == len(SUITE)
    assert {s.n_bands for s in SUITE} >= {1, 3, 6, 8}
    spec = QUICK_SUITE[1]
    a, b = make_section(spec, (192, 160)), make_section(spec, (192, 160))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.scribbles, b.scribbles)
    assert a.image.dtype == np.uint16 and a.image.shape == (6, 192, 160) and a.image.max() <= 4095
    assert set(np.unique(a.truth)) == set(range(1, len(spec.phases) + 1))
    assert 0 < a.scribble_fraction <= spec.scribble_fraction * 1.01
    lab = a.scribbles > 0
    assert np.array_equal(a.scribbles[lab], a.truth[lab])  # strokes never cross a boundary


def test_a_class_only_inside_another_class_stroke_does_not_break_the_folds():
    pos = _positions(np.ones((3, 12), bool))
    y = np.ones(len(pos), np.int64)
    y[5] = 2  # one pixel of class 2, inside a class-1 stroke
    far = _positions(np.ones((2, 8), bool))
    far[:, 1] += 20
    pos, y = np.concatenate([pos, far]), np.concatenate([y, np.full(len(far), 3)])
    fold = _fold_plan(stroke_groups(pos), y, pos, 4, np.random.default_rng(1))
    assert (fold >= 0).all() and set(fold) == {0, 1, 2, 3}
