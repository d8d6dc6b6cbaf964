"""Chunked prediction over OME-Zarr: equal to whole-image prediction pixel for pixel,
written chunk-aligned into the image's store, resumable after an interruption, and the
same on a dask.distributed cluster of worker processes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import zarr

from mis.imagery.chunks import tiles as chunk_tiles
from mis.imagery.imageref import image_ref
from mis.imagery.layout import mode2x
from mis.imagery.omezarr import import_image
from mis.segment.classifiers import argmax_labels, load_classifier
from mis.segment.config import CNNConfig, FeatureConfig
from mis.segment.filters import compute_features
from mis.segment.labels import ResolvedClass, store_labels
from mis.segment.predict import (
    PredictionError,
    list_runs,
    plan_blocks,
    predict,
    prediction_arrays,
)
from mis.segment.synthetic import synthetic_section
from mis.segment.train import train
from tests.omezarr_readers import validate_and_read

H, W = 1040, 1100  # 3 x 3 chunks of 512, partial (16 and 76 px) at the bottom and right edges


def stored_section(root: Path, shape=(H, W), seed: int = 3, name: str = "img"):
    """A synthetic section imported as an OME-Zarr store, its scribbles stored as
    label set 'scribbles' (classes given as URIs: no vocabulary needed here)."""
    s = synthetic_section(shape, seed=seed, scribble_fraction=0.01)
    tif = root / f"{name}.tif"
    tifffile.imwrite(tif, s.image.transpose(1, 2, 0), photometric="rgb")
    import_image(tif, root / f"{name}.ome.zarr", pixel_size_um=1.0, progress=False)
    ref = image_ref(str(root / f"{name}.ome.zarr"))
    legend = {k + 1: ResolvedClass(c, c, c.rsplit(":", 1)[-1], "FF0000") for k, c in enumerate(s.classes)}

    def tiles():
        for y0, x0, th, tw in chunk_tiles((shape[0], shape[1]), (512, 512)):
            yield y0, x0, s.scribbles[y0 : y0 + th, x0 : x0 + tw]

    store_labels(ref, "scribbles", legend, tiles, max_value=len(s.classes))
    return s, ref


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    s, ref = stored_section(root)
    model = root / "rf.pt"
    train([ref], model, labels="scribbles", classifier="rf", n_estimators=8, max_depth=8, n_jobs=1)
    clf = load_classifier(model)
    feats, _ = compute_features(s.image, clf.feature_config)
    proba = clf.predict_proba(feats)  # whole-image prediction, the reference
    ref_classes = (argmax_labels(proba) - 1).numpy().astype(np.uint8)
    ref_prob = proba.max(0).values.to(torch.float16).numpy()
    return s, ref, model, ref_classes, ref_prob


def test_plan_blocks_cover_the_chunk_grid():
    blocks = plan_blocks((3, H, W), (3, 512, 512), 2)
    assert [b.index for b in blocks] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert blocks[0].chunks == ((0, 0), (0, 1), (1, 0), (1, 1)) and blocks[-1].chunks == ((2, 2),)
    assert (blocks[-1].y0, blocks[-1].y1, blocks[-1].x0, blocks[-1].x1) == (1024, H, 1024, W)
    assert sum(b.pixels for b in blocks) == H * W


def test_chunked_prediction_equals_whole_image_prediction(setup):
    s, ref, model, ref_classes, ref_prob = setup
    res = predict(ref, model, "whole", workers=2, progress=False)
    assert (res.chunks_total, res.chunks_skipped, res.chunks_computed) == (9, 0, 9)
    classes, prob, attrs = prediction_arrays(ref.store_uri, "whole")
    assert classes.shape == (H, W) and classes.chunks == (512, 512) and classes.dtype == np.uint8
    assert prob.shape == (H, W) and prob.chunks == (512, 512) and prob.dtype == np.float16
    np.testing.assert_array_equal(classes[:], ref_classes)  # pixel for pixel, across chunk seams
    np.testing.assert_array_equal(prob[:], ref_prob)
    assert attrs["status"] == "complete" and attrs["classes"] == s.classes and attrs["nodata"] == 255
    assert len(attrs["model_sha256"]) == 64 and attrs["feature_config"]["filters"]
    assert attrs["pixel_counts"] == np.bincount(ref_classes.ravel(), minlength=5).tolist()
    assert classes.attrs["classes"] == s.classes
    assert (Path(ref.store_uri) / "labels" / "prediction-whole" / "0" / "zarr.json").is_file()
    # a standard label image, coloured and explained, zoomable like the image
    read = validate_and_read(ref.store_uri)
    found = read.labels["prediction-whole"]
    assert [lv[1:] for lv in found["levels"]] == [lv[1:] for lv in read.image_levels]
    assert sorted(found["colors"]) == sorted(found["properties"]) == list(range(1, len(s.classes) + 1))
    assert found["colors"][1] == [1.0, 0.0, 0.0, 1.0]  # as the scribbles of this store describe the class
    assert found["properties"][2] == {"class": s.classes[1], "name": s.classes[1].rsplit(":", 1)[-1],
                                      "run": "whole", "model_sha256": attrs["model_sha256"]}
    level1 = np.asarray(zarr.open_group(ref.store_uri, mode="r")["labels/prediction-whole/1"][0])
    assert level1.shape == ((H + 1) // 2, (W + 1) // 2)
    np.testing.assert_array_equal(level1, mode2x(ref_classes.astype(np.uint8) + 1))
    # the prediction is good, too
    assert (classes[:] + 1 == s.truth).mean() > 0.85


def test_interrupted_run_resumes_at_the_first_unfinished_chunk(setup):
    _, ref, model, ref_classes, ref_prob = setup
    seen = []

    def interrupt(res):
        seen.append(res["index"])
        if len(seen) == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        predict(ref, model, "resumed", workers=1, progress=False, on_result=interrupt)
    assert list_runs(ref.store_uri)["resumed"]["status"] == "running"
    assert "prediction-resumed" not in validate_and_read(ref.store_uri).labels  # listed once complete
    with pytest.raises(PredictionError, match="not complete"):
        prediction_arrays(ref.store_uri, "resumed")
    computed = []
    res = predict(ref, model, "resumed", workers=1, progress=False, on_result=lambda r: computed.append(r["index"]))
    assert res.chunks_skipped == 4 and res.chunks_computed == 5
    assert not set(computed) & set(seen)  # finished chunks are not computed again
    classes, prob, attrs = prediction_arrays(ref.store_uri, "resumed")
    np.testing.assert_array_equal(classes[:], ref_classes)
    np.testing.assert_array_equal(prob[:], ref_prob)
    # a complete run: running it again does nothing
    again = predict(ref, model, "resumed", progress=False)
    assert (again.chunks_skipped, again.chunks_computed) == (9, 0)


def test_a_run_made_with_another_model_is_not_overwritten_silently(setup, tmp_path):
    _, ref, model, _, _ = setup
    other = tmp_path / "other.pt"
    train([ref], other, labels="scribbles", classifier="rf", n_estimators=2, max_depth=3, n_jobs=1)
    predict(ref, model, "guarded", progress=False, block=3)  # one task for the whole image
    with pytest.raises(PredictionError, match="another model"):
        predict(ref, other, "guarded", progress=False)
    res = predict(ref, other, "guarded", progress=False, overwrite=True, block=3)
    assert res.chunks_computed == 9 and list_runs(ref.store_uri)["guarded"]["model_path"] == str(other)


def test_model_for_other_bands_is_refused(setup, tmp_path):
    _, _, model, _, _ = setup
    grey = tmp_path / "grey.tif"
    tifffile.imwrite(grey, np.zeros((64, 64), np.uint8))
    import_image(grey, tmp_path / "grey.ome.zarr", pixel_size_um=1.0, progress=False)
    with pytest.raises(PredictionError, match="expects 9 features"):
        predict(str(tmp_path / "grey.ome.zarr"), model, "x", progress=False)


def test_dask_distributed_local_cluster(setup):
    distributed = pytest.importorskip("distributed")
    _, ref, model, ref_classes, ref_prob = setup
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster:
        res = predict(ref, model, "cluster", scheduler=cluster.scheduler_address, block=2, progress=False)
    assert res.chunks_computed == 9
    classes, prob, _ = prediction_arrays(ref.store_uri, "cluster")
    np.testing.assert_array_equal(classes[:], ref_classes)
    np.testing.assert_array_equal(prob[:], ref_prob)


def test_cnn_hypercolumns_are_seamless_across_chunks(tmp_path):
    """CNN features: regions start on the network's stride and keep the image's size
    modulo the stride (TF 'same' padding depends on it), so chunked == whole up to
    float rounding. 3 chunks wide, 1090 px: odd after the first stride, so a middle
    region cut to a round size would be padded differently."""
    s, ref = stored_section(tmp_path, shape=(160, 1090), seed=9, name="cnn")
    cfg = FeatureConfig(filters={"gaussian": (1.0,)}, include_raw=False, truncate=3.0, cnn=CNNConfig())
    model = tmp_path / "cnn.pt"
    train([ref], model, labels="scribbles", classifier="rf", feature_config=cfg, n_estimators=4, max_depth=6,
          n_jobs=1)
    predict(ref, model, "cnn", progress=False)
    clf = load_classifier(model)
    proba = clf.predict_proba(compute_features(s.image, cfg)[0])
    classes, prob, _ = prediction_arrays(ref.store_uri, "cnn")
    assert (classes[:] == (argmax_labels(proba) - 1).numpy()).mean() > 0.999
    np.testing.assert_allclose(prob[:].astype(np.float32), proba.max(0).values.numpy(), atol=1e-3)
