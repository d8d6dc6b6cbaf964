"""Classifiers (RF on tensors == scikit-learn, MLP, MultiGaussian), persistence, metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

from mis.segment.classifiers import (
    FORMAT_VERSION,
    MLPPixelClassifier,
    MultiGaussianClassifier,
    RandomForestPixelClassifier,
    load_classifier,
    training_data,
)
from mis.segment.config import FeatureConfig
from mis.segment.device import pick_device
from mis.segment.filters import compute_features
from mis.segment.forest import TensorForest
from mis.segment.metrics import confusion_matrix, segmentation_report
from mis.segment.synthetic import synthetic_multispectral, synthetic_section

CFG = FeatureConfig(filters={"gaussian": (1.0, 3.5), "st_eig": (1.0,)}, include_raw=False,
                    st_outer_ratio=3.0, derivatives="difference")


@pytest.fixture(scope="module")
def data():
    tr = synthetic_section((192, 192), n_classes=4, seed=11, grain_size=28, scribble_fraction=0.01)
    te = synthetic_section((192, 192), n_classes=4, seed=12, grain_size=28)
    ftr, names = compute_features(tr.image, CFG)
    fte, _ = compute_features(te.image, CFG)
    X, y = training_data(ftr, tr.scribbles)
    return tr, te, ftr, fte, X, y, names


def test_training_data(data):
    tr, _, ftr, _, X, y, names = data
    assert X.shape == (int((tr.scribbles > 0).sum()), len(names)) and y.min() >= 1
    r, c = np.argwhere(tr.scribbles > 0)[5]
    assert torch.equal(X[5], ftr[:, r, c]) and y[5] == tr.scribbles[r, c]


@pytest.mark.parametrize("kw", [dict(n_estimators=20), dict(n_estimators=7, max_depth=4, bootstrap=False)])
def test_forest_on_tensors_equals_sklearn(data, kw):
    _, _, _, fte, X, y, _ = data
    clf = RandomForestPixelClassifier(["a", "b", "c", "d"], n_jobs=1, backend="eager", random_state=0, **kw)
    clf.fit(X, y)
    p = clf.predict_proba(fte)
    assert p.shape == (4, 192, 192)
    ref = clf.sklearn_.predict_proba(fte.reshape(fte.shape[0], -1).T.numpy())
    np.testing.assert_allclose(p.reshape(4, -1).T.numpy(), ref, rtol=0, atol=2e-6)
    # ties aside, labels equal sklearn's predict (classes_ are labels 1..4)
    theirs = clf.sklearn_.predict(fte.reshape(fte.shape[0], -1).T.numpy())
    assert (clf.predict(fte).reshape(-1).numpy() == theirs).mean() > 0.999


def test_forest_thresholds_at_float32_edges():
    """Thresholds that are not float32 numbers, values right on them, a class missing
    from the training labels, extra-trees: still sklearn's probabilities exactly."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 50, (400, 3)).astype(np.float32) / 7.0  # many ties -> midpoints
    y = (X[:, 0] + X[:, 1] > 7).astype(int) + 1  # labels 1, 2 of 3 classes
    for est in (RandomForestClassifier(10, random_state=1), ExtraTreesClassifier(10, random_state=1)):
        est.fit(X, y)
        tf = TensorForest.from_sklearn(est, n_classes=3)
        p = tf.predict_proba(torch.from_numpy(X.T.copy()), chunk=128, backend="eager")
        assert torch.all(p[2] == 0)
        np.testing.assert_allclose(p[:2].T.numpy(), est.predict_proba(X), rtol=0, atol=1e-6)


def test_forest_compiled_backend_equals_eager(data):
    pytest.importorskip("torch._inductor")
    _, _, _, fte, X, y, _ = data
    clf = RandomForestPixelClassifier(["a", "b", "c", "d"], n_estimators=5, max_depth=6, n_jobs=1, random_state=0)
    clf.fit(X, y)
    x = fte.reshape(fte.shape[0], -1)[:, :5000]
    eager = clf.forest.predict_proba(x, chunk=4096, backend="eager")
    comp = clf.forest.predict_proba(x, chunk=4096, backend="compile")
    assert torch.allclose(eager, comp, atol=1e-6)


def test_mlp_and_forest_accuracy(data):
    tr, te, _, fte, X, y, names = data
    for clf in (RandomForestPixelClassifier(tr.classes, CFG, names, n_estimators=30, random_state=0, backend="eager"),
                MLPPixelClassifier(tr.classes, CFG, names, epochs=150)):
        clf.fit(X, y)
        r = segmentation_report(te.truth, clf.predict(fte).numpy(), tr.classes)
        assert r.macro_f1 > 0.85, (type(clf).__name__, r.summary())


def test_mlp_deterministic(data):
    tr, _, _, fte, X, y, _ = data
    a = MLPPixelClassifier(tr.classes, epochs=20, seed=3).fit(X, y).predict_proba(fte)
    b = MLPPixelClassifier(tr.classes, epochs=20, seed=3).fit(X, y).predict_proba(fte)
    assert torch.equal(a, b)


def test_multigaussian_multispectral():
    tr = synthetic_multispectral((160, 160), n_bands=4, n_classes=4, seed=5, scribble_fraction=0.01)
    te = synthetic_multispectral((160, 160), n_bands=4, n_classes=4, seed=6)
    X, y = training_data(torch.from_numpy(tr.image.astype(np.float32)), tr.scribbles)
    clf = MultiGaussianClassifier(tr.classes).fit(X, y)
    p = clf.predict_proba(torch.from_numpy(te.image.astype(np.float32)))
    assert torch.allclose(p.sum(0), torch.ones(160, 160), atol=1e-5)
    r = segmentation_report(te.truth, p.argmax(0).numpy() + 1, tr.classes)
    assert r.macro_f1 > 0.9, r.summary()
    # posterior agrees with a direct float64 evaluation of the Gaussian log-likelihoods
    from scipy.stats import multivariate_normal

    Xn, yn = X.numpy().astype(np.float64), y.numpy()
    x = te.image.reshape(4, -1)[:, :300].T.astype(np.float64)
    ll = np.stack([np.log((yn == k).mean())
                   + multivariate_normal(Xn[yn == k].mean(0), np.cov(Xn[yn == k].T, bias=True)).logpdf(x)
                   for k in range(1, 5)])
    post = np.exp(ll - ll.max(0))
    post /= post.sum(0)
    np.testing.assert_allclose(p.reshape(4, -1)[:, :300].numpy(), post, atol=1e-3)


def test_save_load_round_trip(tmp_path, data):
    tr, _, _, fte, X, y, names = data
    for clf in (RandomForestPixelClassifier(tr.classes, CFG, names, n_estimators=5, random_state=0, backend="eager"),
                MLPPixelClassifier(tr.classes, CFG, names, epochs=10),
                MultiGaussianClassifier(tr.classes, CFG, names, priors="equal")):
        clf.fit(X, y)
        path = clf.save(tmp_path / f"{clf.kind}.pt")
        raw = torch.load(path, weights_only=True)  # plain types + tensors only
        assert raw["format_version"] == FORMAT_VERSION and raw["kind"] == clf.kind
        back = load_classifier(path)
        assert type(back) is type(clf) and back.classes == tr.classes and back.feature_names == names
        assert back.feature_config == CFG and back.metadata["n_samples"] == len(y)
        assert back.metadata["class_counts"][tr.classes[0]] == int((y == 1).sum())
        assert torch.allclose(back.predict_proba(fte), clf.predict_proba(fte), atol=1e-6)
    bad = tmp_path / "bad.pt"
    torch.save({"format": "something else"}, bad)
    with pytest.raises(ValueError, match="not a MIS pixel classifier"):
        load_classifier(bad)


def test_model_file_holds_no_class_path(tmp_path, data):
    """A model file is plain data (format, kind, tensors): it names no Python class, so
    moving the forest compiler to its own module leaves files saved before loadable."""
    tr, _, _, _, X, y, names = data
    clf = RandomForestPixelClassifier(tr.classes, CFG, names, n_estimators=3, random_state=0, backend="eager")
    path = clf.fit(X, y).save(tmp_path / "rf.pt")
    raw = torch.load(path, map_location="cpu", weights_only=True)  # refuses any class reference
    assert raw["kind"] == "random_forest"
    assert all(isinstance(v, torch.Tensor) for v in raw["state"].values())
    back = load_classifier(path)
    assert isinstance(back, RandomForestPixelClassifier) and isinstance(back.forest, TensorForest)


def test_classifier_input_errors(data):
    tr, _, _, fte, X, y, _ = data
    with pytest.raises(ValueError, match="distinct"):
        MLPPixelClassifier(["a", "a"])
    clf = MultiGaussianClassifier(["a", "b"])
    with pytest.raises(ValueError, match=r"labels must be in 1\.\.2"):
        clf.fit(X, y)
    with pytest.raises(RuntimeError, match="not fitted"):
        clf.predict_proba(fte)
    clf = MultiGaussianClassifier(tr.classes).fit(X, y)
    with pytest.raises(ValueError, match="F = 12"):
        clf.predict_proba(fte[:3])


def test_metrics_match_sklearn(tmp_path):
    rng = np.random.default_rng(4)
    k = 5
    truth = rng.integers(0, k + 1, (80, 90))  # 0 = unlabelled
    pred = np.where(rng.random((80, 90)) < 0.6, truth, rng.integers(0, k + 1, (80, 90)))
    pred[0, :5] = 0  # some "no class" predictions on labelled truth
    r = segmentation_report(truth, pred, [f"urn:x:{i}" for i in range(1, k + 1)])
    m = truth.ravel() > 0
    t, p = truth.ravel()[m], pred.ravel()[m]
    labels = list(range(1, k + 1))
    pr, rc, f1, sup = skm.precision_recall_fscore_support(t, p, labels=labels, zero_division=0)
    np.testing.assert_allclose(r.precision, pr)
    np.testing.assert_allclose(r.recall, rc)
    np.testing.assert_allclose(r.f1, f1)
    np.testing.assert_array_equal(r.support, sup)
    np.testing.assert_allclose(r.iou, skm.jaccard_score(t, p, labels=labels, average=None, zero_division=0))
    assert r.macro_f1 == pytest.approx(skm.f1_score(t, p, labels=labels, average="macro", zero_division=0))
    assert r.macro_iou == pytest.approx(skm.jaccard_score(t, p, labels=labels, average="macro", zero_division=0))
    np.testing.assert_array_equal(r.confusion, skm.confusion_matrix(t, p, labels=labels))
    np.testing.assert_array_equal(confusion_matrix(truth, pred, k), r.confusion)
    csv = r.to_csv(tmp_path / "m.csv").read_text()
    assert csv.splitlines()[0].startswith("label,class,support") and "macro" in csv
    png = r.plot_confusion(tmp_path / "cm.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pick_device(monkeypatch):
    monkeypatch.delenv("MIS_DEVICE", raising=False)
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("MIS_DEVICE", "cpu")
    assert pick_device(None) == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            pick_device("cuda")


def test_predict_image_strips_equal_whole_image(data):
    """Strip-wise features + classification (with the halo) == whole-image predict."""
    from mis.segment.classifiers import predict_image

    tr, te, _, fte, X, y, names = data
    clf = RandomForestPixelClassifier(tr.classes, CFG, names, n_estimators=5, random_state=0, backend="eager").fit(X, y)
    threads = torch.get_num_threads()
    for workers in (1, 2):
        lab = predict_image(clf, te.image, rows=40, workers=workers)
        assert torch.equal(lab, clf.predict(fte))
    assert torch.get_num_threads() == threads
    p = predict_image(clf, te.image, rows=64, proba=True)
    assert torch.allclose(p, clf.predict_proba(fte), atol=1e-6)
