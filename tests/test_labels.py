"""`mis label import`: label images + legend or GeoJSON, resolved through the vocabulary,
stored as versioned OME-Zarr labels in the image's store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
import typer
import zarr
from PIL import Image
from typer.testing import CliRunner

from mis.cli_segment import label_app
from mis.imagery.catalogue import add_image
from mis.imagery.layout import mode2x
from mis.imagery.omezarr import import_image
from mis.segment.labels import LabelError, import_labels, label_versions, read_labels

from tests import factories as f
from tests.omezarr_readers import validate_and_read

app = typer.Typer()
app.add_typer(label_app, name="label")
runner = CliRunner()


@pytest.fixture
def image(db_url, session, tmp_path):
    """A 600 x 700 RGB image (2 x 2 chunks) registered for a plug."""
    hole = f.drillcore(session, f.deposit(session), length_m=300)
    f.plug(session, hole, "P-1", 100, 101)
    session.commit()
    tif = tmp_path / "section.tif"
    tifffile.imwrite(tif, np.random.default_rng(0).integers(0, 255, (600, 700, 3), dtype=np.uint8),
                     photometric="rgb")
    return add_image("DH-1/P-1", tif, pixel_size_um=0.5, modality="reflected-light",
                     store_root=str(tmp_path / "store"), url=db_url, progress=False)


@pytest.fixture
def bare_store(tmp_path) -> str:
    """An image store without catalogue row (errors that need no vocabulary)."""
    tif = tmp_path / "bare.tif"
    tifffile.imwrite(tif, np.zeros((40, 50, 3), np.uint8), photometric="rgb")
    return import_image(tif, tmp_path / "bare.ome.zarr", pixel_size_um=1.0, progress=False).store_uri


def _scribbles() -> np.ndarray:
    lab = np.zeros((600, 700), np.uint8)
    lab[10:20, 10:30] = 1
    lab[550:560, 480:690] = 2  # across the chunk seam at x = 512
    lab[300, 300:305] = 3
    return lab


def test_label_image_with_legend_is_stored_as_versioned_ome_labels(image, db_url, tmp_path):
    png = tmp_path / "scribbles.png"
    Image.fromarray(_scribbles()).save(png)
    legend = tmp_path / "legend.json"
    legend.write_text(json.dumps({"0": None, "1": "Qz", "2": "chalcopyrite", "3": "pore/epoxy"}))
    env = {"MIS_DATABASE_URL": db_url}
    args = ["label", "import", str(image.image_id), str(png), "--legend", str(legend), "--name", "scribbles"]
    out = runner.invoke(app, args, env=env)
    assert out.exit_code == 0, out.output
    assert "labels/scribbles-v1" in out.output

    ls = read_labels(image.store_uri, "scribbles")
    assert ls.version == 1 and ls.array.shape == (1, 600, 700) and ls.array.chunks == (1, 512, 512)
    np.testing.assert_array_equal(ls.read(), _scribbles())
    assert [u.rsplit("/", 1)[-1] for u in ls.classes] == ["quartz", "chalcopyrite", "pore-epoxy"]
    root = zarr.open_group(image.store_uri, mode="r")
    assert root["labels"].attrs["ome"] == {"version": "0.5", "labels": ["scribbles-v1"]}
    ome = dict(root["labels/scribbles-v1"].attrs)["ome"]
    colours = {c["label-value"]: c["rgba"] for c in ome["image-label"]["colors"]}
    assert colours == {1: [208, 208, 208, 255], 2: [224, 176, 0, 255], 3: [0, 229, 255, 255]}  # vocabulary colours
    props = {p["label-value"]: p for p in ome["image-label"]["properties"]}
    assert props[1]["class"] == ls.legend[1] and props[1]["term"] == "Qz"
    assert ome["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0, 0.5, 0.5]
    assert ome["image-label"]["source"] == {"image": "../../"}
    assert ls.attrs["mis"]["pixel_counts"] == {"1": 200, "2": 2100, "3": 5}
    # a standard label image: valid for the independent validator, read by napari's reader
    read = validate_and_read(image.store_uri)
    found = read.labels["scribbles-v1"]
    assert [lv[1:] for lv in found["levels"]] == [lv[1:] for lv in read.image_levels]  # zoomable like the image
    assert found["colors"][2] == [224 / 255, 176 / 255, 0.0, 1.0]
    assert found["properties"][1] == {"class": ls.legend[1], "name": "quartz", "symbol": "Qz", "term": "Qz"}
    level1 = np.asarray(root["labels/scribbles-v1/1"][0])
    assert level1.shape == (300, 350) and level1[5, 5] == 1 and level1[150, 150] == 3  # a 1-px line survives

    # the same labels again: nothing new; changed labels: a new version, the old one kept
    again = runner.invoke(app, args, env=env)
    assert again.exit_code == 0 and "identical" in again.output
    assert label_versions(image.store_uri, "scribbles") == [1]
    changed = _scribbles()
    changed[100:110, 100:110] = 2
    Image.fromarray(changed).save(png)
    labels_dir = Path(image.store_uri) / "labels"  # a label image another tool added (napari, QuPath)
    shutil.copytree(labels_dir / "scribbles-v1", labels_dir / "cells")
    zarr.open_group(image.store_uri, mode="r+")["labels"].attrs["ome"] = {"version": "0.5", "labels": ["scribbles-v1", "cells"]}
    assert runner.invoke(app, args, env=env).exit_code == 0
    assert label_versions(image.store_uri, "scribbles") == [1, 2]
    np.testing.assert_array_equal(read_labels(image.store_uri, "scribbles").read(), changed)
    np.testing.assert_array_equal(read_labels(image.store_uri, "scribbles", 1).read(), _scribbles())
    assert zarr.open_group(image.store_uri, mode="r")["labels"].attrs["ome"]["labels"] == [
        "cells", "scribbles-v1", "scribbles-v2"]  # the other tool's label image is kept
    assert not list((Path(image.store_uri) / "labels").glob(".*partial*"))
    assert sorted(validate_and_read(image.store_uri).labels) == ["cells", "scribbles-v1", "scribbles-v2"]


def test_unknown_terms_are_refused_with_suggestions_and_nothing_is_written(image, db_url, tmp_path):
    png = tmp_path / "s.png"
    Image.fromarray(_scribbles()).save(png)
    legend = tmp_path / "legend.json"
    legend.write_text(json.dumps([{"value": 1, "term": "quartzz"}, {"value": 2, "term": "Chalcopyrit"},
                                  {"value": 3, "term": "epoxy"}]))
    out = runner.invoke(app, ["label", "import", str(image.image_id), str(png), "--legend", str(legend)],
                        env={"MIS_DATABASE_URL": db_url})
    assert out.exit_code == 1
    text = " ".join(out.output.split())
    assert "'quartzz'" in text and "'Chalcopyrit'" in text and "did you mean" in text
    assert "quartz" in text.split("'quartzz'")[1]
    assert not (Path(image.store_uri) / "labels").exists()


def test_geojson_polygons_lines_points_are_rasterised_in_pixel_coordinates(image, db_url, tmp_path):
    sq = [[10, 10], [20, 10], [20, 20], [10, 20], [10, 10]]
    hole = [[13, 13], [17, 13], [17, 17], [13, 17], [13, 13]]
    feats = [
        {"type": "Feature", "properties": {"class": "quartz"}, "geometry": {"type": "Polygon", "coordinates": [sq, hole]}},
        {"type": "Feature", "properties": {"class": "Ccp"},
         "geometry": {"type": "LineString", "coordinates": [[100.5, 50.5], [110.5, 50.5]]}},
        {"type": "Feature", "properties": {"class": "Ccp", "width": 3},
         "geometry": {"type": "LineString", "coordinates": [[200, 100.5], [220, 100.5]]}},
        {"type": "Feature", "properties": {"classification": {"name": "pore / epoxy", "color": [0, 0, 255]}},
         "geometry": {"type": "Point", "coordinates": [300.2, 400.7]}},
        {"type": "Feature", "properties": {"class": "quartz"},
         "geometry": {"type": "Polygon", "coordinates": [[[500, 0], [530, 0], [530, 5], [500, 5], [500, 0]]]}},
    ]
    gj = tmp_path / "strokes.geojson"
    gj.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    st = import_labels(image.image_id, gj, name="strokes", url=db_url)
    lab = read_labels(image.store_uri, "strokes").read()
    qz, ccp, pore = 1, 2, 3
    assert st.legend[qz].endswith("/quartz") and st.legend[pore].endswith("/pore-epoxy")
    want = np.zeros((10, 10), bool)
    want[:, :] = True
    want[3:7, 3:7] = False  # the hole
    np.testing.assert_array_equal(lab[10:20, 10:20] == qz, want)
    assert lab[9, 10] == 0 and lab[10, 20] == 0
    np.testing.assert_array_equal(np.nonzero(lab[50] == ccp)[0], np.arange(100, 111))
    assert sorted(set(np.nonzero(lab[:, 205:216] == ccp)[0])) == [99, 100, 101]
    assert lab[400, 300] == pore and (lab == pore).sum() == 1
    assert (lab[0:5, 500:530] == qz).all() and (lab[:, 490:540] == qz).sum() == 150  # across the seam


def test_bad_label_input_is_refused_naming_the_file(bare_store, tmp_path):
    legend = tmp_path / "legend.json"
    legend.write_text(json.dumps({"1": "urn:x:a"}))
    small = tmp_path / "small.png"
    Image.fromarray(np.ones((10, 10), np.uint8)).save(small)
    with pytest.raises(LabelError, match=r"small.png: label image is 10 x 10 px .* 40 x 50 px"):
        import_labels(bare_store, small, legend=legend)
    two = tmp_path / "two.png"
    lab = np.zeros((40, 50), np.uint8)
    lab[0, 0], lab[1, 1] = 1, 2
    Image.fromarray(lab).save(two)
    with pytest.raises(LabelError, match=r"two.png: label values \[2\] .* not in the legend"):
        import_labels(bare_store, two, legend=legend)
    rgb = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(rgb)
    with pytest.raises(LabelError, match="rgb.png: label image is RGB"):
        import_labels(bare_store, rgb, legend=legend)
    with pytest.raises(LabelError, match="needs --legend"):
        import_labels(bare_store, two)
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"kind": "x"}, "geometry": {"type": "Point", "coordinates": [1, 1]}}]}))
    with pytest.raises(LabelError, match=r"bad.geojson: feature 0: property 'class'"):
        import_labels(bare_store, bad)
    badlegend = tmp_path / "badlegend.json"
    badlegend.write_text(json.dumps({"one": "quartz"}))
    with pytest.raises(LabelError, match=r"badlegend.json: key 'one': label value 'one' is not an integer"):
        import_labels(bare_store, two, legend=badlegend)
    assert label_versions(bare_store, "default") == []


def test_label_pyramid_levels_are_the_mode_of_the_labelled_pixels():
    tile = np.array([[0, 0, 2, 3, 5],
                     [0, 1, 3, 2, 5],
                     [4, 4, 0, 0, 0],
                     [4, 1, 0, 0, 0]], np.uint8)
    # a lone labelled pixel beats three unlabelled; a tie goes to the first in raster order;
    # the odd last column is paired with itself
    np.testing.assert_array_equal(mode2x(tile), [[1, 2, 5], [4, 0, 0]])
    assert mode2x(tile).dtype == np.uint8
