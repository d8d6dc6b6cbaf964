"""`mis train` from stored labels (chunk by chunk == whole-image features) and
`mis evaluate` (per-class metrics, confusion, JSON/CSV/PNG), through the CLI too."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

from mis.cli_segment import evaluate_cmd, label_app, predict_cmd, train_cmd
from mis.imagery.catalogue import add_image
from mis.imagery.chunks import tiles as chunk_tiles
from mis.imagery.imageref import image_ref
from mis.imagery.omezarr import import_image
from mis.segment.classifiers import load_classifier
from mis.segment.config import FeatureConfig
from mis.segment.evaluate import evaluate
from mis.segment.filters import compute_features
from mis.segment.labels import ResolvedClass, store_labels
from mis.segment.metrics import segmentation_report
from mis.segment.predict import predict, prediction_arrays
from mis.segment.select import CANDIDATES
from mis.segment.synthetic import synthetic_multispectral, synthetic_section
from mis.segment.train import gather_samples, train
from tests import factories as f

app = typer.Typer()
app.add_typer(label_app, name="label")
app.command("train")(train_cmd)
app.command("predict")(predict_cmd)
app.command("evaluate")(evaluate_cmd)
runner = CliRunner()


def _store(root, s, name, values=None):
    """Store a synthetic section and its scribbles; ``values`` renumbers the classes
    (label value per class) to show that classes are matched by URI, not value."""
    if s.image.shape[0] == 3:
        src = [root / f"{name}.tif"]
        tifffile.imwrite(src[0], s.image.transpose(1, 2, 0), photometric="rgb")
    else:  # a band stack: one greyscale file per band
        src = [root / f"{name}-b{i}.tif" for i in range(s.image.shape[0])]
        for p, band in zip(src, s.image, strict=True):
            tifffile.imwrite(p, band)
    import_image(src, root / f"{name}.ome.zarr", pixel_size_um=1.0, progress=False)
    ref = image_ref(str(root / f"{name}.ome.zarr"))
    values = values or list(range(1, len(s.classes) + 1))
    lut = np.zeros(len(s.classes) + 1, np.uint8)
    lut[1:] = values
    lab = lut[s.scribbles]
    legend = {v: ResolvedClass(c, c, c, "FFFFFF") for v, c in zip(values, s.classes, strict=True)}
    h, w = lab.shape

    def tiles():
        for y0, x0, th, tw in chunk_tiles((h, w), (512, 512)):
            yield y0, x0, lab[y0 : y0 + th, x0 : x0 + tw]

    store_labels(ref, "scribbles", legend, tiles, max_value=max(values))
    return ref


def test_samples_gathered_chunk_by_chunk_equal_whole_image_features(tmp_path):
    a = synthetic_section((600, 700), seed=5, scribble_fraction=0.01)
    b = synthetic_section((300, 520), seed=6, scribble_fraction=0.01)
    ra = _store(tmp_path, a, "a")
    rb = _store(tmp_path, b, "b", values=[5, 4, 3, 2, 1])  # the same minerals, numbered the other way
    cfg = FeatureConfig(filters={"gaussian": (1.0, 3.5), "hess_eig": (1.6,), "st_eig": (1.0,)})
    smp = gather_samples([ra, rb], "scribbles", cfg)
    assert smp.classes == a.classes  # order of first appearance, by URI
    fa, _ = compute_features(a.image, cfg)
    fb, _ = compute_features(b.image, cfg)
    for k, (s, feats) in enumerate([(a, fa), (b, fb)]):
        m = smp.positions[:, 0] == k
        r, c = smp.positions[m, 1], smp.positions[m, 2]
        assert torch.equal(smp.X[torch.from_numpy(np.flatnonzero(m))], feats[:, r, c].T)  # exactly
        np.testing.assert_array_equal(smp.y.numpy()[m], s.scribbles[r, c])
    assert sum(smp.counts.values()) == int((a.scribbles > 0).sum() + (b.scribbles > 0).sum())


def test_train_rf_and_mgc_and_evaluate_against_a_truth_image(tmp_path):
    s = synthetic_section((520, 600), seed=7, scribble_fraction=0.01)
    ref = _store(tmp_path, s, "sec")
    res = train([ref], tmp_path / "rf.pt", labels="scribbles", classifier="rf", n_estimators=8, max_depth=8)
    clf = load_classifier(res.model_path)
    meta = clf.metadata
    assert clf.classes == s.classes and meta["feature_preset"] == f"auto:{res.selection.name}"
    sel = meta["feature_selection"]  # the default (--features auto) records its choice
    assert sel["chosen"] == res.selection.name and set(sel["scores"]) == set(CANDIDATES)
    assert clf.feature_config == CANDIDATES[sel["chosen"]] and sel["strokes"] >= 2 * len(s.classes)
    assert meta["training_images"][0]["labels"] == "labels/scribbles-v1" and meta["training_images"][0]["version"] == 1
    assert meta["n_samples"] == int((s.scribbles > 0).sum())
    predict(ref, res.model_path, "rf", progress=False)

    truth = tmp_path / "truth.png"
    t = s.truth.astype(np.uint8)
    t[:5] = 6  # a class the model does not know
    t[-5:] = 0  # not evaluated
    Image.fromarray(t).save(truth)
    legend = tmp_path / "legend.json"
    legend.write_text(json.dumps({**{str(i + 1): c for i, c in enumerate(s.classes)}, "6": "urn:x:unknown"}))
    ev = evaluate(ref, truth=truth, legend=legend, run="rf")
    classes, _, _ = prediction_arrays(ref.store_uri, "rf")
    want = segmentation_report(t, classes[:].astype(np.int64) + 1, 6)
    np.testing.assert_array_equal(ev.report.confusion, want.confusion)
    d = ev.to_dict()
    assert d["classes"] == [*s.classes, "urn:x:unknown"] and d["per_class"][5]["recall"] == 0.0
    assert d["pixels"] == int((t > 0).sum()) and d["macro"]["f1"] == pytest.approx(want.macro_f1)
    assert d["per_class"][0]["f1"] > 0.7 and d["accuracy"] > 0.85
    # predicting now with the model gives the same numbers as the stored run
    now = evaluate(ref, truth=truth, legend=legend, model=res.model_path)
    np.testing.assert_array_equal(now.report.confusion, ev.report.confusion)
    # held-out labels stored with the image as the truth
    assert evaluate(ref, labels="scribbles", run="rf").report.accuracy > 0.95

    ms = synthetic_multispectral((200, 260), n_bands=4, n_classes=3, seed=1)
    mref = _store(tmp_path, ms, "ms")
    mgc = train([mref], tmp_path / "mgc.pt", labels="scribbles", classifier="mgc", features="raw")
    assert mgc.classifier.kind == "multigaussian" and mgc.classifier.n_features == 4
    tpath = tmp_path / "ms-truth.tif"
    tifffile.imwrite(tpath, ms.truth.astype(np.uint16))
    mleg = tmp_path / "ms-legend.json"
    mleg.write_text(json.dumps({str(i + 1): c for i, c in enumerate(ms.classes)}))
    assert evaluate(mref, truth=tpath, legend=mleg, model=mgc.model_path).report.macro_f1 > 0.9


def test_cli_label_train_predict_evaluate(db_url, session, tmp_path):
    hole = f.drillcore(session, f.deposit(session), length_m=300)
    f.plug(session, hole, "P-1", 100, 101)
    session.commit()
    s = synthetic_section((520, 560), seed=8, scribble_fraction=0.01)
    tif = tmp_path / "section.tif"
    tifffile.imwrite(tif, s.image.transpose(1, 2, 0), photometric="rgb")
    image = add_image("DH-1/P-1", tif, pixel_size_um=0.5, modality="reflected-light",
                      store_root=str(tmp_path / "store"), url=db_url, progress=False).image_id
    names = [c.rsplit(":", 1)[-1] for c in s.classes]  # quartz, chalcopyrite, ...: vocabulary terms
    legend = tmp_path / "legend.json"
    legend.write_text(json.dumps({str(i + 1): n for i, n in enumerate(names)}))
    Image.fromarray(s.scribbles).save(tmp_path / "scribbles.png")
    Image.fromarray(s.truth.astype(np.uint8)).save(tmp_path / "truth.png")
    env = {"MIS_DATABASE_URL": db_url}

    def mis(*args):
        out = runner.invoke(app, [str(a) for a in args], env=env)
        assert out.exit_code == 0, out.output
        return out.output

    mis("label", "import", image, tmp_path / "scribbles.png", "--legend", legend)
    trained = mis("train", image, "--out", tmp_path / "rf.pt", "--trees", 8, "--max-depth", 8)
    chosen = load_classifier(tmp_path / "rf.pt").metadata["feature_selection"]["chosen"]
    assert f"features: auto -> {chosen}" in trained and "macro F1 of held-out strokes (4 folds" in trained
    assert "predicted" in mis("predict", image, "--model", tmp_path / "rf.pt", "--run", "r1", "--quiet")
    out = mis("evaluate", image, "--truth", tmp_path / "truth.png", "--legend", legend, "--run", "r1", "--json",
              "--csv", tmp_path / "m.csv", "--plot", tmp_path / "c.png")
    d = json.loads(out)
    assert [c["name"] for c in d["per_class"]] == names
    assert all(c["uri"].startswith("http") for c in d["per_class"])
    assert d["macro"]["f1"] > 0.8 and len(d["confusion"]) == 5 and d["source"]["run"] == "r1"
    assert (tmp_path / "m.csv").read_text().startswith("label,class,support")
    assert Image.open(tmp_path / "c.png").format == "PNG"
    bad = runner.invoke(app, ["evaluate", str(image), "--truth", str(tmp_path / "truth.png"), "--run", "r1"], env=env)
    assert bad.exit_code == 1 and "--legend" in bad.output
