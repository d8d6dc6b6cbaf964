"""Active learning (`mis label suggest`) and label quality (`mis label check`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import typer
from PIL import Image
from scipy import ndimage as ndi
from typer.testing import CliRunner

from mis.cli_segment import label_app
from mis.imagery.chunks import tiles as chunk_tiles
from mis.imagery.imageref import image_ref
from mis.imagery.omezarr import import_image
from mis.segment.active import check_labels, suggest_regions
from mis.segment.labels import ResolvedClass, store_labels
from mis.segment.predict import predict
from mis.segment.synthetic import synthetic_section
from mis.segment.train import train

app = typer.Typer()
app.add_typer(label_app, name="label")
runner = CliRunner()


def _store_labels(ref, name, lab, classes):
    legend = {k + 1: ResolvedClass(c, c, c, "FFFFFF") for k, c in enumerate(classes)}
    h, w = lab.shape

    def tiles():
        for y0, x0, th, tw in chunk_tiles((h, w), (512, 512)):
            yield y0, x0, lab[y0 : y0 + th, x0 : x0 + tw]

    return store_labels(ref, name, legend, tiles, max_value=len(classes))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("active")
    s = synthetic_section((520, 640), seed=4, scribble_fraction=0.006)
    tif = root / "s.tif"
    tifffile.imwrite(tif, s.image.transpose(1, 2, 0), photometric="rgb")
    import_image(tif, root / "s.ome.zarr", pixel_size_um=1.0, progress=False)
    ref = image_ref(str(root / "s.ome.zarr"))
    _store_labels(ref, "scribbles", s.scribbles, s.classes)
    model = root / "rf.pt"
    train([ref], model, labels="scribbles", classifier="rf", n_estimators=8, max_depth=6)
    return s, ref, model, root


def test_suggested_regions_are_uncertain_and_spread_apart(setup, tmp_path):
    s, ref, model, _ = setup
    sg = suggest_regions(ref, model=model, k=6, size=64, measure="margin")
    assert [r.rank for r in sg.regions] == list(range(1, 7))
    scores = [r.score for r in sg.regions]
    assert scores == sorted(scores, reverse=True)
    for r in sg.regions:
        assert 0 <= r.x0 < r.x1 <= 640 and 0 <= r.y0 < r.y1 <= 520 and (r.x1 - r.x0, r.y1 - r.y0) == (64, 64)
        assert r.predicted in s.classes
    centres = np.array([((r.x0 + r.x1) / 2, (r.y0 + r.y1) / 2) for r in sg.regions])
    d = np.hypot(*(centres[:, None] - centres[None]).transpose(2, 0, 1))
    assert d[np.triu_indices(6, 1)].min() >= 64 - 8  # non-maximum suppression: one region per place
    # the picked regions are more uncertain than the image on average
    u = sg.uncertainty
    top = np.mean([u[r.y0 // 8 : r.y1 // 8, r.x0 // 8 : r.x1 // 8].mean() for r in sg.regions])
    assert top > 1.5 * u.mean()
    ent = suggest_regions(ref, model=model, k=3, size=64, measure="entropy")
    assert len(ent.regions) == 3 and 0 <= ent.uncertainty.min() and ent.uncertainty.max() <= 1
    gj = sg.geojson()
    assert gj["type"] == "FeatureCollection" and len(gj["features"]) == 6
    ring = gj["features"][0]["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and ring[0] == [sg.regions[0].x0, sg.regions[0].y0]
    # from a stored run (1 - max probability)
    predict(ref, model, "rf", progress=False)
    assert len(suggest_regions(ref, run="rf", k=4, size=64).regions) == 4


def test_cli_suggest_writes_geojson_and_png(setup, tmp_path):
    _, ref, model, _ = setup
    out = runner.invoke(app, ["label", "suggest", ref.store_uri, "--model", str(model), "-k", "3", "--size", "80",
                              "--geojson", str(tmp_path / "n.geojson"), "--png", str(tmp_path / "n.png")])
    assert out.exit_code == 0, out.output
    assert len(json.loads((tmp_path / "n.geojson").read_text())["features"]) == 3
    png = Image.open(tmp_path / "n.png")
    assert png.format == "PNG" and png.size == (640, 520)


def test_check_finds_a_mislabelled_stroke(setup, tmp_path):
    s, ref, _, _ = setup
    lab = s.scribbles.copy()
    comp, n = ndi.label(lab == 4, structure=np.ones((3, 3)))  # galena strokes
    sizes = np.bincount(comp.ravel())[1:]
    wrong = int(np.argmax(sizes)) + 1
    lab[comp == wrong] = 2  # a galena stroke labelled chalcopyrite
    assert n >= 2 and (lab == 2).any()
    _store_labels(ref, "noisy", lab, s.classes)
    res = check_labels(ref, "noisy", k=8, threshold=0.6)
    worst = res.components[0]
    assert worst["label"] == s.classes[1] and worst["suggested"] == s.classes[3]
    assert worst["disagreement"] > 0.8
    rows, cols = np.nonzero(comp == wrong)
    assert worst["bbox"] == [int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1]
    flagged = np.array([[p.row, p.col] for p in res.suspects])
    on_wrong = comp[flagged[:, 0], flagged[:, 1]] == wrong
    assert on_wrong.sum() == worst["sampled"]  # every sampled pixel of that stroke is listed
    # the correct galena strokes, whose only dissenter was the mislabelled one, are cleared
    assert not [p for p in res.suspects if p.label == s.classes[3] and p.suggested == s.classes[1]]
    # clean labels: hardly anything to report
    clean = check_labels(ref, "scribbles", k=8, threshold=0.6)
    assert len(clean.suspects) < 0.05 * clean.sampled
    out = runner.invoke(app, ["label", "check", ref.store_uri, "--labels", "noisy", "--csv", str(tmp_path / "c.csv"),
                              "--geojson", str(tmp_path / "c.geojson")])
    assert out.exit_code == 0, out.output
    assert "neighbours say" in out.output
    assert (tmp_path / "c.csv").read_text().splitlines()[0] == "row,col,x,y,label,suggested,disagreement,component"
    assert json.loads((tmp_path / "c.geojson").read_text())["features"]
