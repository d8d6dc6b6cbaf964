"""Test services: a real PostgreSQL + PostGIS started for the session, one database per test.

The session starts an embedded cluster (the same code as ``mis db start``) in a private
``MIS_HOME`` under the pytest temp dir, migrates a template database once, and gives every
test that asks for ``db_url`` a fresh database cloned from the template (``CREATE
DATABASE ... TEMPLATE``), dropped afterwards. Tests that run the CLI in a subprocess see
the same database through ``MIS_DATABASE_URL``. With ``MIS_TEST_DATABASE_URL`` set, the
databases are created on that server instead (it needs CREATEDB).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from mis.catalogue import migrate
from mis.catalogue.postgres import EmbeddedPostgres

TEMPLATE = "mis_test_template"
#: Durability is not what tests check; these make cluster start and CREATE DATABASE fast.
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
_counter = itertools.count()


def _libpq(url: str, database: str | None = None) -> str:
    u = make_url(url)
    if database:
        u = u.set(database=database)
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a PostGIS server (database 'postgres' level) owned by this test session."""
    external = os.environ.get("MIS_TEST_DATABASE_URL")
    if external:
        yield external
        return
    home = tmp_path_factory.mktemp("mis-home")
    cluster = EmbeddedPostgres(home=home, settings=FAST_SETTINGS)
    state = cluster.start()
    try:
        yield state.url()
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def template_url(server_url: str) -> str:
    """A migrated database (+ vocabularies where available) every test database copies."""
    with psycopg.connect(_libpq(server_url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}"')
        conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
    url = make_url(server_url).set(database=TEMPLATE).render_as_string(hide_password=False)
    migrate.upgrade(url)
    _load_vocabularies(url)
    return url


def _load_vocabularies(url: str) -> None:
    try:
        from mis.vocab.load import load_vocabularies
    except ImportError:  # the vocabulary stage is not there yet
        return
    load_vocabularies(url=url, progress=False)
    from mis.catalogue.engines import dispose_engines

    dispose_engines()  # no connection may stay open on a template


@pytest.fixture
def db_url(server_url: str, template_url: str) -> Iterator[str]:
    """A fresh catalogue database for one test, dropped afterwards."""
    name = f"mis_test_{os.getpid()}_{next(_counter)}"
    admin = _libpq(server_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        from mis.catalogue.engines import dispose_engines

        dispose_engines()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def engine(db_url: str):
    eng = create_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine) -> Iterator[Session]:
    """An ORM session on the test database; whatever it did not commit is rolled back."""
    with Session(engine) as s:
        yield s
        s.rollback()


@pytest.fixture
def mis_env(db_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for running the ``mis`` CLI against the test database."""
    return {**os.environ, "MIS_DATABASE_URL": db_url, "MIS_HOME": str(tmp_path / "mis-home")}


@pytest.fixture
def run_mis(mis_env: dict[str, str]):
    """Run ``mis ARGS...`` in a subprocess (the real console entry), return the result."""

    def _run(*args: str, check: bool = False, input: str | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "mis", *args], env=mis_env, capture_output=True, text=True,
            input=input, timeout=600,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"mis {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    return _run
