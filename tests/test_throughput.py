"""The device benchmark's building blocks, checked on the CPU: the chunked store reads
like the array it holds, and the GPU report's comparison finds no difference when both
sides are the CPU."""

from __future__ import annotations

import numpy as np

from mis.segment.throughput import ChunkStore, compare_devices, segment_store, tiled_section


def test_chunk_store_slices_like_the_array():
    img = np.random.default_rng(0).integers(0, 65535, (2, 300, 410), dtype=np.uint16)
    st = ChunkStore(img, chunk=128)
    assert st.shape == img.shape and st.chunks == (2, 128, 128)
    for ys, xs in [(slice(0, 300), slice(0, 410)), (slice(5, 250), slice(127, 129)), (slice(299, 300), slice(0, 1))]:
        assert np.array_equal(st[:, ys, xs], img[:, ys, xs])
    assert st.read_all() == img.nbytes


def test_device_comparison_and_store_segmentation_run_on_the_cpu():
    image, sec = tiled_section(160, tile=96)
    assert image.shape == (3, 160, 160) and np.array_equal(image[:, 96:, :96], image[:, : 160 - 96, :96])
    from mis.segment.select import CANDIDATES

    rows = compare_devices(sec, "cpu", {"colour": CANDIDATES["colour"]})
    assert [r["classifier"] for r in rows] == ["rf", "mlp", "mgc"]
    assert all(r["ok"] and r["proba_max_abs"] == 0 and r["label_agreement"] == 1 for r in rows)
    from mis.segment.throughput import fit_models

    clf = fit_models(sec, CANDIDATES["colour"], "cpu")["rf"]
    assert segment_store(ChunkStore(image, chunk=64), clf, block=2, workers=2) > 0
