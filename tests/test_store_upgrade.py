"""Stores of the first layout (nested label versions, a private predictions/ group) are
upgraded in place to standard label images: every value kept, valid for the independent
validator, idempotent, and safe to interrupt."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from typer.testing import CliRunner

from mis.cli import app
from mis.imagery import layout
from mis.imagery.catalogue import add_image
from mis.imagery.omezarr import _compressor, import_image, read_metadata
from mis.imagery.store import children
from mis.imagery.upgrade import StoreUpgradeError, needs_upgrade, upgrade_store
from mis.segment.labels import read_labels
from mis.segment.predict import PredictionError, list_runs, prediction_arrays
from tests import factories as f
from tests.omezarr_readers import validate_and_read

H, W = 600, 700  # 2 x 2 chunks, 2 pyramid levels
CLASSES = ["urn:x:mineral:quartz", "urn:x:mineral:pyrite", "urn:x:mineral:chalcopyrite"]
runner = CliRunner()


def _array(group, name, data, fill, dims, chunks):
    arr = group.create_array(name, shape=data.shape, chunks=chunks, dtype=data.dtype, fill_value=fill,
                             compressors=[_compressor(data.dtype)], dimension_names=dims)
    arr[...] = data
    return arr


def _section(root: Path) -> Path:
    tif = root / "section.tif"
    tifffile.imwrite(tif, np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8), photometric="rgb")
    return tif


def old_store(root: Path) -> tuple[str, dict[str, np.ndarray]]:
    """An image store as the first MIS layout wrote it (see :func:`add_first_layout`)."""
    uri = import_image(_section(root), root / "section.ome.zarr", pixel_size_um=0.5, progress=False).store_uri
    return uri, add_first_layout(uri)


def add_first_layout(uri: str) -> dict[str, np.ndarray]:
    """Labels and predictions as the first MIS layout wrote them into a store: scribbles
    at labels/scribbles/v1 (one level, nested), a complete run 'rf' and an interrupted run
    'half' under predictions/ (class index, 255 = not predicted); returns their pixels."""
    ms = read_metadata(uri)["ome"]["multiscales"][0]
    rng = np.random.default_rng(1)
    scribbles = np.zeros((1, H, W), np.uint8)
    scribbles[0, 10:20, 10:600] = 1
    scribbles[0, 550:560, 480:690] = 3
    index = rng.integers(0, 3, (H, W)).astype(np.uint8)
    index[:, 650:] = 255  # not predicted
    probability = rng.uniform(0.3, 1, (H, W)).astype(np.float16)
    counts = np.stack([np.full((2, 2), 100), np.full((2, 2), 200), np.full((2, 2), 300)], axis=-1).astype(np.int64)
    half_counts = counts.copy()
    half_counts[1:] = -1  # the second chunk row never finished

    root_group = zarr.open_group(uri, mode="r+")
    labels = root_group.create_group("labels", attributes={"ome": {"version": "0.5", "labels": ["scribbles/v1"]}})
    v1 = labels.create_group("scribbles").create_group("v1", attributes={
        "ome": {"version": "0.5",
                "multiscales": [{"name": "scribbles/v1", "axes": ms["axes"], "datasets": ms["datasets"][:1]}],
                "image-label": {"version": "0.5",
                                "colors": [{"label-value": 1, "rgba": [208, 208, 208, 255]},
                                           {"label-value": 3, "rgba": [224, 176, 0, 255]}],
                                "properties": [{"label-value": 1, "class": CLASSES[0], "name": "quartz", "term": "Qz"},
                                               {"label-value": 3, "class": CLASSES[2], "name": "chalcopyrite",
                                                "term": "Ccp"}],
                                "source": {"image": "../../../"}}},
        "mis": {"legend": {"1": CLASSES[0], "3": CLASSES[2]}, "content_sha256": "x"}})
    _array(v1, "0", scribbles, 0, ("c", "y", "x"), (1, 512, 512))
    preds = root_group.create_group("predictions")
    for run, status, done in (("rf", "complete", counts), ("half", "running", half_counts)):
        g = preds.create_group(run, attributes={"mis": {"run": run, "status": status, "classes": CLASSES,
                                                        "nodata": 255, "model_sha256": "ab" * 32}})
        _array(g, "classes", index, 255, ("y", "x"), (512, 512)).attrs.update({"classes": CLASSES, "run": run})
        _array(g, "probability", probability, float("nan"), ("y", "x"), (512, 512))
        _array(g, "chunk_counts", done, -1, ("chunk_y", "chunk_x", "class"), (1, 1, 3))
    return {"scribbles": scribbles[0], "index": index, "probability": probability}


def snapshot(uri: str) -> dict[str, str]:
    """Every file of a store and its SHA-256."""
    return {str(p.relative_to(uri)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(uri).rglob("*")) if p.is_file()}


def test_upgrade_gives_standard_label_images_with_every_value_kept(tmp_path):
    uri, old = old_store(tmp_path)
    from ome_zarr_models.v05.image import Image

    with pytest.raises(Exception, match="scribbles/v1"):  # what readers saw before
        Image.from_zarr(zarr.open_group(uri, mode="r"))
    assert needs_upgrade(uri)

    out = runner.invoke(app, ["image", "upgrade", uri])
    assert out.exit_code == 0, out.output
    assert "labels/scribbles-v1" in out.output and "labels/prediction-rf" in out.output
    assert not needs_upgrade(uri)
    assert not (Path(uri) / "predictions").exists() and not (Path(uri) / "labels" / "scribbles").exists()
    assert not list(Path(uri).rglob(".*"))  # no temporary left

    read = validate_and_read(uri)
    assert sorted(read.labels) == ["prediction-rf", "scribbles-v1"]  # the interrupted run is not shown
    for found in read.labels.values():
        assert [lv[1:] for lv in found["levels"]] == [lv[1:] for lv in read.image_levels]
    assert read.labels["scribbles-v1"]["properties"][3] == {"class": CLASSES[2], "name": "chalcopyrite",
                                                            "term": "Ccp"}
    pred = read.labels["prediction-rf"]
    assert pred["properties"][2]["class"] == CLASSES[1] and pred["properties"][2]["model_sha256"] == "ab" * 32
    assert pred["properties"][1]["name"] == "quartz"  # described as the store's scribbles describe it
    assert pred["colors"][1] == [208 / 255, 208 / 255, 208 / 255, 1.0]

    np.testing.assert_array_equal(read_labels(uri, "scribbles").read(), old["scribbles"])
    classes, probability, attrs = prediction_arrays(uri, "rf")
    np.testing.assert_array_equal(classes[:], old["index"])  # 255 = not predicted, as before
    np.testing.assert_array_equal(probability[:], old["probability"])
    assert attrs["status"] == "complete" and attrs["classes"] == CLASSES
    np.testing.assert_array_equal(zarr.open_group(uri)["labels/prediction-rf/0"][0, :, 650:], 0)
    # the interrupted run keeps its done-markers: `mis predict` resumes it
    assert list_runs(uri)["half"]["status"] == "running"
    with pytest.raises(PredictionError, match=r"\(2 chunks done\)"):
        prediction_arrays(uri, "half")

    before = snapshot(uri)
    again = runner.invoke(app, ["image", "upgrade", uri])
    assert again.exit_code == 0 and "already current" in again.output
    assert snapshot(uri) == before  # idempotent


def test_an_interrupted_upgrade_is_finished_by_the_first_open(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    uri, old = old_store(tmp_path / "a")
    reference = str(tmp_path / "reference.ome.zarr")
    shutil.copytree(uri, reference)
    upgrade_store(reference)  # uninterrupted, the result to reach
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = Path(uri) / "labels" / f".prediction-rf.upgrade-{dead.pid}-0123456789"
    stale.mkdir()  # left by an upgrade killed hard

    real = layout.build_pyramid
    calls = []

    def interrupt_second(group):
        calls.append(group.path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(group)

    monkeypatch.setattr(layout, "build_pyramid", interrupt_second)
    with pytest.raises(KeyboardInterrupt):
        upgrade_store(uri)
    monkeypatch.setattr(layout, "build_pyramid", real)
    # old or new, never half: the scribbles are upgraded, the runs are still the old groups
    assert (Path(uri) / "labels" / "scribbles-v1" / "zarr.json").is_file()
    assert not (Path(uri) / "labels" / "scribbles").exists()
    assert (Path(uri) / "predictions" / "rf" / "classes" / "zarr.json").is_file()
    assert not (Path(uri) / "labels" / "prediction-rf").exists()
    assert not stale.exists() and not list(Path(uri).rglob(".*upgrade*"))

    classes, _, _ = prediction_arrays(uri, "rf")  # the first open finishes the upgrade
    np.testing.assert_array_equal(classes[:], old["index"])
    assert snapshot(uri) == snapshot(reference)


def test_upgrade_all_goes_through_the_catalogue(db_url, session, tmp_path):
    hole = f.drillcore(session, f.deposit(session), length_m=300)
    f.plug(session, hole, "P-1", 100, 101)
    session.commit()
    image = add_image("DH-1/P-1", _section(tmp_path), pixel_size_um=0.5, modality="reflected-light",
                      store_root=str(tmp_path / "store"), url=db_url, progress=False)
    add_first_layout(image.store_uri)
    env = {"MIS_DATABASE_URL": db_url}
    assert runner.invoke(app, ["image", "upgrade"], env=env).exit_code == 1  # ids, paths or --all
    out = runner.invoke(app, ["image", "upgrade", "--all"], env=env)
    assert out.exit_code == 0, out.output
    assert f"{image.store_uri}: labels/scribbles-v1, labels/prediction-half, labels/prediction-rf" in out.output
    assert "already current" in runner.invoke(app, ["image", "upgrade", str(image.image_id)], env=env).output
    validate_and_read(image.store_uri)


def test_a_set_named_like_a_run_is_renamed_and_bad_colours_are_replaced(tmp_path):
    uri, old = old_store(tmp_path)
    labels = Path(uri) / "labels"
    shutil.copytree(labels / "scribbles", labels / "prediction-x")
    v1 = zarr.open_group(uri, mode="r+")["labels/prediction-x/v1"]
    ome = dict(v1.attrs)["ome"]
    ome["image-label"]["colors"][0]["rgba"] = ["red", 0, 0, 255]  # hand-edited metadata
    v1.attrs["ome"] = ome

    upgrade_store(uri)
    renamed = read_labels(uri, "labelset-prediction-x")
    np.testing.assert_array_equal(renamed.read(), old["scribbles"])
    assert renamed.attrs["mis"]["renamed_from"] == "prediction-x" and "x" not in list_runs(uri)
    read = validate_and_read(uri)
    colours = read.labels["labelset-prediction-x-v1"]["colors"]
    assert colours[1] == [v / 255 for v in layout.LabelClass(1, "", "", layout.fallback_colour(CLASSES[0])).rgba()]
    assert colours[3] == read.labels["scribbles-v1"]["colors"][3]


def test_a_group_that_cannot_be_upgraded_is_named_and_the_store_kept(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "good").mkdir()
    uri, _ = old_store(tmp_path / "bad")
    good, _ = old_store(tmp_path / "good")
    shutil.rmtree(Path(uri) / "predictions" / "rf" / "classes")  # a damaged run
    with pytest.raises(StoreUpgradeError, match=r"cannot upgrade predictions/rf"):
        list_runs(uri)
    assert (Path(uri) / "predictions" / "rf" / "zarr.json").is_file() and not list(Path(uri).rglob(".*upgrade*"))
    out = runner.invoke(app, ["image", "upgrade", uri, good])
    assert out.exit_code == 1 and "1 of 2 store(s) not upgraded" in out.output
    assert not needs_upgrade(good)  # the other store is upgraded all the same


def test_an_upgrade_killed_at_a_random_moment_is_finished_by_the_next(tmp_path):
    import random
    import signal
    import sys

    script = "import sys; from mis.imagery.upgrade import upgrade_store; print('go', flush=True); " \
             "upgrade_store(sys.argv[1])"

    def start(uri):
        proc = subprocess.Popen([sys.executable, "-c", script, uri], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "go"
        return proc, time.perf_counter()

    (tmp_path / "ref").mkdir()
    reference, _ = old_store(tmp_path / "ref")
    proc, t0 = start(reference)  # uninterrupted: the result to reach, and how long it takes
    assert proc.wait() == 0
    duration = time.perf_counter() - t0
    rng = random.Random(23)
    for attempt in range(4):
        (tmp_path / str(attempt)).mkdir()
        uri, old = old_store(tmp_path / str(attempt))
        proc, _ = start(uri)
        time.sleep(rng.uniform(0.0, duration))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # whatever was reached: every visible label image is complete, the old groups readable
        for child in children(uri, "labels"):
            group = zarr.open_group(uri, mode="r")[f"labels/{child}"]
            assert "0" in group or any(k.startswith("v") for k in group.group_keys()), child
        upgrade_store(uri)  # the next open finishes it
        assert snapshot(uri) == snapshot(reference), attempt
        np.testing.assert_array_equal(prediction_arrays(uri, "rf")[0][:], old["index"])
