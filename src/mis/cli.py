"""``mis <verb>``: a thin command line over the modules; no logic lives here."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

from mis import __version__
from mis.cli_ingest import ingest_cmd, log_cmd, report_cmd
from mis.cli_register import export_cmd, register_cmd
from mis.cli_segment import evaluate_cmd, label_app, predict_cmd, train_cmd
from mis.cli_serve import serve_cmd, token_app

app = typer.Typer(
    name="mis",
    help="MIS, the Microscopical Information System: rock as data, from the deposit down to the pixel.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
db_app = typer.Typer(help="Run the embedded PostGIS and migrate the catalogue.", no_args_is_help=True)
app.add_typer(db_app, name="db")
vocab_app = typer.Typer(help="Load and query the SKOS vocabularies.", no_args_is_help=True)
app.add_typer(vocab_app, name="vocab")
image_app = typer.Typer(help="Import microscope images and core photos as OME-Zarr.", no_args_is_help=True)
app.add_typer(image_app, name="image")
app.command("register")(register_cmd)
app.command("serve")(serve_cmd)
app.add_typer(label_app, name="label")
app.command("train")(train_cmd)
app.command("predict")(predict_cmd)
app.command("evaluate")(evaluate_cmd)
app.command("ingest")(ingest_cmd)
app.command("report")(report_cmd)
app.command("log")(log_cmd)
app.add_typer(token_app, name="token")
app.command("export")(export_cmd)

console = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        console.print(f"mis {__version__}")
        raise typer.Exit()


# --------------------------------------------------------------------------- db
def _external_database_url() -> str | None:
    # imported here, not at the top: the locator brings pydantic-settings (~0.2 s), which
    # `mis --help` and the commands without a database never need
    from mis.catalogue.locate import external_database_url

    return external_database_url()


def _cluster():
    from mis.catalogue.postgres import EmbeddedPostgres

    return EmbeddedPostgres()


@db_app.command("start")
def db_start() -> None:
    """Start the embedded PostGIS (initialising it on first use); harmless when running.

    Example: `mis db start`
    """
    from mis.catalogue.postgres import PostgresError

    if _external_database_url():
        console.print("MIS_DATABASE_URL is set: using that database, not starting the embedded one.")
        return
    try:
        state = _cluster().start()
    except PostgresError as exc:
        fail(str(exc))
    console.print(f"PostGIS running on 127.0.0.1:{state.port} (data in {state.data_dir})")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded PostGIS.

    Example: `mis db stop`
    """
    if _external_database_url():
        console.print("MIS_DATABASE_URL is set: the embedded database is not in use.")
        return
    console.print("stopped" if _cluster().stop() else "not running")


@db_app.command("status")
def db_status() -> None:
    """Say whether the database runs, where, and which database MIS uses.

    Example: `mis db status`
    """
    from mis.catalogue import migrate

    url = _external_database_url()
    if url:
        console.print(f"using MIS_DATABASE_URL: {_redact(url)}")
    else:
        status = _cluster().status()
        if not status.running:
            console.print(f"embedded PostGIS: [bold]stopped[/] (data dir {status.data_dir})")
            raise typer.Exit(3)
        console.print(
            f"embedded PostGIS: [bold green]running[/] on 127.0.0.1:{status.port}, database 'mis'\n"
            f"  data dir: {status.data_dir} (server run as OS user '{status.os_user}')\n"
            f"  PostgreSQL {status.server_version}, PostGIS {status.postgis_version}"
        )
        url = status.url
    console.print(f"  schema revision: {migrate.current(url) or 'none (run: mis db migrate)'}")


@db_app.command("url")
def db_url() -> None:
    """Print the SQLAlchemy URL of the catalogue (for psql: drop '+psycopg').

    Example: `psql "$(mis db url | sed 's/+psycopg//')"`
    """
    from mis.catalogue.locate import database_url
    from mis.catalogue.postgres import PostgresError

    try:
        print(database_url())
    except PostgresError as exc:
        fail(str(exc))


@db_app.command("migrate")
def db_migrate() -> None:
    """Upgrade the catalogue schema to the newest revision (alembic upgrade head).

    Example: `mis db migrate`
    """
    from mis.catalogue import migrate

    migrate.upgrade()
    console.print(f"schema at revision {migrate.current()}")


@db_app.command("reset")
def db_reset(
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete every catalogue row and re-create an empty, migrated catalogue.

    Embedded: the cluster is destroyed and initialised anew. With MIS_DATABASE_URL: the
    MIS schema is downgraded to nothing and upgraded again.

    Example: `mis db reset --yes`
    """
    from mis.catalogue import migrate

    if not yes and not typer.confirm("Delete the whole catalogue?", default=False):
        raise typer.Exit(1)
    if _external_database_url():
        migrate.downgrade()
    else:
        cluster = _cluster()
        cluster.destroy()
        cluster.start()
    migrate.upgrade()
    console.print(f"catalogue reset; schema at revision {migrate.current()}")


# --------------------------------------------------------------------------- vocab
@vocab_app.command("load")
def vocab_load(
    path: Annotated[
        str | None, typer.Option("--path", help="Ontology directory (default: the project's ontology/).")
    ] = None,
    scheme: Annotated[list[str] | None, typer.Option("--scheme", help="Load only this scheme (repeatable).")] = None,
) -> None:
    """Load every SKOS scheme into the catalogue (idempotent; updates in place).

    Example: `mis vocab load`
    """
    from pathlib import Path

    from mis.vocab.load import VocabularyError, load_vocabularies

    try:
        report = load_vocabularies(Path(path) if path else None, schemes=scheme)
    except VocabularyError as exc:
        fail(str(exc))
    console.print(report.summary())


@vocab_app.command("build")
def vocab_build(
    sources: Annotated[str | None, typer.Option(
        "--sources", help="Directory of the source vocabularies (cgi-2016/, erml-2016/, ima/); "
                          "default $MIS_VOCAB_SOURCES or ../shared/data/vocabularies beside the checkout.")] = None,
    out: Annotated[str | None, typer.Option("--out",
        help="Output directory (default: the checkout's ontology/).")] = None,
    check: Annotated[bool, typer.Option("--check",
        help="Write nothing; exit 1 if --out differs from a fresh build.")] = False,
) -> None:
    """Build ontology/*.ttl (SKOS Turtle, byte-stable) from the source vocabularies.

    Example: `mis vocab build --check`
    """
    from pathlib import Path

    from mis.vocab import build
    from mis.vocab.minerals import MineralDataError

    try:
        target = Path(out) if out else build.default_out()
        result = build.build(Path(sources) if sources else build.default_sources())
    except (build.BuildError, MineralDataError) as exc:
        fail(str(exc), code=2)
    for key in build.SCHEME_KEYS:
        print(f"{key:20} {result.counts[key]:5d} concepts")
    if result.not_in_warr:
        print("curated minerals not in Warr (2021), symbol assigned by MIS: " + ", ".join(result.not_in_warr))
    if check:
        differ = build.check(result, target)
        if differ:
            fail(f"{target}: out of date: {', '.join(differ)}")
        print(f"{target}: up to date")
        return
    for name in build.write(result, target):
        print(f"removed stale {target / name}")
    print(f"wrote {len(result.files)} files to {target}")


@vocab_app.command("search")
def vocab_search(
    text: Annotated[str, typer.Argument(help="A label, alt label, symbol or notation.")],
    scheme: Annotated[str | None, typer.Option("--scheme", help="Only this scheme (e.g. mineral).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many results.")] = 10,
) -> None:
    """Find concepts by what people type: "Ccp", "chalcopyrite", "CHALCOPYRITE".

    Example: `mis vocab search ccp --scheme mineral`
    """
    from mis.catalogue.session import transaction
    from mis.vocab.lookup import TermIndex

    with transaction() as session:
        index = TermIndex.from_session(session, [scheme] if scheme else None)
    hits = index.search(text, scheme, limit)
    if not hits:
        fail(f"no concept matches {text!r}")
    for t in hits:
        print(f"{t.pref_label}\t{t.notation or ''}\t{t.scheme}\t{t.uri}")


@vocab_app.command("narrower")
def vocab_narrower(
    term: Annotated[str, typer.Argument(help="A concept label, notation or URI.")],
    scheme: Annotated[str | None, typer.Option("--scheme", help="Scheme of the term.")] = None,
) -> None:
    """List every concept below a concept, transitively (e.g. all igneous rocks).

    Example: `mis vocab narrower "igneous rock" --scheme lithology`
    """
    from mis.catalogue.session import transaction
    from mis.vocab.lookup import TermIndex, narrower

    with transaction() as session:
        index = TermIndex.from_session(session, [scheme] if scheme else None)
        try:
            root = index.resolve(term, scheme)
        except LookupError as exc:
            fail(str(exc))
        for uri in narrower(session, root.uri):
            print(f"{index.terms[uri].pref_label}\t{uri}")


# --------------------------------------------------------------------------- image
@image_app.command("add")
def image_add(
    files: Annotated[list[str], typer.Argument(help="The image file, or one greyscale file per band.")],
    plug: Annotated[str, typer.Option("--plug", help="Plug id, HOLE/PLUG or DEPOSIT/HOLE/PLUG.")],
    pixel_size_um: Annotated[float, typer.Option("--pixel-size-um", help="Pixel size in micrometres.")],
    modality: Annotated[str, typer.Option("--modality", help="Image modality term, e.g. reflected-light, ppl, bse.")],
    band: Annotated[list[str] | None, typer.Option("--band", help="Band name (repeat per band).")] = None,
    wavelength: Annotated[
        list[float] | None, typer.Option("--wavelength", help="Band centre wavelength in nm (repeat).")
    ] = None,
    depth_axis: Annotated[
        str | None, typer.Option("--depth-axis", help="x or y: this pixel axis maps onto depth.")
    ] = None,
    top: Annotated[float | None, typer.Option("--top", help="Depth (m) of the first pixel along --depth-axis.")] = None,
    bottom: Annotated[
        float | None, typer.Option("--bottom", help="Depth (m) of the last pixel along --depth-axis.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Image name within the plug (default: file name).")] = None,
) -> None:
    """Import an image for a plug as OME-Zarr with a pyramid and register it (idempotent).

    Example: `mis image add --plug QA-001/QA-001-P01 section.tif --pixel-size-um 0.5 --modality reflected-light`

    Example (core photo): `mis image add --plug QA-002/QA-002-P02 box.jpg --pixel-size-um 100 --modality core-photo --depth-axis x --top 110.0 --bottom 111.2`
    """  # noqa: E501 - the example is one command line, to copy as it is
    from pathlib import Path

    from mis.catalogue.errors import CatalogueError
    from mis.imagery.catalogue import add_image
    from mis.imagery.readers import ImageReadError

    try:
        added = add_image(plug, [Path(f) for f in files], pixel_size_um=pixel_size_um, modality=modality,
                          band_names=band, wavelengths_nm=wavelength, depth_axis=depth_axis,
                          top_m=top, bottom_m=bottom, name=name)
    except (CatalogueError, ImageReadError, ValueError) as exc:
        fail(str(exc))
    verb = "added" if added.created else "already registered"
    console.print(f"image {added.image_id} {verb}: {added.store_uri}", highlight=False)


@image_app.command("upgrade")
def image_upgrade(
    images: Annotated[list[str] | None, typer.Argument(help="Image ids or store paths/URLs.")] = None,
    all_images: Annotated[bool, typer.Option("--all", help="Every image of the catalogue.")] = False,
) -> None:
    """Upgrade image stores in place to the current layout (labels and predictions as OME-Zarr label images);
    atomic per label image and idempotent. MIS also does it the first time it opens a store's labels.

    Example: `mis image upgrade --all`
    """
    from mis.imagery.upgrade import upgrade_store

    if bool(images) == all_images:
        fail("give image ids or store paths, or --all")
    if all_images:
        from mis.imagery.catalogue import catalogue_store_uris

        stores = catalogue_store_uris()
    else:
        from mis.imagery.imageref import ImageRefError, image_ref

        try:
            stores = [image_ref(i).store_uri for i in images or []]
        except ImageRefError as exc:
            fail(str(exc))
    failed = 0
    for uri in stores:  # one store that cannot be upgraded does not stop the others
        try:
            done = upgrade_store(uri)
        except (OSError, ValueError) as exc:
            err.print(f"[bold red]error:[/] {uri}: {exc}", highlight=False, soft_wrap=True)
            failed += 1
            continue
        what = ", ".join(done.label_sets + done.predictions) if done.changed else "already current"
        console.print(f"{uri}: {what}", highlight=False, soft_wrap=True)
    if failed:
        fail(f"{failed} of {len(stores)} store(s) not upgraded")


# --------------------------------------------------------------------------- demo
@app.command("demo")
def demo_cmd(
    small: Annotated[bool, typer.Option("--small", help="A one-minute version (small images).")] = False,
    serve: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the API at the end (until Ctrl-C).")] = True,
    port: Annotated[int, typer.Option(help="Port of the server.")] = 5000,
) -> None:
    """Run the whole mission end to end on the built-in default (idempotent).

    Starts the embedded PostGIS, migrates, loads the vocabularies, registers the sample
    porphyry Cu deposit (6 drill cores with curved surveys, 36 samples), generates sample
    images with known ground truth (thin sections, a core photo with a depth axis, a
    multispectral stack), imports them as OME-Zarr with sparse labels, trains, predicts and
    ingests grains, roxels and rocks, prints the accuracy, then serves the API and prints
    the URLs to open.

    Example: `mis demo` (then open http://127.0.0.1:5000/mis/map)
    """
    from mis.demo.run import run_demo, urls

    result = run_demo(console, small=small)
    base = f"http://127.0.0.1:{port}"
    console.print(f"\nmean F1 against the ground truth: [bold]{result.mean_f1():.3f}[/]")
    listing = "\n".join(f"  {label}: {link}" for label, link in urls(result, base))
    if not serve:
        print(f"Start the server with `mis serve --port {port}`, then open:\n{listing}")
        return
    from mis.api.app import serve as run_server

    print(f"Serving on {base} (Ctrl-C to stop). Open:\n{listing}", flush=True)
    run_server(port=port, log_level="warning")


# --------------------------------------------------------------------------- delete
@app.command("delete")
def delete_cmd(
    kind: Annotated[str, typer.Argument(help="deposit | drillcore | plug | image | run")],
    ident: Annotated[int, typer.Argument(help="The record's id.")],
    cascade: Annotated[bool, typer.Option("--cascade", help="Also delete every child record.")] = False,
) -> None:
    """Delete a record; refused while it has children unless --cascade is given.

    Example: `mis delete drillcore 12 --cascade`
    """
    from mis.catalogue import models
    from mis.catalogue.delete import delete
    from mis.catalogue.errors import CatalogueError
    from mis.catalogue.session import transaction

    kinds = {"deposit": models.Deposit, "drillcore": models.DrillCore, "plug": models.Plug,
             "image": models.Image, "run": models.SegmentationRun}
    if kind not in kinds:
        fail(f"unknown kind {kind!r}; use one of {', '.join(kinds)}")
    from mis.imagery.catalogue import remove_stores

    try:
        with transaction() as session:
            report = delete(session, kinds[kind], ident, cascade=cascade)
    except CatalogueError as exc:
        fail(str(exc))
    console.print("deleted: " + ", ".join(f"{n} {t}" for t, n in report.counts.items()))
    for line in remove_stores(report.stores):  # after the commit: a rolled-back delete keeps its pixels
        console.print(line, highlight=False)


def _redact(url: str) -> str:
    import re

    return re.sub(r"://([^:/@]+):[^@]+@", r"://\1:***@", url)


def run() -> None:  # pragma: no cover - console entry for `python -m mis`
    sys.exit(app())
