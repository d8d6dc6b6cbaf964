"""Segmentation quality: confusion matrix, per-class precision / recall / F1 / IoU.

Label arrays hold 1..K; **0 in the truth means unlabelled** and those pixels are left
out. A prediction of 0 (no class) on a labelled pixel counts as a miss of the true
class (false negative) and as a false positive of no class. Per-class values with a
zero denominator are 0 (scikit-learn's ``zero_division=0``); macro averages are the
unweighted means over the K classes, as scikit-learn's ``average="macro"`` with
``labels=1..K``.

Plots use matplotlib when it is installed and Pillow otherwise (Pillow is a project
dependency; matplotlib is not).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mis.vocab.names import local_name

__all__ = ["SegmentationReport", "confusion_matrix", "segmentation_report"]


def confusion_matrix(truth: np.ndarray, pred: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """(K, K) int64 counts, rows = true class 1..K, columns = predicted class 1..K;
    pixels with truth 0 are ignored, predictions outside 1..K are not counted in any
    column (they lower recall only)."""
    t = np.asarray(truth).ravel().astype(np.int64)
    p = np.asarray(pred).ravel().astype(np.int64)
    if t.shape != p.shape:
        raise ValueError(f"truth and prediction differ in size: {np.shape(truth)} vs {np.shape(pred)}")
    if n_classes is None:
        n_classes = int(max(t.max(initial=0), p.max(initial=0)))
    k = n_classes
    keep = (t > 0) & (t <= k)
    t, p = t[keep], p[keep]
    ok = (p >= 1) & (p <= k)
    cm = np.bincount((t[ok] - 1) * k + (p[ok] - 1), minlength=k * k).reshape(k, k)
    return cm.astype(np.int64)


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return np.divide(a, b, out=np.zeros_like(a), where=b > 0)


@dataclass
class SegmentationReport:
    """Per-class and macro metrics of a segmentation against a truth."""

    classes: list[str]
    confusion: np.ndarray
    support: np.ndarray  # labelled truth pixels per class
    predicted: np.ndarray  # pixels predicted as each class (on labelled truth)
    precision: np.ndarray = field(init=False)
    recall: np.ndarray = field(init=False)
    f1: np.ndarray = field(init=False)
    iou: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        tp = np.diag(self.confusion).astype(np.float64)
        self.precision = _div(tp, self.predicted)
        self.recall = _div(tp, self.support)
        self.f1 = _div(2 * tp, self.support + self.predicted)
        self.iou = _div(tp, self.support + self.predicted - tp)

    @property
    def macro_precision(self) -> float:
        return float(self.precision.mean())

    @property
    def macro_recall(self) -> float:
        return float(self.recall.mean())

    @property
    def macro_f1(self) -> float:
        return float(self.f1.mean())

    @property
    def macro_iou(self) -> float:
        return float(self.iou.mean())

    @property
    def accuracy(self) -> float:
        n = self.support.sum()
        return float(np.trace(self.confusion) / n) if n else 0.0

    def rows(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for i, c in enumerate(self.classes):
            out.append(dict(label=i + 1, cls=c, support=int(self.support[i]), predicted=int(self.predicted[i]),
                            precision=float(self.precision[i]), recall=float(self.recall[i]),
                            f1=float(self.f1[i]), iou=float(self.iou[i])))
        out.append(dict(label="", cls="macro", support=int(self.support.sum()), predicted=int(self.predicted.sum()),
                        precision=self.macro_precision, recall=self.macro_recall, f1=self.macro_f1,
                        iou=self.macro_iou))
        return out

    def to_csv(self, path: str | Path) -> Path:
        """Per-class rows + a macro row (label, class, support, predicted, precision,
        recall, f1, iou), then the confusion matrix (rows true, columns predicted)."""
        path = Path(path)
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["label", "class", "support", "predicted", "precision", "recall", "f1", "iou"])
            for r in self.rows():
                w.writerow([r["label"], r["cls"], r["support"], r["predicted"],
                            f"{r['precision']:.6f}", f"{r['recall']:.6f}", f"{r['f1']:.6f}", f"{r['iou']:.6f}"])
            w.writerow([])
            w.writerow(["confusion (rows: true, columns: predicted)"] + [str(i + 1) for i in range(len(self.classes))])
            for i, row in enumerate(self.confusion):
                w.writerow([str(i + 1)] + [str(int(v)) for v in row])
        return path

    def summary(self) -> str:
        lines = [f"{'class':<40} {'prec':>6} {'rec':>6} {'F1':>6} {'IoU':>6} {'support':>9}"]
        for r in self.rows():
            lines.append(f"{str(r['cls'])[-40:]:<40} {r['precision']:6.3f} {r['recall']:6.3f} {r['f1']:6.3f} "
                         f"{r['iou']:6.3f} {r['support']:9d}")
        return "\n".join(lines)

    def plot_confusion(self, path: str | Path, normalize: bool = True) -> Path:
        """A PNG of the (row-normalised) confusion matrix."""
        path = Path(path)
        cm = self.confusion.astype(np.float64)
        if normalize:
            cm = _div(cm, cm.sum(1, keepdims=True) + 0 * cm)
        labels = [local_name(c).rsplit(":", 1)[-1] for c in self.classes]
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return _plot_pillow(cm, labels, path, normalize)
        k = len(labels)
        fig, ax = plt.subplots(figsize=(1.2 + 0.7 * k, 1.0 + 0.7 * k))
        ax.imshow(cm, cmap="Blues", vmin=0)
        ax.set_xticks(range(k), labels, rotation=45, ha="right")
        ax.set_yticks(range(k), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{cm[i, j]:.2f}" if normalize else str(int(cm[i, j])), ha="center", va="center",
                        color="white" if cm[i, j] > 0.5 * cm.max() else "black", fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path


def _plot_pillow(cm: np.ndarray, labels: list[str], path: Path, normalize: bool) -> Path:
    from PIL import Image, ImageDraw, ImageFont

    k = len(labels)
    cell = 56
    font = ImageFont.load_default()
    left = 12 + 7 * max(len(s) for s in labels)
    top = 30
    img = Image.new("RGB", (left + cell * k + 10, top + cell * k + 20 + 7 * max(len(s) for s in labels)), "white")
    d = ImageDraw.Draw(img)
    vmax = cm.max() if cm.max() > 0 else 1.0
    for i in range(k):
        for j in range(k):
            v = cm[i, j] / vmax
            col = (int(255 - 200 * v), int(255 - 150 * v), int(255 - 60 * v))
            x0, y0 = left + j * cell, top + i * cell
            d.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=col, outline=(200, 200, 200))
            txt = f"{cm[i, j]:.2f}" if normalize else str(int(cm[i, j]))
            d.text((x0 + 6, y0 + cell // 2 - 5), txt, fill="white" if v > 0.5 else "black", font=font)
        d.text((4, top + i * cell + cell // 2 - 5), labels[i], fill="black", font=font)
    for j in range(k):  # column labels, one character per line under the matrix
        d.text((left + j * cell + 4, top + k * cell + 6), labels[j][:8], fill="black", font=font)
    d.text((4, 8), "rows: true, columns: predicted", fill="black", font=font)
    img.save(path, format="PNG")
    return path


def segmentation_report(
    truth: np.ndarray, pred: np.ndarray, classes: list[str] | int | None = None
) -> SegmentationReport:
    """Metrics of ``pred`` against ``truth`` (both label arrays, 0 = unlabelled in the
    truth). ``classes``: class names (K = their count), or K, or None (K = the largest
    label present)."""
    if isinstance(classes, int):
        names = [str(i) for i in range(1, classes + 1)]
    elif classes is None:
        k = int(max(np.max(truth, initial=0), np.max(pred, initial=0)))
        names = [str(i) for i in range(1, k + 1)]
    else:
        names = [str(c) for c in classes]
    k = len(names)
    t = np.asarray(truth).ravel().astype(np.int64)
    p = np.asarray(pred).ravel().astype(np.int64)
    cm = confusion_matrix(t, p, k)
    support = np.bincount(t[(t >= 1) & (t <= k)] - 1, minlength=k)
    predicted = cm.sum(0)
    return SegmentationReport(classes=names, confusion=cm, support=support, predicted=predicted)
