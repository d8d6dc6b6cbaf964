"""Filter bank: seams (halo), sanity of the filters, config round trip, synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from mis.segment.config import FILTERS, FeatureConfig
from mis.segment.filters import compute_features, compute_features_tiled, feature_names, halo
from mis.segment.synthetic import synthetic_multispectral, synthetic_section


@pytest.fixture(scope="module")
def section():
    return synthetic_section((300, 300), n_classes=5, seed=3)


@pytest.mark.parametrize("derivatives", ["kernel", "difference"])
def test_halo_tiles_equal_whole_image(section, derivatives):
    """Features on tiles read with `halo` pixels of real neighbours == whole image."""
    cfg = FeatureConfig.ilastik(derivatives=derivatives)
    # st_eig at sigma 10: ceil(4*10) + ceil(4*5), + 1 for central differences
    assert halo(cfg) == 40 + 20 + (derivatives == "difference")
    whole, names = compute_features(section.image, cfg)
    tiled, names2 = compute_features_tiled(section.image, cfg, tile=(128, 96))
    assert names == names2 and whole.shape == (len(names), 300, 300)
    np.testing.assert_allclose(tiled.numpy(), whole.numpy(), rtol=0, atol=1e-5)


def test_halo_is_needed():
    """With a halo one pixel short the seams show: the halo is tight, not generous."""
    cfg = FeatureConfig(filters={"gaussian": (3.5,)}, include_raw=False)
    h = halo(cfg)
    assert h == 14
    x = torch.rand(1, 300, 300)
    x[:, 100 - h, :] = 1e4  # a bright line exactly `halo` rows above the tile
    whole, _ = compute_features(x, cfg)
    short, _ = compute_features(x[:, 100 - (h - 1) : 200 + h - 1, 100 - (h - 1) : 200 + h - 1], cfg)
    assert (short[:, h - 1 : h - 1 + 100, h - 1 : h - 1 + 100] - whole[:, 100:200, 100:200]).abs().max() > 1e-3
    tile, _ = compute_features(x[:, 100 - h : 200 + h, 100 - h : 200 + h], cfg)
    assert torch.allclose(tile[:, h : h + 100, h : h + 100], whole[:, 100:200, 100:200], rtol=0, atol=1e-4)


def test_gaussian_of_constant_is_constant():
    img = torch.full((2, 40, 50), 0.37)
    cfg = FeatureConfig.ilastik(include_raw=False)
    f, names = compute_features(img, cfg)
    for i, n in enumerate(names):
        want = 0.37 if n.startswith("gaussian") else 0.0
        assert torch.allclose(f[i], torch.full_like(f[i], want), atol=1e-5), n


@pytest.mark.parametrize("derivatives", ["kernel", "difference"])
def test_gradient_of_ramp(derivatives):
    """A ramp of slope 0.01 along x: gradient magnitude 0.01, LoG/Hessian 0, in the
    interior (reflection bends the ramp at the borders)."""
    h, w = 64, 96
    ramp = (torch.arange(w, dtype=torch.float32) * 0.01).expand(h, w).clone()
    sig = (1.0, 3.5)
    cfg = FeatureConfig(filters={"gradmag": sig, "log": sig, "hess_eig": sig, "gaussian": sig},
                        include_raw=False, derivatives=derivatives)
    f, names = compute_features(ramp, cfg)
    r = halo(cfg)
    inner = (slice(None), slice(r, h - r), slice(r, w - r))
    for i, n in enumerate(names):
        v = f[i][inner[1:]]
        if n.startswith("gradmag"):
            assert torch.allclose(v, torch.full_like(v, 0.01), atol=1e-6), n
        elif n.startswith("gaussian"):
            assert torch.allclose(v, ramp[inner[1:]], atol=1e-5), n
        else:
            assert v.abs().max() < 1e-6, n


def test_matches_scipy_gaussian_and_laplace():
    rng = np.random.default_rng(0)
    img = rng.random((1, 70, 80)).astype(np.float32)
    # sigma 2: scipy's radius int(4 * 2 + 0.5) and ours ceil(4 * 2) agree
    cfg = FeatureConfig(filters={"gaussian": (2.0,), "log": (2.0,), "gradmag": (2.0,)}, include_raw=False)
    f, _ = compute_features(img, cfg)
    kw = dict(mode="mirror", truncate=4.0)  # scipy 'mirror' == torch 'reflect'
    g = ndi.gaussian_filter(img[0].astype(np.float64), 2.0, **kw)
    log = ndi.gaussian_laplace(img[0].astype(np.float64), 2.0, **kw)
    gm = ndi.gaussian_gradient_magnitude(img[0].astype(np.float64), 2.0, **kw)
    np.testing.assert_allclose(f[0].numpy(), g, atol=1e-5)
    # scipy's derivative kernels are not renormalised: agree to ~1 % of the range
    assert np.abs(f[1].numpy() - log).max() < 0.02 * np.abs(log).max()
    assert np.abs(f[2].numpy() - gm).max() < 0.02 * np.abs(gm).max()


def test_eigenvalues_of_disk_and_conv_path():
    """Bright disk: Hessian eigenvalues ordered, structure tensor >= 0; the conv2d path
    (used on CUDA) equals the shift-and-add path."""
    yy, xx = np.mgrid[:60, :60]
    img = ((yy - 30) ** 2 + (xx - 30) ** 2 < 100).astype(np.float32)
    cfg = FeatureConfig(filters={"hess_eig": (1.0, 3.5), "st_eig": (1.6,)}, include_raw=False)
    f, names = compute_features(img, cfg)
    fc, _ = compute_features(img, cfg, method="conv")
    assert torch.allclose(f, fc, atol=1e-5)
    assert names[:2] == ["st_eig1_s1.6_b0", "st_eig2_s1.6_b0"]
    assert (f[0] >= f[1]).all() and (f[2] >= f[3]).all() and (f[4] >= f[5]).all()
    assert f[1].min() > -1e-6  # the structure tensor is positive semi-definite
    assert f[4][30, 30] < 0 and f[5][30, 30] < 0  # centre of a bright blob: both curvatures < 0


def test_grey_rgb_nband_and_names():
    cfg = FeatureConfig(filters={"gaussian": (1.0,), "st_eig": (1.0,)})
    for c in (1, 3, 5):
        img = np.random.default_rng(c).integers(0, 4096, (c, 20, 30)).astype(np.uint16)
        f, names = compute_features(img if c > 1 else img[0], cfg)
        assert f.dtype == torch.float32 and f.shape == (c * 4, 20, 30)
        assert names == feature_names(cfg, c) and len(set(names)) == len(names)
        assert f.max() <= 1.0 + 1e-6  # uint16 scaled to [0, 1]
    assert names[0] == "raw_b0" and "st_eig2_s1_b4" in names


def test_small_image_large_sigma():
    """Reflection folds when the image is smaller than the kernel."""
    f, _ = compute_features(torch.rand(1, 7, 9), FeatureConfig.ilastik())
    assert torch.isfinite(f).all()


def test_config_json_round_trip_and_validation():
    cfg = FeatureConfig(filters={"st_eig": [3.5, 1.0], "gaussian": (1,)}, st_outer_ratio=2.0)
    assert list(cfg.filters) == ["gaussian", "st_eig"] and cfg.filters["st_eig"] == (1.0, 3.5)
    again = FeatureConfig.from_json(cfg.to_json())
    assert again == cfg and halo(again) == halo(cfg) == 14 + 28
    assert set(FeatureConfig().filters) == set(FILTERS)
    with pytest.raises(ValueError, match="unknown filter"):
        FeatureConfig(filters={"sobel": (1.0,)})
    with pytest.raises(ValueError, match="> 0"):
        FeatureConfig(filters={"gaussian": (0.0,)})


def test_synthetic_generators_deterministic():
    a = synthetic_section((96, 128), n_classes=4, seed=7)
    b = synthetic_section((96, 128), n_classes=4, seed=7)
    assert a.image.shape == (3, 96, 128) and a.image.dtype == np.uint8
    assert np.array_equal(a.image, b.image) and np.array_equal(a.scribbles, b.scribbles)
    assert set(np.unique(a.truth)) == {1, 2, 3, 4}
    assert 0 < a.scribble_fraction <= 0.01
    lab = a.scribbles > 0
    assert np.array_equal(a.scribbles[lab], a.truth[lab])  # scribbles are correct labels
    m = synthetic_multispectral((128, 128), n_bands=6, n_classes=3, seed=1)
    assert m.image.shape == (6, 128, 128) and m.image.dtype == np.uint16 and m.image.max() < 4096
    assert {int(v) for v in np.unique(m.scribbles)} == {0, 1, 2, 3}
