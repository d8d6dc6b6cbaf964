"""``mis ingest``, ``mis report`` and ``mis log``: thin commands over :mod:`mis.ingest.run`
and :mod:`mis.grains.rock` (statistics), :mod:`mis.grains.report` (reports).

Attached to the main app by ``app.command("ingest")(ingest_cmd)``,
``app.command("report")(report_cmd)`` and ``app.command("log")(log_cmd)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mis.cli_segment import _fail, console, err
from mis.grains.cleaning import (
    DEFAULT_BRIDGE_PX,
    DEFAULT_MIN_GRAIN_PX,
    DEFAULT_WATERSHED_H_PX,
    DEFAULT_WATERSHED_NECK,
)


def ingest_cmd(
    image: Annotated[int, typer.Argument(help="Image id (see the image table / `mis image add`).")],
    labels: Annotated[str | None, typer.Option(
        "--labels", help="Class-label zarr array (y, x) (a path, or STORE::ARRAY); default: the prediction "
                         "stored in the image store under labels/prediction-NAME.")] = None,
    probability: Annotated[str | None, typer.Option(
        "--probability", help="Max-class-probability zarr array (y, x), optional.")] = None,
    classes: Annotated[list[str] | None, typer.Option(
        "--class", help="The run's classes in label order: terms or URIs (repeat: --class background "
                        "--class Qz --class Ccp); default: the stored prediction's class list.")] = None,
    name: Annotated[str, typer.Option("--name", help="Run name (= the prediction run in the image store); "
                                                     "re-running a name replaces that run.")] = "default",
    model: Annotated[Path | None, typer.Option(
        "--model", help="Model file: predict with it if the image has no prediction run NAME yet; hashed "
                        "into the provenance.")] = None,
    feature_config: Annotated[str | None, typer.Option(
        "--feature-config", help="Feature configuration of the model (JSON text or a .json file).")] = None,
    roxel_size: Annotated[int, typer.Option(
        "--roxel-size", help="Roxel size in pixels (divides the chunk size).")] = 16,
    lithology: Annotated[str | None, typer.Option(
        "--lithology", help="Lithology of the rock (a term or URI); default: proposed by a rule.")] = None,
    liberation: Annotated[list[str] | None, typer.Option(
        "--liberation", help="Mineral whose liberation to report (repeat); default: sulfides and native "
                             "elements.")] = None,
    min_grain_area: Annotated[float | None, typer.Option(
        "--min-grain-area", help="Minimum grain area in µm²: smaller components of the class map are absorbed by "
                                 "their surroundings, smaller grains are not grains (default: "
                                 f"{DEFAULT_MIN_GRAIN_PX} pixels of the image; 0: none, and with --no-split the raw "
                                 "components).")] = None,
    split: Annotated[bool, typer.Option(
        "--split/--no-split", help="Split touching grains of one mineral along the boundary lines between "
                                   "them.")] = True,
    bridge: Annotated[int, typer.Option(
        "--bridge", help="Gaps in a boundary line bridged when splitting, in pixels.")] = DEFAULT_BRIDGE_PX,
    watershed: Annotated[bool, typer.Option(
        "--watershed/--no-watershed", help="Also split touching grains of one mineral at necks of the distance "
                                           "transform (watershed saddles), where the boundary line is faint.")] = True,
    watershed_h: Annotated[float, typer.Option(
        "--watershed-h", help="Split: both grains' distance maxima stand this many pixels above the "
                              "saddle.")] = DEFAULT_WATERSHED_H_PX,
    watershed_neck: Annotated[float, typer.Option(
        "--watershed-neck", help="Split: the neck's half-width is at most this share of the smaller grain's "
                                 "radius.")] = DEFAULT_WATERSHED_NECK,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="dask.distributed scheduler address (default: local threads).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Predict (with --model, if not done yet), then write grains, roxels and the rock of one run.

    With `--model` and no `--labels`, the image is classified chunk by chunk into its store
    (`mis predict`, resumed if interrupted, reused if complete) and that prediction is
    ingested. All of a run appears at once or not at all; re-running the same `--name`
    replaces it. Grains are labelled on the cleaned class map (`--min-grain-area`,
    `--split`, `--bridge`, `--watershed`, `--watershed-h`, `--watershed-neck`; the rules
    are stored in the run's parameters and shown by `mis report`).

    Example: `mis ingest 12 --model rf.pt --name rf`

    Example: `mis ingest 12 --labels section.ome.zarr::labels/default/0 --class background --class Qz
    --class Ccp --class Py --model rf.joblib`
    """
    from mis.catalogue.errors import CatalogueError
    from mis.catalogue.postgres import PostgresError
    from mis.grains.cleaning import GrainRules
    from mis.imagery.omezarr import sha256_file
    from mis.ingest.run import IngestError, ingest
    from mis.ingest.writer import Provenance, RunWriterError

    try:
        rules = GrainRules(min_area_um2=min_grain_area, split=split, bridge_px=bridge, watershed=watershed,
                           watershed_h=watershed_h, watershed_neck=watershed_neck)
        fc = None
        if feature_config:
            text = Path(feature_config).read_text() if feature_config.endswith(".json") else feature_config
            fc = json.loads(text)
        if labels is None:
            from mis.ingest.predicted import ingest_prediction

            summary = ingest_prediction(image, name, model, probability=probability, classes=classes,
                                        feature_config=fc, console=err, roxel_size=roxel_size,
                                        scheduler=scheduler, progress=not quiet, lithology=lithology,
                                        liberation=liberation, grain_rules=rules)
        else:
            if not classes:
                _fail("give the class list (--class, in label order)")
            prov = Provenance(model_path=str(model) if model else None,
                              model_sha256=sha256_file(model) if model and Path(model).exists() else None,
                              feature_config=fc or {})
            summary = ingest(image, labels, probability, classes, name=name, provenance=prov, console=err,
                             roxel_size=roxel_size, scheduler=scheduler, progress=not quiet,
                             lithology=lithology, liberation=liberation, grain_rules=rules)
    except (IngestError, RunWriterError, CatalogueError, PostgresError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    console.print(summary.render())


def report_cmd(
    plug: Annotated[str, typer.Argument(help="Plug id, HOLE/PLUG or DEPOSIT/HOLE/PLUG.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output path without extension "
                                                                 "(default: report-<plug>).")] = None,
    run: Annotated[str | None, typer.Option("--run", help="Only runs of this name.")] = None,
) -> None:
    """Write a PNG and an HTML report of a plug's rock: modal mineralogy, grain sizes,
    mineral association and the image with its class map.

    Example: `mis report QA-001/QA-001-P01 -o reports/p01`
    """
    from mis.catalogue.errors import CatalogueError
    from mis.grains.report import plug_report

    target = out or Path(f"report-{plug.replace('/', '_')}")
    try:
        paths = plug_report(plug, target, run=run)
    except CatalogueError as exc:
        _fail(str(exc))
    console.print("wrote " + ", ".join(str(p) for p in paths))


def log_cmd(
    hole: Annotated[str, typer.Argument(help="Drill core id, name or DEPOSIT/HOLE.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="PNG path (default: log-<hole>.png).")] = None,
    step: Annotated[float, typer.Option("--step", help="Depth bin of the roxel log (m).")] = 0.05,
) -> None:
    """Plot class fractions against depth for a drill core (roxels of core images, rocks of plugs).

    Example: `mis log QA-002 --step 0.1 -o logs/QA-002.png`
    """
    from mis.catalogue.errors import CatalogueError
    from mis.grains.report import hole_log

    target = out or Path(f"log-{hole.replace('/', '_')}.png")
    try:
        path = hole_log(hole, target, step_m=step)
    except CatalogueError as exc:
        _fail(str(exc))
    console.print(f"wrote {path}")
