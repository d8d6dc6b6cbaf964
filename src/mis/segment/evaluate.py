"""Evaluate a segmentation against a truth:
``mis evaluate IMAGE --truth TRUTH.png --legend LEGEND.json [--model M | --run NAME] --json``.

The prediction is either a stored run (``labels/prediction-<run>``, see
:mod:`mis.segment.predict`) or computed now from a model file (chunked, nothing written).
The truth is either a dense (or sparse) label image + legend (values -> vocabulary terms
or URIs; 0 = not evaluated), or a stored label set of the image (``--labels NAME``,
e.g. held-out labels never used in training).

Classes are matched by concept URI. Truth classes the model does not know are added
after the model's classes (they can only be missed: recall 0); pixels the run has not
predicted (nodata) count as misses of their true class. Metrics
(:mod:`mis.segment.metrics`): per class precision, recall, F1, IoU and support, macro
means, accuracy, and the confusion matrix (rows = truth, columns = prediction), as JSON,
CSV and a PNG plot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mis.imagery.imageref import ImageRef, image_ref
from mis.segment.labels import (
    LabelError,
    read_label_image,
    read_labels,
    read_legend,
    resolve_classes,
)
from mis.segment.metrics import SegmentationReport, segmentation_report
from mis.vocab.names import local_name

__all__ = ["Evaluation", "evaluate", "load_truth"]


def _is_uri(term: str) -> bool:
    return "://" in term or term.startswith("urn:")


def load_truth(
    ref: ImageRef, truth: str | Path, legend: str | Path, *, url: str | None = None
) -> tuple[np.ndarray, dict[int, str]]:
    """A truth label image + legend -> (values (H, W), {value: concept URI}). Terms are
    resolved through the vocabulary (URIs are taken as they are)."""
    arr = read_label_image(truth)
    if arr.shape != (ref.height, ref.width):
        raise LabelError(f"{truth}: truth is {arr.shape[0]} x {arr.shape[1]} px, the image "
                         f"{ref.height} x {ref.width} px; they must match")
    terms = read_legend(legend)
    present = sorted(set(np.unique(arr).tolist()) - {0})
    missing = [v for v in present if v not in terms]
    if missing:
        raise LabelError(f"{truth}: label values {missing} are not in the legend {legend}")
    need = [terms[v] for v in present]
    if all(_is_uri(t) for t in need):
        uris = {t: t for t in need}
    else:
        uris = {t: rc.uri for t, rc in resolve_classes(need, url=url).items()}
    return arr, {v: uris[terms[v]] for v in present}


@dataclass
class Evaluation:
    """A report plus what was compared."""

    report: SegmentationReport
    classes: list[str]  # URIs, report order
    names: list[str]
    source: dict[str, Any]
    truth: dict[str, Any]
    unpredicted: int  # truth pixels without a prediction (nodata)

    def to_dict(self) -> dict[str, Any]:
        r = self.report
        per = [{"label": i + 1, "uri": u, "name": n, "support": int(r.support[i]), "predicted": int(r.predicted[i]),
                "precision": float(r.precision[i]), "recall": float(r.recall[i]), "f1": float(r.f1[i]),
                "iou": float(r.iou[i])} for i, (u, n) in enumerate(zip(self.classes, self.names, strict=True))]
        return {
            "source": self.source, "truth": self.truth,
            "classes": self.classes, "per_class": per,
            "macro": {"precision": r.macro_precision, "recall": r.macro_recall, "f1": r.macro_f1, "iou": r.macro_iou},
            "accuracy": r.accuracy, "pixels": int(r.support.sum()), "unpredicted_pixels": int(self.unpredicted),
            "confusion": r.confusion.tolist(), "confusion_axes": "rows: truth, columns: prediction (per_class order)",
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _names(uris: list[str], url: str | None, use_db: bool) -> list[str]:
    names = [local_name(u).rsplit(":", 1)[-1] for u in uris]
    if not use_db:
        return names
    try:
        from mis.catalogue import models as m
        from mis.catalogue.session import transaction

        with transaction(url) as session:
            for i, u in enumerate(uris):
                c = session.get(m.Concept, u)
                if c is not None:
                    names[i] = c.pref_label
    except Exception:  # noqa: BLE001 - names are cosmetic (URIs are the identity): no database, no names
        pass
    return names


def evaluate(
    image: int | str | Path | ImageRef,
    *,
    truth: str | Path | None = None,
    legend: str | Path | None = None,
    labels: str | None = None,
    labels_version: int | None = None,
    model: str | Path | None = None,
    run: str | None = None,
    workers: int | None = None,
    device: str | None = None,
    progress: bool = False,
    url: str | None = None,
) -> Evaluation:
    """Compare a prediction (``model`` or stored ``run``) with a truth (``truth`` +
    ``legend``, or stored ``labels``) on one image."""
    ref = image_ref(image, url)
    if (model is None) == (run is None):
        raise LabelError("give exactly one of --model (predict now) or --run (a stored prediction)")
    if (truth is None) == (labels is None):
        raise LabelError("give exactly one truth: --truth TRUTH.png with --legend, or --labels NAME")
    if truth is not None:
        if legend is None:
            raise LabelError(f"{truth}: --truth needs --legend LEGEND.json (value -> class term)")
        tvals, tlegend = load_truth(ref, truth, legend, url=url)
        truth_info: dict[str, Any] = {"file": str(truth), "legend": str(legend)}
    else:
        if labels is None:  # excluded above: exactly one of truth / labels
            raise LabelError("give exactly one truth: --truth TRUTH.png with --legend, or --labels NAME")
        ls = read_labels(ref.store_uri, labels, labels_version)
        tvals, tlegend = ls.read().astype(np.int64), dict(ls.legend)
        truth_info = {"labels": ls.path, "version": ls.version}

    if model is not None:
        from mis.imagery.omezarr import sha256_file
        from mis.segment.classifiers import load_classifier
        from mis.segment.device import pick_device
        from mis.segment.predict import predict_in_memory

        clf = load_classifier(model, device=pick_device(device))
        classes = list(clf.classes)
        pred, _ = predict_in_memory(ref, clf, workers=workers, progress=progress)
        nodata = -1
        source: dict[str, Any] = {"model": str(model), "model_sha256": sha256_file(model)}
    else:
        from mis.segment.predict import prediction_arrays

        if run is None:  # excluded above: exactly one of model / run
            raise LabelError("give exactly one of --model (predict now) or --run (a stored prediction)")
        carr, _, attrs = prediction_arrays(ref.store_uri, run)
        classes = list(attrs["classes"])
        pred = np.asarray(carr[:]).astype(np.int64)
        nodata = int(attrs.get("nodata", 255))
        source = {"run": run, "model_sha256": attrs.get("model_sha256")}
    source["image"] = ref.image_id if ref.image_id is not None else ref.store_uri

    # truth values -> report labels 1..K' (model classes first, then truth-only classes)
    order = list(classes)
    for v in sorted(tlegend):
        if tlegend[v] not in order:
            order.append(tlegend[v])
    lut = np.zeros(max(tlegend, default=0) + 1, np.int64)
    for v, u in tlegend.items():
        lut[v] = order.index(u) + 1
    t = lut[tvals]
    p = np.where(pred == nodata, 0, pred + 1)
    unpredicted = int(((t > 0) & (p == 0)).sum())
    report = segmentation_report(t, p, order)
    names = _names(order, url, use_db=ref.image_id is not None)
    report.classes = names
    return Evaluation(report, order, names, source, truth_info, unpredicted)
