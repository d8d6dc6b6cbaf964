"""``mis register`` and ``mis export``: thin commands over :mod:`mis.catalogue.register`.

Attached to the main app by ``app.command("register")(register_cmd)`` and
``app.command("export")(export_cmd)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def register_cmd(
    files: Annotated[list[Path] | None, typer.Argument(
        help="Deposit YAML/JSON/GeoJSON and collar/survey/sample CSV files, in any mix; each is "
             "recognised by its format and columns.", show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and report; write nothing.")] = False,
    deposit: Annotated[str | None, typer.Option(
        "--deposit", help="Deposit of rows without a DEPOSIT column.")] = None,
    collars: Annotated[list[Path] | None, typer.Option(
        "--collars", help="A collar table (whatever its columns look like).", show_default=False)] = None,
    surveys: Annotated[list[Path] | None, typer.Option(
        "--surveys", help="A survey table.", show_default=False)] = None,
    samples: Annotated[list[Path] | None, typer.Option(
        "--samples", help="A sample interval table.", show_default=False)] = None,
    deposits: Annotated[list[Path] | None, typer.Option(
        "--deposits", help="A deposit file (YAML, JSON or GeoJSON).", show_default=False)] = None,
    inclination: Annotated[bool, typer.Option(
        "--inclination", help="DIP columns hold inclination from vertical (oil & gas: 0 = down).")] = False,
    dogleg_limit: Annotated[float | None, typer.Option(
        "--dogleg-limit", help="Warn about survey intervals bending more than this (deg/30 m; default 10).",
        show_default=False)] = None,
    epsg: Annotated[int | None, typer.Option(
        "--epsg", help="CRS of X/Y collar coordinates in files without an EPSG column.")] = None,
    sample_type: Annotated[str | None, typer.Option(
        "--sample-type", help="Sample type of sample rows that give none (a vocabulary term).")] = None,
) -> None:
    """Register deposits, drillhole collars, surveys and samples: all or nothing.

    Every problem is reported at once as `file:line: column: rule (value ...)`; with any
    error nothing is written (exit code 1). Re-registering the same files changes
    nothing; changed rows are updated in place and their traces and sample positions
    recomputed. Name a file's table with --collars/--surveys/--samples/--deposits when its
    columns do not tell.

    Example: `mis register deposits.yaml collars.csv surveys.csv samples.csv --dry-run`
    """
    from mis.catalogue.errors import DatabaseUnavailable
    from mis.catalogue.postgres import PostgresError
    from mis.catalogue.register import DEFAULT_DOGLEG_LIMIT, register

    if dogleg_limit is None:  # the validator's default, read here so `mis --help` need not import it
        dogleg_limit = DEFAULT_DOGLEG_LIMIT

    inputs: list = list(files or [])
    for kind, paths in (("collars", collars), ("surveys", surveys), ("samples", samples), ("deposits", deposits)):
        inputs += [(kind, p) for p in paths or []]
    if not inputs:
        err.print("[bold red]error:[/] give at least one file to register")
        raise typer.Exit(2)
    try:
        with console.status("registering ...", spinner="dots") if console.is_terminal else _nothing():
            report = register(inputs, dry_run=dry_run, deposit=deposit,
                              convention="inclination" if inclination else "dip",
                              dogleg_limit=dogleg_limit, epsg=epsg, sample_type=sample_type)
    except (PostgresError, DatabaseUnavailable) as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    for finding in report.findings:  # plain lines, never wrapped: editors and scripts parse them
        typer.echo(str(finding), err=finding.is_error)
    typer.echo(report.summary())
    if not report.ok:
        raise typer.Exit(1)


def export_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the files into.")],
    deposit: Annotated[list[str] | None, typer.Argument(
        help="Deposits to export (default: all).", show_default=False)] = None,
) -> None:
    """Export deposits to the registration layout (deposits.yaml, collars/surveys/samples.csv).

    The files register back unchanged: exporting, registering into an empty catalogue
    and exporting again gives identical files.

    Example: `mis export "Cerro Verde" --out export/`
    """
    from mis.catalogue.postgres import PostgresError
    from mis.catalogue.register import export

    try:
        result = export(out, deposit or None)
    except (ValueError, PostgresError) as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from None
    typer.echo(result.summary())


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
