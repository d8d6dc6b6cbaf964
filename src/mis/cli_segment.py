"""``mis label import|suggest|check``, ``mis train``, ``mis predict``, ``mis evaluate``:
thin commands over :mod:`mis.segment`.

Attached to the main app by ``app.add_typer(label_app, name="label")``,
``app.command("train")(train_cmd)``, ``app.command("predict")(predict_cmd)`` and
``app.command("evaluate")(evaluate_cmd)``. IMAGE is a catalogue image id (or the path of
an OME-Zarr image store).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from mis.vocab.names import local_name

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)

label_app = typer.Typer(help="Sparse training labels: import them, suggest where to label next, find likely "
                             "mislabels.", no_args_is_help=True)

ImageArg = Annotated[str, typer.Argument(help="Image id (or the path of its OME-Zarr store).")]


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _errors() -> tuple[type[BaseException], ...]:
    from mis.catalogue.errors import CatalogueError
    from mis.imagery.imageref import ImageRefError
    from mis.segment.labels import LabelError
    from mis.segment.predict import PredictionError

    return (LabelError, ImageRefError, PredictionError, CatalogueError, FileNotFoundError, ValueError)


def _short(uri: str | None) -> str:
    if not uri:
        return "-"
    return local_name(uri)


# --------------------------------------------------------------------------- label


@label_app.command("import")
def label_import(
    image: ImageArg,
    labels: Annotated[Path, typer.Argument(help="Label image (PNG/TIFF, 0 = unlabelled) or GeoJSON in image "
                                                "pixel coordinates.")],
    legend: Annotated[Path | None, typer.Option("--legend", help="JSON: label value -> class term (for a "
                                                                 "label image).")] = None,
    name: Annotated[str, typer.Option("--name", help="Label set name; every import adds a new version.")] = "default",
    class_property: Annotated[str, typer.Option("--class-property",
                                                help="GeoJSON property holding the class term.")] = "class",
) -> None:
    """Store sparse labels with the image (OME-Zarr label image labels/NAME-vN), classes checked against the vocabulary.

    Example: `mis label import 12 scribbles.png --legend legend.json --name scribbles`

    Example (GeoJSON): `mis label import 12 strokes.geojson --name scribbles`
    """
    from mis.segment.labels import import_labels

    try:
        st = import_labels(image, labels, legend=legend, name=name, class_property=class_property)
    except _errors() as exc:
        _fail(str(exc))
    what = "stored as" if st.created else "identical to the stored"
    console.print(f"labels {what} {st.path} ({st.labelled_pixels} labelled pixels)")
    for v, uri in sorted(st.legend.items()):
        console.print(f"  {v:>4}  {st.pixel_counts.get(v, 0):>9} px  {uri}")


@label_app.command("suggest")
def label_suggest(
    image: ImageArg,
    model: Annotated[Path | None, typer.Option("--model", help="Model file (uncertainty computed now).")] = None,
    run: Annotated[str | None, typer.Option("--run", help="A stored prediction run (1 - max probability).")] = None,
    k: Annotated[int, typer.Option("-k", "--k", help="How many regions.")] = 10,
    size: Annotated[int, typer.Option("--size", help="Region side in pixels.")] = 128,
    measure: Annotated[str, typer.Option("--measure", help="margin or entropy (with --model).")] = "margin",
    geojson: Annotated[Path, typer.Option("--geojson", help="Output GeoJSON of the regions.")] = Path(
        "suggestions.geojson"),
    png: Annotated[Path | None, typer.Option("--png", help="Output PNG overview.")] = Path("suggestions.png"),
    workers: Annotated[int | None, typer.Option("--workers", help="Parallel chunks (threads).")] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda, cuda:N.")] = None,
) -> None:
    """The k regions where the classifier is least certain, spread apart: label there next.

    Example: `mis label suggest 12 --model rf.pt -k 8 --geojson next.geojson --png next.png`
    """
    from mis.segment.active import suggest_regions

    try:
        sg = suggest_regions(image, model=model, run=run, k=k, size=size, measure=measure, workers=workers,
                             device=device, progress=True)
        sg.write_geojson(geojson)
        if png is not None:
            sg.write_png(png)
    except _errors() as exc:
        _fail(str(exc))
    for r in sg.regions:
        console.print(f"  #{r.rank:<3} score {r.score:.3f}  x {r.x0}..{r.x1}  y {r.y0}..{r.y1}  "
                      f"predicted {_short(r.predicted)}")
    console.print(f"{len(sg.regions)} regions -> {geojson}" + (f", {png}" if png else ""))


@label_app.command("check")
def label_check(
    image: ImageArg,
    labels: Annotated[str, typer.Option("--labels", help="Label set name.")] = "default",
    version: Annotated[int | None, typer.Option("--version", help="Label set version (default: latest).")] = None,
    model: Annotated[Path | None, typer.Option("--model", help="Use this model's features.")] = None,
    features: Annotated[str, typer.Option("--features", help="Feature preset without --model: fast, ilastik, "
                                                              "cnn, raw.")] = "fast",
    k: Annotated[int, typer.Option("-k", "--k", help="Neighbours per pixel.")] = 10,
    threshold: Annotated[float, typer.Option("--threshold", help="Flag when this fraction of neighbours "
                                                                 "disagrees.")] = 0.6,
    csv_out: Annotated[Path, typer.Option("--csv", help="Output CSV of flagged pixels.")] = Path(
        "label-check.csv"),
    geojson: Annotated[Path | None, typer.Option("--geojson", help="Output GeoJSON of flagged pixels.")] = None,
) -> None:
    """Labelled pixels whose nearest neighbours in feature space carry another label (likely mislabels).

    Example: `mis label check 12 --labels scribbles --csv suspects.csv --geojson suspects.geojson`
    """
    from mis.segment.active import check_labels

    try:
        res = check_labels(image, labels, version=version, model=model, features=features, k=k,
                           threshold=threshold)
        res.write_csv(csv_out)
        if geojson is not None:
            res.write_geojson(geojson)
    except _errors() as exc:
        _fail(str(exc))
    flagged = res.flagged_components(threshold)
    console.print(f"{len(res.suspects)} of {res.sampled} sampled labelled pixels flagged; "
                  f"{len(flagged)} strokes mostly disagree with their neighbours")
    for c in flagged[:20]:
        x0, y0, x1, y1 = c["bbox"]
        console.print(f"  stroke {c['component']}: labelled {_short(c['label'])}, neighbours say "
                      f"{_short(c['suggested'])} ({100 * c['disagreement']:.0f} %), x {x0}..{x1} y {y0}..{y1}")
    console.print(f"-> {csv_out}" + (f", {geojson}" if geojson else ""))


# --------------------------------------------------------------------------- train / predict / evaluate


def train_cmd(
    images: Annotated[list[str], typer.Argument(help="Image ids (or store paths) whose labels to learn from.")],
    out: Annotated[Path, typer.Option("--out", help="Model file to write (.pt).")],
    labels: Annotated[str, typer.Option("--labels", help="Label set name.")] = "default",
    classifier: Annotated[str, typer.Option("--classifier", help="rf, mlp or mgc (MultiGaussian).")] = "rf",
    features: Annotated[str, typer.Option("--features", help="auto (chosen by cross-validation over held-out "
                                                              "strokes), or a preset: colour, edges, fine, medium, "
                                                              "broad, fast, ilastik, cnn, raw.")] = "auto",
    feature_config: Annotated[
        Path | None, typer.Option("--feature-config", help="A FeatureConfig JSON file (replaces --features).")
    ] = None,
    version: Annotated[int | None, typer.Option("--version", help="Label set version (default: latest).")] = None,
    trees: Annotated[int | None, typer.Option("--trees", help="rf: number of trees (16).")] = None,
    max_depth: Annotated[int | None, typer.Option("--max-depth", help="rf: maximum tree depth (10).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda, cuda:N.")] = None,
) -> None:
    """Train a pixel classifier from the labels stored with one or more images.

    Example: `mis train 12 13 --labels scribbles --out rf.pt`

    Example: `mis train 12 --labels scribbles --classifier mlp --features medium --out mlp.pt`
    """
    from mis.segment.config import FeatureConfig
    from mis.segment.train import train

    params: dict[str, Any] = {}
    if classifier == "rf":
        if trees is not None:
            params["n_estimators"] = trees
        if max_depth is not None:
            params["max_depth"] = max_depth
    try:
        fc = None
        if feature_config is not None:
            try:
                fc = FeatureConfig.from_json(feature_config.read_text())
            except (OSError, ValueError) as exc:
                _fail(f"{feature_config}: not a feature config ({exc})")
        res = train(images, out, labels=labels, classifier=classifier, features=features, feature_config=fc,
                    version=version, seed=seed, device=device, **params)
    except _errors() as exc:
        _fail(str(exc))
    clf = res.classifier
    console.print(f"features: {f'auto -> {res.selection.name}' if res.selection else res.features}")
    if res.selection is not None:
        console.print(f"  {res.selection.summary()}", soft_wrap=True)
    console.print(f"{clf.kind} on {clf.n_features} features, {sum(res.counts.values())} labelled pixels, "
                  f"{res.seconds:.1f} s -> {res.model_path}")
    for uri, n in res.counts.items():
        console.print(f"  {n:>9} px  {uri}")


def predict_cmd(
    image: ImageArg,
    model: Annotated[Path, typer.Option("--model", help="Model file from `mis train`.")],
    run: Annotated[str | None, typer.Option("--run", help="Run name (default: the model file name).")] = None,
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="dask.distributed scheduler address "
                                                                      "(default: local threads).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Local parallel blocks.")] = None,
    block: Annotated[int | None, typer.Option("--block", help="Chunks per task side (default 1 CPU, 4 GPU).")] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda, cuda:N.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a run of that name made with "
                                                                "another model.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Classify every pixel, chunk by chunk, into the label image labels/prediction-RUN of the image's store.

    Interrupted runs resume at the first unfinished chunk when run again.

    Example: `mis predict 12 --model rf.pt --run rf-v1`

    Example (cluster): `mis predict 12 --model rf.pt --run rf-v1 --scheduler tcp://10.0.0.5:8786`
    """
    from mis.segment.predict import predict

    try:
        res = predict(image, model, run, scheduler=scheduler, workers=workers, block=block, device=device,
                      overwrite=overwrite, progress=not quiet)
    except KeyboardInterrupt:
        _fail("interrupted; run the same command again to resume", 130)
    except _errors() as exc:
        _fail(str(exc))
    mpix = res.attrs.get("image_shape", [0, 0, 0])
    resumed = f", {res.chunks_skipped} already done" if res.chunks_skipped else ""
    console.print(f"run {res.run}: {res.chunks_computed} chunks predicted{resumed} in {res.seconds:.1f} s "
                  f"({mpix[1] * mpix[2] / 1e6:.1f} MPix) -> {res.store_uri}/{res.classes_path}, "
                  f"{res.probability_path}")


def evaluate_cmd(
    image: ImageArg,
    truth: Annotated[Path | None, typer.Option("--truth", help="Truth label image (PNG/TIFF, 0 = ignore).")] = None,
    legend: Annotated[Path | None, typer.Option("--legend", help="JSON: truth value -> class term.")] = None,
    labels: Annotated[str | None, typer.Option("--labels", help="Or: a stored (held-out) label set as truth.")] = None,
    model: Annotated[Path | None, typer.Option("--model", help="Predict now with this model.")] = None,
    run: Annotated[str | None, typer.Option("--run", help="Or: a stored prediction run.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write per-class metrics + confusion as CSV.")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write the confusion matrix as PNG.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Parallel chunks with --model.")] = None,
) -> None:
    """Per-class precision, recall, F1, IoU and the confusion matrix against a truth.

    Example: `mis evaluate 12 --truth truth.png --legend legend.json --model rf.pt --json`

    Example: `mis evaluate 12 --labels held-out --run rf-v1 --csv metrics.csv --plot confusion.png`
    """
    from mis.segment.evaluate import evaluate

    try:
        ev = evaluate(image, truth=truth, legend=legend, labels=labels, model=model, run=run, workers=workers)
        if csv_out is not None:
            ev.report.to_csv(csv_out)
        if plot is not None:
            ev.report.plot_confusion(plot)
    except _errors() as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps(ev.to_dict(), indent=2))
        return
    console.print(ev.report.summary())
    console.print(f"accuracy {ev.report.accuracy:.4f}; macro F1 {ev.report.macro_f1:.4f}, "
                  f"IoU {ev.report.macro_iou:.4f}")
