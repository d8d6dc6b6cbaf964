"""Benchmark: segmentation from sparse scribbles, MIS as a user runs it vs scikit-image's
trainable segmentation with its defaults, on a varied suite of synthetic sections.

    # 13 x 2048^2 -> bench/results/segmentation_suite.txt
    PYTHONPATH=src .venv/bin/python bench/bench_segmentation.py --suite
    PYTHONPATH=src .venv/bin/python bench/bench_segmentation.py --quick  # 2 x 256^2, writes nothing
    PYTHONPATH=src python bench/bench_segmentation.py --device cuda      # GPU throughput (see below)

**Suite** (``--suite``, the default): the sections of :data:`mis.segment.varied.SUITE` --
a generator that shares nothing with :mod:`mis.segment.synthetic` (on which the old
``fast`` preset was tuned): texture scale fine to coarse, grain size, noise, uneven
illumination, BSE-like greyscale vs RGB vs multispectral, pairs separable only by coarse
texture / only by colour / only by one band, scribble densities 0.1 .. 1 %, each with its
own seed and dense truth. Per section, in the same run:

* **anchor** -- scikit-image with its defaults, in this process:
  ``skimage.feature.multiscale_basic_features(img, channel_axis=-1)`` +
  ``sklearn.ensemble.RandomForestClassifier(n_estimators=100)`` (otherwise default, so
  ``n_jobs`` None; ``random_state=0`` only to make the run repeatable) fitted on the scribbled
  pixels and predicting every pixel; timed features, fit and predict.
* **ours** -- the CLI in subprocesses, as a user runs it: ``mis image add``, ``mis label
  import`` (not timed: done once per image), then ``mis train IMG --labels scribbles
  --out m.pt`` and ``mis predict IMG --model m.pt`` with their defaults (``--features
  auto``), process start included. Train + predict wall time is what is compared. The
  catalogue is the project's embedded PostgreSQL in a private temporary ``MIS_HOME``.
* **references** (seed papers' simple baselines): multi-Otsu thresholds of the mean
  band (at most 5 classes, 64 bins) and k-means (K clusters, scikit-learn, fitted on
  50 000 pixels' band values); their clusters are named by the majority scribble label
  inside them (what a user with those scribbles could do).

Quality: macro F1 against the dense truth (``mis.segment.metrics``). Reported per
section, with medians and the worst case, and checked against the issue's targets.

**GPU** (``--device cuda``): imports only numpy, torch and ``mis.segment`` (no database,
no zarr): features + prediction throughput (MPix/s) of the default feature candidates
with a random forest and an MLP on an ``--gpu-size`` square image in memory (8192 by
default), and whole-image segmentation time vs the time to just read its chunks from a
chunked in-memory store (uint8, 512 x 512 chunks, copied host -> device), against the
targets >= 100 MPix/s and <= 2x reading. ``--device cpu`` runs the same mode on the CPU
(small ``--gpu-size``) to check the path.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
#: legend terms the vocabulary knows (class i of a section is the i-th)
TERMS = ("quartz", "chalcopyrite", "sphalerite", "galena", "pyrite", "magnetite", "bornite", "covellite")


# =========================================================================== suite


@dataclass
class Row:
    name: str
    about: str
    bands: int
    k: int
    scribbles: float
    f1: dict[str, float] = field(default_factory=dict)
    anchor_s: tuple[float, float, float] = (0.0, 0.0, 0.0)  # features, fit, predict
    train_s: float = 0.0
    predict_s: float = 0.0
    features: str = ""

    @property
    def anchor_total(self) -> float:
        return sum(self.anchor_s)

    @property
    def ours_total(self) -> float:
        return self.train_s + self.predict_s

    @property
    def ratio(self) -> float:
        """scikit-image features + fit + predict over ours train + predict."""
        return self.anchor_total / self.ours_total

    @property
    def ratio_fp(self) -> float:
        """scikit-image features + predict (no fit) over ours train + predict."""
        return (self.anchor_s[0] + self.anchor_s[2]) / self.ours_total


def _catalogue(work: Path) -> tuple[object, str, str]:
    """The embedded PostgreSQL (started in ``work``), migrated, vocabularies loaded, one
    sample deposit registered; returns (cluster, url, plug id)."""
    from mis.catalogue import migrate
    from mis.catalogue.postgres import EmbeddedPostgres
    from mis.catalogue.register.service import register
    from mis.demo.deposit import write_sample_deposit
    from mis.vocab.load import load_vocabularies

    cluster = EmbeddedPostgres(home=work / "pg", settings={"fsync": "off", "synchronous_commit": "off"})
    url = cluster.start().url()
    try:
        migrate.upgrade(url)
        load_vocabularies(url=url, progress=False)
        files = write_sample_deposit(work / "deposit", holes=1, plugs_per_hole=1)
        rep = register(files.all(), url=url)
        if not rep.ok:
            raise RuntimeError(f"registering the sample deposit failed: {rep}")
    except BaseException:
        cluster.destroy()
        raise
    import csv

    with open(files.samples, newline="") as fh:
        first = next(csv.DictReader(fh))
    return cluster, url, f"{first['HOLE_ID']}/{first['SAMPLE_ID']}"


def _mis(env: dict[str, str], *args: str) -> tuple[str, float]:
    """``mis ARGS`` in a subprocess (the real console entry): stdout and wall seconds."""
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "mis", *args], env=env, capture_output=True, text=True, timeout=3600)
    dt = time.perf_counter() - t
    if res.returncode != 0:
        raise RuntimeError(f"mis {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res.stdout, dt


def _name_clusters(clusters: np.ndarray, scribbles: np.ndarray, k: int) -> np.ndarray:
    """Class 1..k per cluster id: the majority scribble label inside the cluster (the
    most scribbled class where a cluster holds no scribble)."""
    m = scribbles > 0
    n = int(clusters.max()) + 1
    votes = np.zeros((n, k + 1), np.int64)
    np.add.at(votes, (clusters[m], scribbles[m]), 1)
    fallback = int(np.bincount(scribbles[m], minlength=k + 1)[1:].argmax()) + 1
    lut = np.where(votes[:, 1:].sum(1) > 0, votes[:, 1:].argmax(1) + 1, fallback)
    return lut[clusters]


def _references(sec, k: int) -> dict[str, float]:
    from skimage.filters import threshold_multiotsu
    from sklearn.cluster import KMeans

    from mis.segment.metrics import segmentation_report

    img = sec.image.astype(np.float32)
    grey = img.mean(0)
    th = threshold_multiotsu(grey, classes=min(k, 5), nbins=64)
    otsu = _name_clusters(np.digitize(grey, th), sec.scribbles, k)
    X = img.reshape(img.shape[0], -1).T
    rng = np.random.default_rng(0)
    sub = X[rng.choice(len(X), min(len(X), 50_000), replace=False)]
    scale = sub.std(0) + 1e-6
    km = KMeans(n_clusters=k, n_init=3, random_state=0).fit(sub / scale)
    kmeans = _name_clusters(km.predict(X / scale).reshape(grey.shape), sec.scribbles, k)
    return {"otsu": segmentation_report(sec.truth, otsu, sec.classes).macro_f1,
            "kmeans": segmentation_report(sec.truth, kmeans, sec.classes).macro_f1}


def _anchor(sec) -> tuple[np.ndarray, tuple[float, float, float]]:
    from skimage.feature import multiscale_basic_features
    from sklearn.ensemble import RandomForestClassifier

    img = np.moveaxis(sec.image, 0, -1)
    t0 = time.perf_counter()
    f = multiscale_basic_features(img, channel_axis=-1)
    t1 = time.perf_counter()
    m = sec.scribbles > 0
    clf = RandomForestClassifier(n_estimators=100, random_state=0).fit(f[m], sec.scribbles[m])
    t2 = time.perf_counter()
    pred = clf.predict(f.reshape(-1, f.shape[-1])).reshape(sec.truth.shape)
    t3 = time.perf_counter()
    return pred, (t1 - t0, t2 - t1, t3 - t2)


def _write_image(sec, folder: Path) -> list[Path]:
    """The section as a TIFF (grey or RGB), or one greyscale TIFF per band."""
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    c = sec.image.shape[0]
    if c in (1, 3):
        p = folder / "section.tif"
        tifffile.imwrite(p, sec.image[0] if c == 1 else np.moveaxis(sec.image, 0, -1),
                         photometric="minisblack" if c == 1 else "rgb")
        return [p]
    paths = []
    for b in range(c):
        p = folder / f"band{b}.tif"
        tifffile.imwrite(p, sec.image[b], photometric="minisblack")
        paths.append(p)
    return paths


def _ours(sec, spec, env: dict[str, str], plug: str, folder: Path, train_args: list[str]
          ) -> tuple[np.ndarray, float, float, str, str, Path]:
    from PIL import Image

    from mis.imagery.imageref import image_ref
    from mis.segment.predict import prediction_arrays

    files = _write_image(sec, folder)
    out, _ = _mis(env, "image", "add", "--plug", plug, *map(str, files), "--pixel-size-um", "1",
                  "--modality", spec.modality, "--name", spec.name)
    words = out.split()  # "image 7 added: /path/to/store"
    image_id = words[words.index("image") + 1]
    store = image_ref(image_id, env["MIS_DATABASE_URL"]).store_uri
    Image.fromarray(sec.scribbles.astype(np.uint8)).save(folder / "scribbles.png")
    (folder / "legend.json").write_text(json.dumps({str(i + 1): TERMS[i] for i in range(len(sec.classes))}))
    _mis(env, "label", "import", image_id, str(folder / "scribbles.png"), "--legend", str(folder / "legend.json"),
         "--name", "scribbles")
    model = folder / "m.pt"
    train_out, t_train = _mis(env, "train", image_id, "--labels", "scribbles", "--out", str(model), *train_args)
    _, t_pred = _mis(env, "predict", image_id, "--model", str(model), "--quiet")
    classes, _, attrs = prediction_arrays(store, model.stem)
    pred = np.asarray(classes[:]).astype(np.int64) + 1
    chosen = next((ln.split(":", 1)[1].strip() for ln in train_out.splitlines() if ln.startswith("features:")), "?")
    return pred, t_train, t_pred, chosen, image_id, model


#: runs ``mis ARGS`` in this child as the console entry does, printing (to stderr) the
#: seconds from the parent's spawn (``MIS_BENCH_T0``, wall clock) to the start of the
#: first prediction task: process start, imports, model load, store checks
_FIRST_CHUNK = """
import os, sys, time, runpy
import mis.segment.predict as p
task = p._predict_block_task
def timed(spec, _seen=[]):
    if not _seen:
        _seen.append(1)
        print(f"first-chunk {time.time() - float(os.environ['MIS_BENCH_T0']):.3f}", file=sys.stderr, flush=True)
    return task(spec)
p._predict_block_task = timed
sys.argv = ["mis", *sys.argv[1:]]
runpy.run_module("mis", run_name="__main__")
"""


def _startup(env: dict[str, str], image_id: str, model: Path, reps: int = 3) -> tuple[float, float]:
    """Best of ``reps``: wall seconds of ``mis --help``, and seconds from spawning ``mis
    predict`` to its first chunk (a new run name each time, so every run computes)."""
    helps, firsts = [], []
    for i in range(reps):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mis", "--help"], env=env, capture_output=True, check=True)
        helps.append(time.perf_counter() - t)
        res = subprocess.run([sys.executable, "-c", _FIRST_CHUNK, "predict", image_id, "--model", str(model),
                              "--run", f"startup-{i}", "--quiet"], env={**env, "MIS_BENCH_T0": repr(time.time())},
                             capture_output=True, text=True, check=True)
        firsts.append(float(next(ln.split()[1] for ln in res.stderr.splitlines() if ln.startswith("first-chunk"))))
    return min(helps), min(firsts)


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def run_suite(args: argparse.Namespace) -> None:
    from mis.segment.metrics import segmentation_report
    from mis.segment.varied import QUICK_SUITE, SUITE, make_section

    specs = QUICK_SUITE if args.quick else SUITE
    if args.sections:
        want = set(args.sections.split(","))
        specs = tuple(s for s in SUITE if s.name in want)
    n = 256 if args.quick else args.size
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    import skimage
    import sklearn
    import torch

    say(f"# segmentation suite, {time.strftime('%Y-%m-%d %H:%M:%S')}, {len(specs)} sections of {n} x {n}")
    say(describe())
    say(f"python {sys.version.split()[0]}; torch {torch.__version__}, scikit-image {skimage.__version__}, "
        f"scikit-learn {sklearn.__version__}; torch threads {torch.get_num_threads()}")
    say("anchor: multiscale_basic_features(img, channel_axis=-1) + RandomForestClassifier(n_estimators=100, "
        "random_state=0), otherwise defaults, timed features + fit + predict")
    say(f"ours:   mis train IMG --labels scribbles --out m.pt {args.train_args}".rstrip()
        + " && mis predict IMG --model m.pt --quiet (subprocesses" + (")" if args.train_args else ", defaults)"))
    say()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="mis-seg-suite-") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        cluster, url, plug = _catalogue(work)
        say("catalogue: embedded PostgreSQL + migrations + vocabularies + a deposit in "
            f"{time.perf_counter() - t:.0f} s")
        env = {**os.environ, "MIS_DATABASE_URL": url, "MIS_HOME": str(work / "home")}
        try:
            for spec in specs:
                sec = make_section(spec, (n, n))
                k = len(spec.phases)
                row = Row(spec.name, spec.about, sec.image.shape[0], k, 100 * sec.scribble_fraction)
                pred, row.anchor_s = _anchor(sec)
                row.f1["anchor"] = segmentation_report(sec.truth, pred, sec.classes).macro_f1
                del pred
                ours, row.train_s, row.predict_s, row.features, image_id, model = _ours(
                    sec, spec, env, plug, work / spec.name, args.train_args.split())
                row.f1["ours"] = segmentation_report(sec.truth, ours, sec.classes).macro_f1
                row.f1.update(_references(sec, k))
                rows.append(row)
                print(f"  {spec.name}: anchor F1 {row.f1['anchor']:.4f} in {row.anchor_total:.1f} s, ours "
                      f"{row.f1['ours']:.4f} in {row.train_s:.1f} + {row.predict_s:.1f} s ({row.features}); "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
            t_help, t_first = _startup(env, image_id, model)
        finally:
            cluster.destroy()
    say(f"{'section':<22} {'C':>2} {'K':>2} {'scrib%':>6} {'F1 skim':>7} {'F1 ours':>7} {'dF1':>7} {'Otsu':>6} "
        f"{'kmeans':>6} {'skim feat/fit/pred s':>20} {'train s':>7} {'pred s':>6} {'x(all)':>6} {'x(f+p)':>6}"
        "  features")
    for r in rows:
        a = "/".join(f"{v:.1f}" for v in r.anchor_s)
        say(f"{r.name:<22} {r.bands:>2} {r.k:>2} {r.scribbles:6.2f} {r.f1['anchor']:7.4f} {r.f1['ours']:7.4f} "
            f"{r.f1['ours'] - r.f1['anchor']:+7.4f} {r.f1['otsu']:6.3f} {r.f1['kmeans']:6.3f} {a:>20} "
            f"{r.train_s:7.2f} {r.predict_s:6.2f} {r.ratio:6.2f} {r.ratio_fp:6.2f}  {r.features}")
    say("x(all) = skimage features+fit+predict / ours train+predict; x(f+p) = skimage features+predict / ours "
        "train+predict (the issue's target measure)")
    say()
    d = [r.f1["ours"] - r.f1["anchor"] for r in rows]
    worst = min(rows, key=lambda r: r.f1["ours"] - r.f1["anchor"])
    slow = min(rows, key=lambda r: r.ratio_fp)
    for key in ("anchor", "ours", "otsu", "kmeans"):
        say(f"median macro F1 {key:<7} {_median([r.f1[key] for r in rows]):.4f}")
    say(f"dF1 ours - skimage: median {_median(d):+.4f}, worst {min(d):+.4f} ({worst.name}); "
        f"{sum(x >= 0 for x in d)} of {len(d)} sections >= skimage")
    say(f"speed: median x{_median([r.ratio_fp for r in rows]):.2f} (features+predict), "
        f"x{_median([r.ratio for r in rows]):.2f} (features+fit+predict); worst x{slow.ratio_fp:.2f} ({slow.name})")
    ok1 = min(d) >= 0
    ok2 = _median(d) >= 0.02
    ok3 = _median([r.ratio_fp for r in rows]) >= 10
    say(f"targets: F1 >= skimage on every section: {'MET' if ok1 else 'MISSED'}; median >= skimage + 0.02: "
        f"{'MET' if ok2 else 'MISSED'}; end to end >= 10x skimage features+predict (median): "
        f"{'MET' if ok3 else 'MISSED'}")
    say(f"start-up (best of 3, section {rows[-1].name}): `mis --help` {t_help:.2f} s (target < 0.5 s: "
        f"{'MET' if t_help < 0.5 else 'MISSED'}); `mis predict` spawn to first chunk {t_first:.2f} s (target < 1.5 s: "
        f"{'MET' if t_first < 1.5 else 'MISSED'})")
    say(f"load average at end {os.getloadavg()[0]:.1f}")
    if not args.quick and not args.sections and not args.train_args:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "segmentation_suite.txt").write_text("\n".join(lines) + "\n")
        print(f"-> {RESULTS / 'segmentation_suite.txt'}")
    elif args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


# =========================================================================== GPU


def run_device(args: argparse.Namespace) -> int:
    """Throughput on a device: imports numpy, torch and mis.segment only. Returns the
    exit status: 1 when the device's predictions differ from the CPU's."""
    import torch

    from mis.segment.device import describe_device, pick_device
    from mis.segment.throughput import device_report

    try:
        dev = pick_device(args.device)
    except (RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    n = args.gpu_size if dev.type != "cpu" else min(args.gpu_size, 1024)
    head = [f"# segmentation throughput, {time.strftime('%Y-%m-%d %H:%M:%S')}", describe(),
            f"device: {describe_device(dev)}; python {sys.version.split()[0]}, torch {torch.__version__}"]
    text, ok = device_report(dev, n)
    report = "\n".join([*head, text])
    print(report)
    if args.out:
        Path(args.out).write_text(report + "\n")
    return 0 if ok else 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--suite", action="store_true", help="the varied suite (the default mode)")
    ap.add_argument("--quick", action="store_true", help="2 sections of 256 x 256; writes no result file")
    ap.add_argument("--size", type=int, default=2048, help="section side (suite)")
    ap.add_argument("--sections", default=None, help="only these suite sections (comma-separated); no result file")
    ap.add_argument("--train-args", default="", help="extra `mis train` options (e.g. '--max-depth 14'); no "
                                                     "result file unless --out")
    ap.add_argument("--device", default=None, help="cuda (or cpu): the throughput mode instead of the suite")
    ap.add_argument("--gpu-size", type=int, default=8192, help="image side of the throughput mode")
    ap.add_argument("--out", default=None, help="also write the report here (throughput mode, --sections)")
    args = ap.parse_args()
    if args.device:
        sys.exit(run_device(args))
    run_suite(args)


if __name__ == "__main__":
    main()
