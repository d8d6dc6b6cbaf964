"""``mis demo``: the whole mission on the built-in default, end to end.

database -> schema -> vocabularies -> sample deposit (6 curved drill cores, 36 samples) ->
sample images (thin sections, a core photo with a depth axis, a multispectral stack) ->
OME-Zarr -> sparse labels -> train (random forest; MultiGaussian for the stack) ->
predict + ingest (grains, roxels, rocks) -> accuracy against the known truth -> serve.

Every step is idempotent, so a second run reuses what the first made: the cluster is
started only if stopped, migrations apply what is missing, vocabularies and registration
change nothing when nothing changed, images and labels are recognised by checksum, a
model is retrained only when its labels changed, and a run already ingested with the same
model is kept.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from sqlalchemy import select

from mis.catalogue.locate import external_database_url
from mis.settings import mis_home

T = TypeVar("T")


@dataclass
class DemoResult:
    url: str
    home: Path
    image_ids: list[int] = field(default_factory=list)
    plug_ids: list[int] = field(default_factory=list)
    hole_ids: list[int] = field(default_factory=list)
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)  # image name -> macro metrics

    def mean_f1(self) -> float:
        values = [m["f1"] for m in self.accuracy.values()]
        return sum(values) / len(values) if values else float("nan")


class _Steps:
    """Runs and reports the demo's steps (a spinner while working, a tick when done)."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def __call__(self, title: str, action: Callable[[], tuple[T, str]]) -> T:
        with self.console.status(f"[bold]{title}[/] …"):
            value, outcome = action()
        self.console.print(f"[green]✓[/] [bold]{title}[/]: {outcome}", highlight=False)
        return value


def run_demo(console: Console | None = None, *, small: bool = False) -> DemoResult:
    """Build the demo catalogue (see the module docstring); returns what to show."""
    from mis.catalogue import migrate
    from mis.catalogue.locate import database_url
    from mis.catalogue.postgres import EmbeddedPostgres
    from mis.catalogue.register.service import register
    from mis.demo.deposit import write_sample_deposit
    from mis.vocab.load import load_vocabularies

    step = _Steps(console or Console())
    home = mis_home() / ("demo-small" if small else "demo")

    def start_db():
        if external_database_url():
            return None, "using MIS_DATABASE_URL"
        state = EmbeddedPostgres().start()
        return None, f"PostGIS on 127.0.0.1:{state.port}, data in {state.data_dir}"

    step("database", start_db)
    url = database_url()
    def migrate_schema() -> tuple[None, str]:
        migrate.upgrade(url)
        return None, f"revision {migrate.current(url)}"

    step("schema", migrate_schema)
    step("vocabularies", lambda: (None, load_vocabularies(url=url, progress=False).summary()))
    files = write_sample_deposit(home / "deposit")

    def register_sample():
        report = register(files.all(), url=url)
        if not report.ok:
            raise RuntimeError("the sample deposit was refused:\n" + report.render())
        return None, report.summary().replace("\n", "\n   ")

    step("sample deposit", register_sample)
    result = DemoResult(url=url, home=home)
    _images_to_catalogue(step, result, small)
    return result


def _plugs(url: str) -> list[tuple[str, float, float, str, int, int]]:
    from mis.catalogue import models as m
    from mis.catalogue.session import transaction
    from mis.demo.deposit import DEPOSIT

    with transaction(url) as session:
        rows = session.execute(
            select(m.DrillCore.name, m.Plug.name, m.Plug.from_m, m.Plug.to_m, m.Concept.pref_label,
                   m.Plug.id, m.DrillCore.id)
            .join(m.Plug, m.Plug.drillcore_id == m.DrillCore.id)
            .join(m.Deposit, m.DrillCore.deposit_id == m.Deposit.id)
            .join(m.Concept, m.Concept.uri == m.Plug.sample_type_uri)
            .where(m.Deposit.name == DEPOSIT).order_by(m.Plug.from_m, m.DrillCore.name)).all()
    return [(f"{h}/{p}", a, b, kind, pid, hid) for h, p, a, b, kind, pid, hid in rows]


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def _images_to_catalogue(step: _Steps, result: DemoResult, small: bool) -> None:
    from mis.catalogue import models as m
    from mis.catalogue.session import transaction
    from mis.demo.images import write_sample_images
    from mis.imagery.catalogue import add_image
    from mis.imagery.omezarr import sha256_file
    from mis.ingest.predicted import ingest_prediction
    from mis.segment.evaluate import evaluate
    from mis.segment.labels import import_labels
    from mis.segment.train import train

    url = result.url
    plugs = _plugs(url)
    ids = {ref: (pid, hid) for ref, _a, _b, _k, pid, hid in plugs}
    samples = step("sample images", lambda: (
        (imgs := write_sample_images(result.home / "images", [p[:4] for p in plugs], small=small)),
        f"{len(imgs)} images with ground truth in {result.home / 'images'}"))

    def add_all():
        added = []
        for s in samples:
            # The small and the full demo share one catalogue: their images (other pixels)
            # must not claim the same names on the same plugs.
            a = add_image(s.plug, list(s.files), name=f"{s.files[0].stem}-small" if small else None,
                          pixel_size_um=s.pixel_size_um, modality=s.modality,
                          band_names=list(s.band_names) or None,
                          wavelengths_nm=list(s.wavelengths_nm) or None, depth_axis=s.depth_axis,
                          top_m=s.top_m, bottom_m=s.bottom_m, url=url, progress=False)
            added.append(a)
        new = sum(a.created for a in added)
        return added, f"{new} imported as OME-Zarr, {len(added) - new} already there"

    added = step("OME-Zarr", add_all)
    result.image_ids = [a.image_id for a in added]
    result.plug_ids = sorted({ids[s.plug][0] for s in samples})
    result.hole_ids = sorted({ids[s.plug][1] for s in samples})

    def labels_all():
        stamps = []
        for s, a in zip(samples, added, strict=True):
            stored = import_labels(a.image_id, s.scribbles, legend=s.legend, name="scribbles", url=url)
            stamps.append(stored)
        return stamps, f"scribbles on {len(stamps)} images (<= 1 % of pixels each)"

    stored = step("sparse labels", labels_all)
    models_dir = result.home / "models"
    models_dir.mkdir(parents=True, exist_ok=True)

    def train_all():
        made = {}
        for kind in ("rf", "mgc"):
            members = [(a.image_id, st) for s, a, st in zip(samples, added, stored, strict=True) if s.model == kind]
            if not members:
                continue
            path = models_dir / f"{kind}.pt"
            stamp = path.with_suffix(".labels")
            key = _digest([(i, st.store_uri, st.version) for i, st in members])
            if not (path.exists() and stamp.exists() and stamp.read_text() == key):
                train([i for i, _ in members], path, labels="scribbles", classifier=kind,
                      features="raw" if kind == "mgc" else "fast", url=url)
                stamp.write_text(key)
                made[kind] = "trained"
            else:
                made[kind] = "unchanged"
        return made, ", ".join(f"{k} {v}" for k, v in made.items())

    step("train", train_all)

    def ingest_all():
        grains = roxels = kept = 0
        shas = {kind: sha256_file(models_dir / f"{kind}.pt") for kind in {s.model for s in samples}}
        for s, a in zip(samples, added, strict=True):
            model = models_dir / f"{s.model}.pt"
            sha = shas[s.model]
            with transaction(url) as session:
                done = session.scalar(select(m.SegmentationRun).where(
                    m.SegmentationRun.image_id == a.image_id, m.SegmentationRun.name == s.model,
                    m.SegmentationRun.status == "complete", m.SegmentationRun.model_sha256 == sha))
            if done is not None:
                kept += 1
                continue
            summary = ingest_prediction(a.image_id, s.model, model, url=url, progress=False, model_sha256=sha)
            grains += summary.grains
            roxels += summary.roxels
        note = f", {kept} runs already ingested with the same model" if kept else ""
        return None, f"{grains:,} grains and {roxels:,} roxels written{note}"

    step("predict + ingest", ingest_all)

    def score():
        for s, a in zip(samples, added, strict=True):
            ev = evaluate(a.image_id, truth=s.truth, legend=s.legend, run=s.model, url=url)
            result.accuracy[s.files[0].stem] = ev.to_dict()["macro"]
        lines = [f"{name}: F1 {v['f1']:.3f}, IoU {v['iou']:.3f}" for name, v in result.accuracy.items()]
        return None, f"mean F1 {result.mean_f1():.3f} against the ground truth\n   " + "\n   ".join(lines)

    step("accuracy", score)


def urls(result: DemoResult, base: str) -> list[tuple[str, str]]:
    """What to open once the server runs (label, URL)."""
    out = [("map of deposits and drill cores", f"{base}/mis/map"),
           ("OGC API collections (QGIS: add as an OGC API - Features connection)", f"{base}/collections"),
           ("roxels as GeoJSON", f"{base}/collections/roxels/items?f=json&limit=10")]
    if result.hole_ids:
        out.append(("a drill core with its downhole log", f"{base}/mis/drillcore/{result.hole_ids[0]}"))
    if result.plug_ids:
        out.append(("a plug with its images and grains", f"{base}/mis/plug/{result.plug_ids[0]}"))
        out.append(("its IIIF viewer", f"{base}/viewer/plug/{result.plug_ids[0]}"))
    if result.image_ids:
        out.append(("IIIF image information", f"{base}/iiif/3/{result.image_ids[0]}/info.json"))
    return out
