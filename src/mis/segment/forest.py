"""The scikit-learn -> tensor forest compiler: a fitted ``RandomForestClassifier`` as
flat node tables predicted with tensor ops (eager, or one fused loop through
``torch.compile``), the engine under
:class:`mis.segment.classifiers.RandomForestPixelClassifier`.

Its own module because it is a compiler, not a classifier: it knows scikit-learn's tree
arrays and torch's compile machinery, and nothing of labels, classes or model files (a
model file stores :meth:`TensorForest.state`, plain tensors, never this class's path).
"""

from __future__ import annotations

import shutil
import warnings
from typing import Any, Literal

import numpy as np
import torch

__all__ = ["TensorForest"]


def _traverse(x: torch.Tensor, feat: torch.Tensor, thr: torch.Tensor, left: torch.Tensor, roots: torch.Tensor,
              depth: int) -> torch.Tensor:
    """Leaf node index (T, n) of every tree for every pixel column of x (F, n)."""
    idx = roots.view(-1, 1).expand(-1, x.shape[1])
    for _ in range(depth):
        v = x.gather(0, feat[idx])
        idx = left[idx] + (v > thr[idx]).long()
    return idx


_compiled_traverse = None


def _get_compiled() -> Any:
    global _compiled_traverse
    if _compiled_traverse is None:
        _compiled_traverse = torch.compile(_traverse, dynamic=False)
    return _compiled_traverse


def _mark_dynamic(*tensors: torch.Tensor) -> None:
    """Table sizes and the feature count vary between forests: compile once for all
    (per depth and chunk size) instead of once per forest."""
    for t in tensors:
        torch._dynamo.mark_dynamic(t, 0)


class TensorForest:
    """A fitted scikit-learn forest as flat node tables, predicted with tensor ops.

    Nodes of all trees are renumbered breadth-first into one table, children of a node
    adjacent (right = left + 1), leaves pointing to themselves with threshold +inf, so
    ``depth`` steps of ``idx = left[idx] + (x[feat[idx]] > thr[idx])`` land every pixel
    on its leaf in every tree, however unbalanced the trees are.
    """

    def __init__(self, feat, thr, left, value, roots, depth: int) -> None:
        self.feat, self.thr, self.left, self.value, self.roots = feat, thr, left, value, roots
        self.depth = int(depth)

    @classmethod
    def from_sklearn(cls, forest: Any, n_classes: int | None = None) -> TensorForest:
        """From a fitted ``RandomForestClassifier``/``ExtraTreesClassifier`` (single
        output). Columns of ``value`` follow the forest's ``classes_`` unless
        ``n_classes`` is given, in which case class label c (1..n_classes) goes to
        column c - 1."""
        classes_ = np.asarray(forest.classes_)
        k_out = len(classes_) if n_classes is None else n_classes
        cols = np.arange(len(classes_)) if n_classes is None else classes_.astype(np.int64) - 1
        feats, thrs, lefts, values, roots = [], [], [], [], []
        base = 0
        depth = 0
        for est in forest.estimators_:
            t = est.tree_
            cl, cr = t.children_left, t.children_right
            n = t.node_count
            new = np.empty(n, np.int64)
            order = [0]
            new[0] = 0
            nxt = 1
            i = 0
            while i < len(order):  # breadth first, children adjacent
                node = order[i]
                i += 1
                if cl[node] != -1:
                    new[cl[node]] = nxt
                    new[cr[node]] = nxt + 1
                    nxt += 2
                    order.extend((cl[node], cr[node]))
            old = np.asarray(order)  # old id at new position
            is_leaf = cl[old] == -1
            f = np.where(is_leaf, 0, t.feature[old]).astype(np.int64)
            th64 = t.threshold[old]
            th = th64.astype(np.float32)
            down = th.astype(np.float64) > th64  # round down: x <= th32  <=>  x <= th64
            th[down] = np.nextafter(th[down], np.float32(-np.inf))
            th[is_leaf] = np.inf
            lf = np.where(is_leaf, np.arange(n), new[np.where(is_leaf, 0, cl[old])]) + base
            val = t.value[old, 0, :].astype(np.float64)
            s = val.sum(1, keepdims=True)
            val = np.divide(val, s, out=np.zeros_like(val), where=s > 0)
            v = np.zeros((n, k_out), np.float32)
            v[:, cols] = val
            v[~is_leaf] = 0.0
            feats.append(f)
            thrs.append(th)
            lefts.append(lf)
            values.append(v)
            roots.append(base)
            base += n
            depth = max(depth, int(t.max_depth))
        return cls(
            torch.from_numpy(np.concatenate(feats)),
            torch.from_numpy(np.concatenate(thrs)),
            torch.from_numpy(np.concatenate(lefts)),
            torch.from_numpy(np.concatenate(values)),
            torch.tensor(roots, dtype=torch.int64),
            depth,
        )

    @property
    def n_trees(self) -> int:
        return int(self.roots.numel())

    @property
    def n_nodes(self) -> int:
        return int(self.feat.numel())

    def to(self, device: torch.device | str) -> TensorForest:
        for k in ("feat", "thr", "left", "value", "roots"):
            setattr(self, k, getattr(self, k).to(device))
        return self

    def state(self) -> dict[str, torch.Tensor]:
        return {"feat": self.feat, "thr": self.thr, "left": self.left, "value": self.value,
                "roots": self.roots, "depth": torch.tensor(self.depth)}

    @classmethod
    def from_state(cls, s: dict[str, torch.Tensor]) -> TensorForest:
        return cls(s["feat"], s["thr"], s["left"], s["value"], s["roots"], int(s["depth"]))

    @torch.no_grad()
    def predict_proba(
        self, x: torch.Tensor, chunk: int = 1 << 16, backend: Literal["auto", "eager", "compile"] = "auto"
    ) -> torch.Tensor:
        """x (F, N) float32 -> probabilities (K, N), the mean of the trees' leaf class
        fractions (what scikit-learn's predict_proba computes)."""
        dev = x.device
        if self.feat.device != dev:
            self.to(dev)
        n = x.shape[1]
        if backend == "auto":
            can = dev.type == "cuda" or shutil.which("c++") or shutil.which("g++")
            backend = "compile" if (can and n >= (1 << 22)) else "eager"
        fn = _traverse
        if backend == "compile":
            fn = _get_compiled()
        out = torch.empty((self.value.shape[1], n), dtype=torch.float32, device=dev)
        scale = 1.0 / self.n_trees
        for s in range(0, n, chunk):
            xc = x[:, s : s + chunk]
            m = xc.shape[1]
            if backend == "compile":  # one static layout: contiguous, tail padded
                xc = torch.nn.functional.pad(xc, (0, chunk - m)) if m < chunk else xc.contiguous()
                _mark_dynamic(xc, self.feat, self.thr, self.left, self.roots)
            try:
                idx = fn(xc, self.feat, self.thr, self.left, self.roots, self.depth)
            except Exception as e:  # noqa: BLE001  # pragma: no cover - torch.compile fails in toolchain-specific ways
                if fn is _traverse:
                    raise
                warnings.warn(f"torch.compile of the forest failed ({e!r}); using eager tensor ops", stacklevel=2)
                fn = _traverse
                backend = "eager"
                idx = fn(xc, self.feat, self.thr, self.left, self.roots, self.depth)
            idx = idx[:, :m]
            p = self.value.index_select(0, idx.reshape(-1)).view(idx.shape[0], m, -1).sum(0)
            out[:, s : s + m] = p.T * scale
        return out
