"""The user guides, followed word for word against the real demo server.

One ``mis demo --small`` (the exact command of docs/gis-user.md's ``guide-test: server``
block, on a free port, with a database of its own) is built and served for this module;
then each guide's bash and python blocks run in order as a reader would type them
(``scripts/check_guides.py``: one shell and one Python session per guide, started in an
empty folder), and the output each guide shows must be what the commands print.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from mis.catalogue.postgres import free_port
from tests.test_api_support import libpq

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GUIDES = ("gis-user.md", "modeller.md", "data-manager.md", "api-writes.md")
_counter = itertools.count()


def _load_checker():
    spec = importlib.util.spec_from_file_location("check_guides", ROOT / "scripts" / "check_guides.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("check_guides", module)
    spec.loader.exec_module(module)
    return module


check_guides = _load_checker()


@dataclass
class DemoServer:
    port: int
    env: dict[str, str]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def follow(self, guide: str, workdir: Path):
        try:
            return check_guides.follow(DOCS / guide, self.port, env=self.env, workdir=workdir)
        except check_guides.GuideError as exc:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"{exc}\n--- server log (tail) ---\n{tail}") from None


@pytest.fixture(scope="module")
def demo(server_url: str, template_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    """`mis demo --small` built and served once for the module, on a free port."""
    for tool, package in (("curl", "curl"), ("ogrinfo", "gdal-bin"), ("ogr2ogr", "gdal-bin")):
        assert shutil.which(tool), f"the guides use {tool}: install the Debian package {package} (scripts/setup.sh)"
    name = f"mis_guides_{os.getpid()}_{next(_counter)}"
    admin = libpq(server_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "mis_test_template"')
    db = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    home = tmp_path_factory.mktemp("guides-home")
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "MIS_DATABASE_URL": db, "MIS_HOME": str(home),
           "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "/usr/bin:/bin")])}
    port = free_port()
    command = check_guides.server_command(DOCS / "gis-user.md")
    assert command, "docs/gis-user.md has no 'guide-test: server' block"
    log = home / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(["bash", "-c", check_guides.with_port(command, port)], env=env, cwd=home,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    server = DemoServer(port, env, log)
    try:
        try:
            check_guides._wait(f"{server.url}/collections?f=json", proc, 300)
        except RuntimeError as exc:
            raise AssertionError(f"{command}: {exc}:\n{log.read_text()[-3000:]}") from None
        yield server
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        from mis.catalogue.engines import dispose_engines

        dispose_engines()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_guides_mark_every_block_they_do_not_run():
    """Every bash/python block runs unless it says why not; the server block is there."""
    skipped = []
    for guide in GUIDES:
        blocks = check_guides.parse(DOCS / guide)
        skipped += [b for b in blocks if b.directive == "skip"]
        runnable = [b for b in blocks if b.runnable]
        assert runnable, guide
        for b in blocks:
            if b.directive == "skip":
                assert b.argument.startswith("(") and len(b.argument) > 10, b.where
            if b.directive in ("output", "urls"):
                assert b.lang == "text", f"{b.where}: {b.directive} needs a text block"
            if b.directive == "exit":
                assert b.lang in check_guides.RUNNABLE and b.argument.isdigit(), b.where
    assert len(skipped) <= 2, [b.where for b in skipped]


def test_gis_user_guide(demo: DemoServer, tmp_path: Path):
    demo.follow("gis-user.md", tmp_path)
    assert (tmp_path / "quebrada-azul.gpkg").stat().st_size > 0
    assert (tmp_path / "igneous.gpkg").stat().st_size > 0


def test_modeller_guide(demo: DemoServer, tmp_path: Path):
    reader = demo.follow("modeller.md", tmp_path)
    ns = reader.namespace
    composites = ns["composites"]
    assert list(composites["from_m"]) == [30.0, 98.0]
    sums = composites[ns["classes"]].sum(axis=1)
    assert ((sums > 0.99) & (sums < 1.01)).all()          # fractions of whole roxels
    import pandas as pd

    back = pd.read_parquet(tmp_path / "QA-001_25-100m_1m.parquet")
    assert back.shape == composites.shape
    # the guide's paging loop really pages: 100 a page gives the same roxels
    paged = [f["id"] for f in ns["features"](f"{demo.url}/collections/roxels/items", limit=100, filter=ns["cql"])]
    assert sorted(paged) == sorted(ns["roxels"].index) and len(paged) > 100


def test_data_manager_guide(demo: DemoServer, tmp_path: Path):
    demo.follow("data-manager.md", tmp_path)
    exported = (tmp_path / "export" / "collars.csv").read_text()
    assert "CB-001" in exported and "CB-002" in exported


def test_api_writes_guide(demo: DemoServer, tmp_path: Path):
    demo.follow("api-writes.md", tmp_path)
    names = [f["properties"]["name"] for f in
             httpx.get(f"{demo.url}/collections/drillcores/items", params={"f": "json"}).json()["features"]]
    assert "QA-007" not in names and "QA-001" in names   # created, then deleted with its subtree
