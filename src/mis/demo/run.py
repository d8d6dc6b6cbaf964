"""``mis demo``: the main job end to end on the built-in default.

Each step is idempotent, so a second run reuses what the first made: the cluster is
started only if stopped, migrations apply only what is missing, the vocabulary loader and
the registration change nothing when nothing changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from mis.config import external_database_url, mis_home


@dataclass
class DemoResult:
    url: str
    sample_dir: Path
    steps: list[tuple[str, str]] = field(default_factory=list)


def run_demo(console: Console | None = None) -> DemoResult:
    """Start the database, migrate, load the vocabularies, register the sample deposit."""
    from mis.catalogue import migrate
    from mis.catalogue.postgres import EmbeddedPostgres
    from mis.catalogue.register.service import register
    from mis.config import database_url
    from mis.demo.deposit import write_sample_deposit
    from mis.vocab.load import load_vocabularies

    console = console or Console()
    steps: list[tuple[str, str]] = []

    def step(title: str, action: Callable[[], str]) -> None:
        with console.status(f"[bold]{title}[/] …"):
            outcome = action()
        console.print(f"[green]✓[/] {title}: {outcome}")
        steps.append((title, outcome))

    def start_db() -> str:
        if external_database_url():
            return "using MIS_DATABASE_URL"
        state = EmbeddedPostgres().start()
        return f"PostGIS on 127.0.0.1:{state.port}, data in {state.data_dir}"

    step("database", start_db)
    url = database_url()
    step("schema", lambda: (migrate.upgrade(url), f"revision {migrate.current(url)}")[1])
    step("vocabularies", lambda: load_vocabularies(url=url, progress=False).summary())
    sample_dir = mis_home() / "demo" / "deposit"
    files = write_sample_deposit(sample_dir)

    def register_sample() -> str:
        report = register(files.all(), url=url)
        if not report.ok:
            raise RuntimeError("the sample deposit was refused:\n" + report.render())
        return report.summary().replace("\n", "\n   ")

    step("sample deposit", register_sample)
    return DemoResult(url=url, sample_dir=sample_dir, steps=steps)
