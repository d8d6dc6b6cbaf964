"""Pixel classifiers on feature tensors: random forest on tensors, torch MLP,
MultiGaussian maximum likelihood.

Common interface (:class:`PixelClassifier`)::

    clf = RandomForestPixelClassifier(classes=[uri1, uri2, ...], feature_config=cfg)
    clf.fit(X, y)                      # X (N, F) features, y (N,) labels 1..K (0 dropped)
    proba = clf.predict_proba(feats)   # feats (F, H, W) tensor -> (K, H, W) float32
    labels = clf.predict(feats)        # (H, W) int64, 1..K
    clf.save("model.pt"); clf2 = load_classifier("model.pt")

Labels are 1-based: label ``k`` is ``classes[k - 1]`` (a concept URI), 0 is
"unlabelled" and is ignored by ``fit``. Probability channel ``k - 1`` is class ``k``.
Features are taken *feature-major* (F, H, W) or (F, N), the layout the filter bank
produces, so prediction never transposes the feature stack.

* :class:`RandomForestPixelClassifier` -- trains scikit-learn's
  ``RandomForestClassifier`` (the seed method), then converts the fitted trees into
  flat node tables (feature, float32 threshold rounded down so that ``x <= t`` is
  decided exactly as scikit-learn decides it in float32, adjacent children, leaves that
  loop onto themselves, leaf class fractions) and predicts with tensor ops: all trees
  and a chunk of pixels advance one level per step with ``gather``. Probabilities equal
  ``predict_proba`` of the scikit-learn forest to float32 rounding. ``backend``:
  ``eager`` (plain torch ops), ``compile`` (the same function through
  ``torch.compile``: one fused loop per chunk, several times faster on CPU; compiling
  takes seconds per new forest shape), ``auto`` (compile for inputs of >= 4 Mpixel when
  a C++ compiler or CUDA is there, eager otherwise; falls back to eager if compiling
  fails).
* :class:`MLPPixelClassifier` -- a small fully connected network (standardised
  inputs, ReLU, class-balanced cross-entropy, Adam), deterministic for a seed.
* :class:`MultiGaussianClassifier` -- per class mean and full covariance,
  log-likelihood plus log prior, posterior by softmax (seed 000: multispectral bands).

File format (``save``/``load_classifier``): ``torch.save`` of a plain dict -- only
str/int/float/bool/None, lists, dicts and tensors -- read back with
``torch.load(weights_only=True)``, which refuses anything else, so loading a model
file cannot run code (unlike a pickle of a scikit-learn estimator). Keys: ``format``
(``"mis-pixel-classifier"``), ``format_version`` (:data:`FORMAT_VERSION`), ``kind``,
``classes``, ``feature_config`` (FeatureConfig as JSON dict), ``feature_names``,
``params`` (hyper-parameters), ``metadata`` (training: sample counts per class, time,
library versions, ...) and ``state`` (tensors). The random forest is stored as its node
tables, which reproduce ``predict_proba`` exactly; the scikit-learn object itself is not
stored.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from mis.imagery.chunks import halo_tiles
from mis.segment.config import FeatureConfig
from mis.segment.device import pick_device
from mis.segment.filters import compute_features, feature_align, halo, prepare_image
from mis.segment.forest import TensorForest

__all__ = [
    "FORMAT_VERSION",
    "MLPPixelClassifier",
    "MultiGaussianClassifier",
    "PixelClassifier",
    "RandomForestPixelClassifier",
    "argmax_labels",
    "library_version",
    "load_classifier",
    "predict_image",
    "training_data",
]

FORMAT = "mis-pixel-classifier"
FORMAT_VERSION = 1
#: pixels per forest traversal step on the CPU: trees x pixels int64 node indices stay in
#: the cache (4096: 2.6x faster than 65536 for 16 trees; a GPU wants large chunks)
FOREST_CHUNK_CPU = 4096
ArrayLike = np.ndarray | torch.Tensor


def training_data(features: torch.Tensor, labels: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Labelled pixels of a feature stack: features (F, H, W), labels (H, W) with 0 =
    unlabelled -> X (N, F) float32, y (N,) int64 (labels 1..K), on the features' device."""
    lab = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
    if lab.shape != features.shape[1:]:
        raise ValueError(f"labels shape {tuple(lab.shape)} != feature image shape {tuple(features.shape[1:])}")
    lab = lab.to(features.device).reshape(-1).long()
    idx = torch.nonzero(lab > 0).squeeze(1)
    X = features.reshape(features.shape[0], -1).index_select(1, idx).T.contiguous()
    return X.float(), lab[idx]


def argmax_labels(proba: torch.Tensor) -> torch.Tensor:
    """``proba.argmax(0) + 1`` for (K, ...) probabilities, as K elementwise passes:
    torch's argmax over a leading dimension is a slow strided reduction on CPU."""
    best = proba[0].clone()
    lab = torch.ones(proba.shape[1:], dtype=torch.int64, device=proba.device)
    for k in range(1, proba.shape[0]):
        m = proba[k] > best
        best = torch.where(m, proba[k], best)
        lab.masked_fill_(m, k + 1)
    return lab


def _softmax0(z: torch.Tensor) -> torch.Tensor:
    """Softmax over dim 0 of (K, n) as K-long elementwise loops (torch's softmax over a
    leading dimension is a slow strided reduction on CPU)."""
    m = z[0].clone()
    for k in range(1, z.shape[0]):
        torch.maximum(m, z[k], out=m)
    e = torch.exp(z - m)
    tot = e[0].clone()
    for k in range(1, z.shape[0]):
        tot += e[k]
    return e.div_(tot)


def library_version(distribution: str) -> str:
    """A library's version from its installed metadata (``importlib.metadata``):
    importing scikit-learn just to read ``__version__`` costs seconds at start-up."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def _plain(v: Any) -> Any:
    """Metadata to plain JSON-like python types (safe for weights_only loading)."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, np.ndarray):
        return _plain(v.tolist())
    if isinstance(v, str):
        return str(v)  # also str subclasses such as torch's TorchVersion
    if v is None or isinstance(v, (int, float, bool)):
        return v
    return str(v)


def _as_xy(X: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    Xn = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
    yn = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if Xn.ndim != 2 or yn.ndim != 1 or len(Xn) != len(yn):
        raise ValueError(f"fit wants X (N, F) and y (N,), got {Xn.shape} and {yn.shape}")
    keep = yn > 0
    return np.ascontiguousarray(Xn[keep], dtype=np.float32), yn[keep].astype(np.int64)


class PixelClassifier:
    """Base class: classes (concept URIs), the feature config the features came from,
    training metadata, and the fit / predict_proba / predict / save interface."""

    kind: ClassVar[str] = ""
    _registry: ClassVar[dict[str, type[PixelClassifier]]] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.kind:
            PixelClassifier._registry[cls.kind] = cls

    def __init__(
        self,
        classes: Sequence[str],
        feature_config: FeatureConfig | None = None,
        feature_names: Sequence[str] | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        classes = [str(c) for c in classes]
        if len(classes) < 2 or len(set(classes)) != len(classes) or not all(classes):
            raise ValueError(f"classes must be >= 2 distinct non-empty strings, got {classes}")
        self.classes = classes
        self.feature_config = feature_config
        self.feature_names = list(feature_names) if feature_names is not None else None
        self.metadata: dict[str, Any] = {}
        self.device = pick_device(device) if device is not None else None
        self.n_features: int | None = None

    # -- helpers
    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def _check_y(self, y: np.ndarray) -> None:
        if y.size == 0:
            raise ValueError("no labelled samples (all labels are 0)")
        if y.min() < 1 or y.max() > self.n_classes:
            raise ValueError(f"labels must be in 1..{self.n_classes} (0 = unlabelled), got {y.min()}..{y.max()}")

    def _record_fit(self, X: np.ndarray, y: np.ndarray, **extra: Any) -> None:
        if self.feature_names is not None and len(self.feature_names) != X.shape[1]:
            raise ValueError(f"{len(self.feature_names)} feature names for {X.shape[1]} features")
        self.n_features = int(X.shape[1])
        counts = np.bincount(y, minlength=self.n_classes + 1)[1:]
        self.metadata.update(
            n_samples=int(len(y)),
            # _check_y ran first: labels 1..K, so one count per class
            class_counts={c: int(n) for c, n in zip(self.classes, counts, strict=True)},
            n_features=self.n_features,
            fitted_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            torch_version=torch.__version__,
            sklearn_version=library_version("scikit-learn"),
            **_plain(extra),
        )

    def _flat(self, features: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        if not isinstance(features, torch.Tensor):
            features = torch.as_tensor(np.asarray(features))
        if self.n_features is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted")
        if features.ndim not in (2, 3) or features.shape[0] != self.n_features:
            raise ValueError(
                f"features must be (F, H, W) or (F, N) with F = {self.n_features}, got {tuple(features.shape)}"
            )
        if self.device is not None:
            features = features.to(self.device)
        return features.reshape(features.shape[0], -1).float(), tuple(features.shape[1:])

    # -- interface
    def fit(self, X: ArrayLike, y: ArrayLike) -> PixelClassifier:
        raise NotImplementedError

    def to(self, device: torch.device | str) -> PixelClassifier:
        """Move the fitted state to ``device``; returns self."""
        raise NotImplementedError

    def _predict_flat(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def predict_proba(self, features: torch.Tensor) -> torch.Tensor:
        """Class probabilities (K, H, W) (or (K, N)) for features (F, H, W) (or (F, N))."""
        x, shape = self._flat(features)
        return self._predict_flat(x).reshape((self.n_classes, *shape))

    @torch.no_grad()
    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """Labels 1..K (H, W) int64 (argmax of the probabilities, first on ties)."""
        return argmax_labels(self.predict_proba(features))

    # -- persistence
    def _params(self) -> dict[str, Any]:
        raise NotImplementedError

    def _state(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _set_state(self, state: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError

    def save(self, path: str | Path) -> Path:
        if self.n_features is None:
            raise RuntimeError("cannot save an unfitted classifier")
        path = Path(path)
        obj = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "classes": list(self.classes),
            "feature_config": self.feature_config.to_dict() if self.feature_config else None,
            "feature_names": self.feature_names,
            "n_features": self.n_features,
            "params": _plain(self._params()),
            "metadata": _plain(self.metadata),
            "state": {k: v.detach().cpu().contiguous() for k, v in self._state().items()},
        }
        tmp = path.with_name(path.name + ".tmp")
        torch.save(obj, tmp)
        tmp.replace(path)
        return path


def load_classifier(path: str | Path, device: torch.device | str | None = None) -> PixelClassifier:
    """Read a classifier written by :meth:`PixelClassifier.save` (safe: weights_only)."""
    path = Path(path)
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ValueError(f"{path}: not a MIS pixel classifier file")
    if obj.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {obj.get('format_version')} not supported (this is {FORMAT_VERSION})")
    cls = PixelClassifier._registry.get(obj["kind"])
    if cls is None:
        raise ValueError(f"{path}: unknown classifier kind {obj['kind']!r}")
    fc = FeatureConfig.model_validate(obj["feature_config"]) if obj["feature_config"] else None
    clf = cls(classes=obj["classes"], feature_config=fc, feature_names=obj["feature_names"], **obj["params"])
    clf.n_features = obj["n_features"]
    clf.metadata = obj["metadata"]
    clf._set_state(obj["state"])
    if device is not None:
        clf.to(device)
    return clf


# =========================================================================== forest


class RandomForestPixelClassifier(PixelClassifier):
    """scikit-learn ``RandomForestClassifier`` trained on labelled pixels (seed 001),
    predicted on tensors through :class:`TensorForest`. Extra keyword arguments go to
    ``RandomForestClassifier`` (``random_state``, ``min_samples_leaf``, ...)."""

    kind = "random_forest"

    def __init__(
        self,
        classes: Sequence[str],
        feature_config: FeatureConfig | None = None,
        feature_names: Sequence[str] | None = None,
        n_estimators: int = 100,
        max_depth: int | None = None,
        n_jobs: int | None = -1,
        backend: Literal["auto", "eager", "compile"] = "auto",
        chunk: int | None = None,
        device: torch.device | str | None = None,
        **rf_kwargs: Any,
    ) -> None:
        super().__init__(classes, feature_config, feature_names, device)
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.n_jobs = n_jobs
        self.backend = backend
        self.chunk = chunk
        self.rf_kwargs = rf_kwargs
        self.forest: TensorForest | None = None
        self.sklearn_: Any = None  # the fitted estimator, kept in memory only

    def fit(self, X: ArrayLike, y: ArrayLike) -> RandomForestPixelClassifier:
        from sklearn.ensemble import RandomForestClassifier

        Xn, yn = _as_xy(X, y)
        self._check_y(yn)
        rf = RandomForestClassifier(
            n_estimators=self.n_estimators, max_depth=self.max_depth, n_jobs=self.n_jobs, **self.rf_kwargs
        )
        rf.fit(Xn, yn)
        self.sklearn_ = rf
        self.forest = TensorForest.from_sklearn(rf, n_classes=self.n_classes)
        self._record_fit(Xn, yn, n_trees=self.forest.n_trees, n_nodes=self.forest.n_nodes, depth=self.forest.depth)
        return self

    def to(self, device: torch.device | str) -> RandomForestPixelClassifier:
        self.device = pick_device(device)
        if self.forest is not None:
            self.forest.to(self.device)
        return self

    def _predict_flat(self, x: torch.Tensor) -> torch.Tensor:
        assert self.forest is not None
        chunk = self.chunk or (FOREST_CHUNK_CPU if x.device.type == "cpu" else 1 << 16)
        return self.forest.predict_proba(x, chunk=chunk, backend=self.backend)

    def _params(self) -> dict[str, Any]:
        return dict(n_estimators=self.n_estimators, max_depth=self.max_depth, n_jobs=self.n_jobs,
                    backend=self.backend, chunk=self.chunk, **self.rf_kwargs)

    def _state(self) -> dict[str, torch.Tensor]:
        assert self.forest is not None
        return self.forest.state()

    def _set_state(self, state: dict[str, torch.Tensor]) -> None:
        self.forest = TensorForest.from_state(state)
        if self.device is not None:
            self.forest.to(self.device)


# =========================================================================== MLP


class MLPPixelClassifier(PixelClassifier):
    """A small MLP on standardised features: ``hidden`` ReLU layers, class-balanced
    cross-entropy, AdamW with a cosine schedule, ``batch_size`` steps for ``epochs``
    epochs. Deterministic for ``seed`` on a given device.

    ``log_inputs``: features that are never negative in the training set and are
    right-skewed (mean > 1.5 median: energies such as gradient magnitude and
    structure-tensor eigenvalues) enter as ``log(x + c)`` (c = 1e-3 x their training
    mean) before standardisation; heavy tails otherwise make a few pixels dominate."""

    kind = "mlp"

    def __init__(
        self,
        classes: Sequence[str],
        feature_config: FeatureConfig | None = None,
        feature_names: Sequence[str] | None = None,
        hidden: Sequence[int] = (32, 32),
        epochs: int = 300,
        lr: float = 1e-2,
        weight_decay: float = 1e-4,
        batch_size: int = 8192,
        seed: int = 0,
        log_inputs: bool = True,
        chunk: int = 1 << 16,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(classes, feature_config, feature_names, device)
        self.hidden = [int(h) for h in hidden]
        self.epochs, self.lr, self.weight_decay = int(epochs), float(lr), float(weight_decay)
        self.batch_size, self.seed, self.chunk = int(batch_size), int(seed), int(chunk)
        self.log_inputs = bool(log_inputs)
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None
        self.log_offset: torch.Tensor | None = None  # per feature; NaN = not logged
        self.net: torch.nn.Sequential | None = None

    def _build(self, n_in: int) -> torch.nn.Sequential:
        layers: list[torch.nn.Module] = []
        for h in self.hidden:
            layers += [torch.nn.Linear(n_in, h), torch.nn.ReLU()]
            n_in = h
        layers.append(torch.nn.Linear(n_in, self.n_classes))
        return torch.nn.Sequential(*layers)

    def fit(self, X: ArrayLike, y: ArrayLike) -> MLPPixelClassifier:
        Xn, yn = _as_xy(X, y)
        self._check_y(yn)
        dev = self.device or torch.device("cpu")
        g = torch.Generator().manual_seed(self.seed)
        Xt = torch.from_numpy(Xn).to(dev)
        yt = torch.from_numpy(yn - 1).to(dev)
        off = torch.full((Xt.shape[1],), float("nan"), device=dev)
        if self.log_inputs:
            skewed = (Xt.min(0).values >= 0) & (Xt.mean(0) > 1.5 * Xt.median(0).values)
            off[skewed] = 1e-3 * Xt.mean(0)[skewed] + 1e-12
        self.log_offset = off
        Xt = self._log(Xt.T).T
        self.mean = Xt.mean(0)
        self.std = Xt.std(0).clamp_min(1e-6)
        Xs = (Xt - self.mean) / self.std
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.net = self._build(Xn.shape[1]).to(dev)
        counts = torch.bincount(yt, minlength=self.n_classes).float()
        w = torch.where(counts > 0, counts.sum() / (counts.clamp_min(1) * (counts > 0).sum()), torch.zeros_like(counts))
        loss_fn = torch.nn.CrossEntropyLoss(weight=w)
        opt = torch.optim.AdamW(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.epochs))
        n = len(yt)
        self.net.train()
        last = math.nan
        for _ in range(self.epochs):
            perm = torch.randperm(n, generator=g).to(dev)
            for s in range(0, n, self.batch_size):
                b = perm[s : s + self.batch_size]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(self.net(Xs[b]), yt[b])
                loss.backward()
                opt.step()
                last = float(loss.detach())
            sched.step()
        self.net.eval()
        with torch.no_grad():
            acc = float((self.net(Xs).argmax(1) == yt).float().mean())
        self._record_fit(Xn, yn, final_loss=last, train_accuracy=acc)
        return self

    def to(self, device: torch.device | str) -> MLPPixelClassifier:
        self.device = pick_device(device)
        if self.net is not None:
            if self.mean is None or self.std is None or self.log_offset is None:
                raise RuntimeError("MLPPixelClassifier has a network but no normalisation (mean, std, log offsets)")
            self.net.to(self.device)
            self.mean, self.std = self.mean.to(self.device), self.std.to(self.device)
            self.log_offset = self.log_offset.to(self.device)
        return self

    def _log(self, x: torch.Tensor) -> torch.Tensor:
        """Feature-major x (F, n): log(x + c) on the features chosen at fit time."""
        assert self.log_offset is not None
        idx = torch.nonzero(~torch.isnan(self.log_offset)).squeeze(1).to(x.device)
        if idx.numel() == 0:
            return x
        x = x.clone()
        c = self.log_offset.to(x.device)[idx].view(-1, 1)
        x[idx] = torch.log(x[idx].clamp_min(0) + c)
        return x

    def _predict_flat(self, x: torch.Tensor) -> torch.Tensor:
        return _softmax0(self._logits(x))

    @torch.no_grad()
    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """Labels 1..K (H, W): argmax of the logits (softmax is monotonic)."""
        x, shape = self._flat(features)
        return argmax_labels(self._logits(x)).reshape(shape)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        assert self.net is not None and self.mean is not None and self.std is not None
        lin = [m for m in self.net if isinstance(m, torch.nn.Linear)]
        dev = x.device
        # fold the standardisation into the first layer: W ((x - m) / s) + b
        w0 = (lin[0].weight / self.std).to(dev)
        b0 = (lin[0].bias - w0.to(self.mean.device) @ self.mean).to(dev)
        ws = [(w0, b0.view(-1, 1))] + [(m.weight.to(dev), m.bias.to(dev).view(-1, 1)) for m in lin[1:]]
        n = x.shape[1]
        out = torch.empty((self.n_classes, n), dtype=torch.float32, device=dev)
        for s in range(0, n, self.chunk):
            h = self._log(x[:, s : s + self.chunk])
            for i, (w, b) in enumerate(ws):
                h = torch.addmm(b, w, h)
                if i < len(ws) - 1:
                    h.clamp_(min=0)
            out[:, s : s + h.shape[1]] = h
        return out

    def _params(self) -> dict[str, Any]:
        return dict(hidden=self.hidden, epochs=self.epochs, lr=self.lr, weight_decay=self.weight_decay,
                    batch_size=self.batch_size, seed=self.seed, log_inputs=self.log_inputs, chunk=self.chunk)

    def _state(self) -> dict[str, torch.Tensor]:
        assert self.net is not None
        s = {f"net.{k}": v for k, v in self.net.state_dict().items()}
        s.update(mean=self.mean, std=self.std, log_offset=self.log_offset)
        return s

    def _set_state(self, state: dict[str, torch.Tensor]) -> None:
        self.mean, self.std, self.log_offset = state["mean"], state["std"], state["log_offset"]
        self.net = self._build(int(self.mean.numel()))
        self.net.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("net.")})
        self.net.eval()
        if self.device is not None:
            self.to(self.device)


# =========================================================================== MultiGaussian


class MultiGaussianClassifier(PixelClassifier):
    """MultiGaussian maximum likelihood (seed 000): each class k is a Gaussian with mean
    mu_k and full covariance S_k; the posterior is softmax_k of
    ``log pi_k - 0.5 (x - mu_k)^T S_k^-1 (x - mu_k) - 0.5 log det S_k``.

    ``priors``: ``empirical`` (training frequencies), ``equal``, or a list of K
    numbers. ``reg`` adds ``reg`` x mean variance to the covariance diagonal (keeps
    nearly singular classes invertible). Features are standardised internally (the
    classifier is affine invariant; this only helps float32)."""

    kind = "multigaussian"

    def __init__(
        self,
        classes: Sequence[str],
        feature_config: FeatureConfig | None = None,
        feature_names: Sequence[str] | None = None,
        priors: Literal["empirical", "equal"] | Sequence[float] = "empirical",
        reg: float = 1e-6,
        chunk: int = 1 << 18,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(classes, feature_config, feature_names, device)
        self.priors = priors if isinstance(priors, str) else [float(p) for p in priors]
        self.reg = float(reg)
        self.chunk = int(chunk)
        self.tables: dict[str, torch.Tensor] = {}

    def fit(self, X: ArrayLike, y: ArrayLike) -> MultiGaussianClassifier:
        Xn, yn = _as_xy(X, y)
        self._check_y(yn)
        X64 = Xn.astype(np.float64)
        mean, std = X64.mean(0), X64.std(0)
        std[std < 1e-12] = 1.0
        Z = (X64 - mean) / std
        k, f = self.n_classes, Z.shape[1]
        counts = np.bincount(yn, minlength=k + 1)[1:].astype(np.float64)
        if isinstance(self.priors, str):
            pri = counts / counts.sum() if self.priors == "empirical" else np.where(counts > 0, 1.0, 0.0)
        else:
            pri = np.asarray(self.priors, np.float64)
            if pri.shape != (k,) or (pri < 0).any():
                raise ValueError(f"priors must be {k} non-negative numbers")
        pri = pri / pri.sum()
        W = np.zeros((k, f, f))
        b = np.zeros((k, f))
        const = np.full(k, -np.inf)
        for c in range(k):
            Zc = Z[yn == c + 1]
            if len(Zc) == 0 or pri[c] == 0:
                continue  # never predicted
            mu = Zc.mean(0)
            cov = np.cov(Zc, rowvar=False, bias=True).reshape(f, f) if len(Zc) > 1 else np.zeros((f, f))
            cov += np.eye(f) * (self.reg * max(np.trace(cov) / f, 1e-12) + 1e-9)
            L = np.linalg.cholesky(cov)
            Linv = np.linalg.inv(L)
            W[c] = Linv
            b[c] = Linv @ mu
            const[c] = math.log(pri[c]) - np.log(np.diag(L)).sum() - 0.5 * f * math.log(2 * math.pi)
        # fold standardisation: z = (x - m) / s  ->  W z - b = (W / s) x - (W m / s + b)
        Wx = W / std[None, None, :]
        bx = np.einsum("kij,j->ki", Wx, mean) + b
        self.tables = {
            "W": torch.from_numpy(Wx.astype(np.float32)),
            "b": torch.from_numpy(bx.astype(np.float32)),
            "const": torch.from_numpy(const.astype(np.float32)),
        }
        self._record_fit(Xn, yn, priors=pri.tolist())
        if self.device is not None:
            self.to(self.device)
        return self

    def to(self, device: torch.device | str) -> MultiGaussianClassifier:
        self.device = pick_device(device)
        self.tables = {k: v.to(self.device) for k, v in self.tables.items()}
        return self

    def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """Per class ``log pi_k + log N(x; mu_k, S_k)`` (K, n) for x (F, n)."""
        W, b, const = (self.tables[k].to(x.device) for k in ("W", "b", "const"))
        k = W.shape[0]
        out = torch.empty((k, x.shape[1]), dtype=torch.float32, device=x.device)
        for c in range(k):
            if torch.isinf(const[c]):
                out[c] = -torch.inf
                continue
            z = torch.addmm(-b[c].view(-1, 1), W[c], x)
            out[c] = const[c] - 0.5 * (z * z).sum(0)
        return out

    def _predict_flat(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        out = torch.empty((self.n_classes, n), dtype=torch.float32, device=x.device)
        for s in range(0, n, self.chunk):
            ll = self.log_likelihood(x[:, s : s + self.chunk])
            out[:, s : s + self.chunk] = torch.nan_to_num(_softmax0(ll), nan=0.0)
        return out

    def _params(self) -> dict[str, Any]:
        return dict(priors=self.priors, reg=self.reg, chunk=self.chunk)

    def _state(self) -> dict[str, torch.Tensor]:
        return dict(self.tables)

    def _set_state(self, state: dict[str, torch.Tensor]) -> None:
        self.tables = dict(state)
        if self.device is not None:
            self.to(self.device)


# =========================================================================== whole images


@torch.no_grad()
def predict_image(
    clf: PixelClassifier,
    image: np.ndarray | torch.Tensor,
    config: FeatureConfig | None = None,
    rows: int = 64,
    workers: int | None = None,
    proba: bool = False,
) -> torch.Tensor:
    """Segment an in-memory (C, H, W) image: features and classification strip by
    strip (``rows`` rows plus the feature halo), so the feature stack of a strip stays
    in cache and is never written out whole. Returns labels (H, W) int64 1..K, or with
    ``proba`` the probabilities (K, H, W). Equal to ``clf.predict(compute_features(
    image))`` (the halo makes strips seamless). ``workers`` > 1 runs strips in threads,
    each with one torch thread (CPU); None = torch's thread count on CPU, 1 on CUDA.
    The chunked prediction over zarr does the same per chunk."""
    config = config or clf.feature_config
    if config is None:
        raise ValueError("no feature config: pass one or give the classifier a feature_config")
    dev = clf.device or pick_device(None)
    x = prepare_image(image, dev)
    _, h, w = x.shape
    if workers is None:
        workers = 1 if dev.type != "cpu" else torch.get_num_threads()
    out = torch.empty((clf.n_classes, h, w) if proba else (h, w), dtype=torch.float32 if proba else torch.int64,
                      device=x.device)
    align = feature_align(config)
    rows = int(math.ceil(rows / align) * align)
    tiles = halo_tiles((h, w), (rows, w), halo(config), align)

    def job(t: tuple) -> None:
        (ry, rx), (wy, wx), (iy, ix) = t
        f, _ = compute_features(x[:, ry, rx], config)
        f = f[:, iy, ix]
        if proba:
            out[:, wy, wx] = clf.predict_proba(f)
        else:
            out[wy, wx] = clf.predict(f)

    if workers <= 1:
        for t in tiles:
            job(t)
        return out
    from concurrent.futures import ThreadPoolExecutor

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # parallel over strips, not inside each small op
    try:
        with ThreadPoolExecutor(workers) as ex:
            list(ex.map(job, tiles))
    finally:
        torch.set_num_threads(threads)
    return out
