"""GPU prediction equals CPU prediction, for the default feature candidates and every
classifier (skipped without CUDA).

Imports only numpy, torch and ``mis.segment`` (no database, no zarr), and needs no
conftest: on a bare device machine run
``python -m pytest tests/test_gpu.py --noconftest -p no:cacheprovider``.
The tolerances are those of :func:`mis.segment.throughput.compare_devices`: features
within 1e-4 relative (``conv2d`` without TF32 on the GPU, shift-and-add on the CPU);
MLP and MultiGaussian probabilities within 1e-3 and equal labels wherever the best class
leads by more than that; the random forest (a pixel within float rounding of a split may
take the other branch in one tree) with labels equal on >= 99.9 % of the pixels, mean
probability difference <= 1e-4, and identical probabilities for identical features.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mis.segment.select import CANDIDATES
from mis.segment.varied import SUITE, make_section

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def section():
    return make_section(next(s for s in SUITE if s.name == "coarse-texture-pair"), (384, 448))


@pytest.mark.parametrize("name", list(CANDIDATES))
def test_features_and_predictions_on_the_gpu_equal_the_cpu(section, name):
    from mis.segment.throughput import compare_devices

    rows = compare_devices(section, "cuda", {name: CANDIDATES[name]})
    assert [r["classifier"] for r in rows] == ["rf", "mlp", "mgc"]
    bad = [r for r in rows if not r["ok"]]
    assert not bad, bad


def test_chunked_gpu_segmentation_equals_the_cpu(section):
    """The block path of ``mis predict`` (halo reads, device lock, pinned copies) on a
    chunked store: GPU and CPU give the same classes, and chunked equals whole-image."""
    from mis.segment.classifiers import RandomForestPixelClassifier, training_data
    from mis.segment.filters import compute_features
    from mis.segment.predict import block_probabilities, plan_blocks
    from mis.segment.throughput import ChunkStore

    cfg = CANDIDATES["medium"]
    f, names = compute_features(section.image, cfg)
    X, y = training_data(f, section.scribbles)
    clf = RandomForestPixelClassifier(section.classes, cfg, names, n_estimators=8, max_depth=8, random_state=0)
    clf.fit(X, y)
    store = ChunkStore(section.image, chunk=128)
    out = {}
    for dev in ("cpu", "cuda"):
        clf.to(dev)
        lab = np.empty(section.truth.shape, np.int64)
        for b in plan_blocks(store.shape, store.chunks, 2):
            lab[b.y0 : b.y1, b.x0 : b.x1] = block_probabilities(store, clf, b).argmax(0).cpu().numpy()
        out[dev] = lab
    assert (out["cpu"] == out["cuda"]).mean() >= 0.999
    whole = clf.to("cpu").predict_proba(f).argmax(0).numpy()
    assert np.array_equal(out["cpu"], whole)  # chunked == whole image on the CPU, exactly
