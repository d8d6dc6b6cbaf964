"""Predict, then ingest: ``mis ingest IMAGE --model M`` and the demo's "predict +
ingest" step, written once.

A prediction run is stored in the image store (:mod:`mis.segment.predict`); ingestion
reads it back from there, never from memory, so a run predicted earlier (``mis
predict``) and one predicted just now are ingested the same way, with the provenance
(model path, its hash, the feature configuration) the prediction recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mis.catalogue import models as m
from mis.catalogue.session import transaction
from mis.imagery.omezarr import sha256_file
from mis.ingest.run import IngestError, IngestSummary, ingest, stored_prediction
from mis.ingest.writer import Provenance
from mis.segment.predict import predict

__all__ = ["ingest_prediction"]


def ingest_prediction(
    image_id: int,
    name: str,
    model: str | Path | None = None,
    *,
    url: str | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    probability: Any = None,
    classes: list[str] | None = None,
    feature_config: dict[str, Any] | None = None,
    model_sha256: str | None = None,
    **options: Any,
) -> IngestSummary:
    """Ingest prediction run ``name`` of an image, predicting it first with ``model``
    when one is given (a complete run of the same model is reused by
    :func:`~mis.segment.predict.predict`). ``probability``, ``classes`` and
    ``feature_config`` override what the run recorded; ``options`` go to
    :func:`~mis.ingest.run.ingest` (roxel size, lithology, grain rules, ...)."""
    with transaction(url) as session:
        row = session.get(m.Image, image_id)
        if row is None:
            raise IngestError(f"image {image_id}: no such image")
        store = row.store_uri
    if model is not None:
        predict(image_id, model, name, scheduler=scheduler, progress=progress, url=url)
    labels, stored_probability, stored_classes, attrs = stored_prediction(store, name)
    if not (classes or stored_classes):
        raise IngestError("give the class list (--class, in label order)")
    used_model = Path(attrs["model_path"]) if attrs.get("model_path") and model is None else model
    sha = model_sha256 or attrs.get("model_sha256")  # the prediction's model, hashed when it was predicted
    if sha is None and used_model is not None and Path(used_model).exists():
        sha = sha256_file(used_model)
    provenance = Provenance(model_path=str(used_model) if used_model else None, model_sha256=sha,
                            feature_config=feature_config if feature_config is not None
                            else attrs.get("feature_config") or {})
    return ingest(image_id, labels, stored_probability if probability is None else probability,
                  classes or stored_classes, name=name, provenance=provenance, url=url, scheduler=scheduler,
                  progress=progress, **options)
