"""The publication views (schema ``pub``): installed from ``schema/*.sql``, rebuilt at will.

OGC API - Features publishes views, never the tables themselves (``pygeoapi-config.yml``
names them): they flatten the hierarchy, put a label beside every concept URI and use
GeoSciML-Lite property names. They live in their own schema, ``pub``, so that

- :func:`install` can rebuild all of them in one transaction (``DROP SCHEMA pub
  CASCADE`` + the SQL files, in name order), e.g. after a migration that changes a
  table they read;
- alembic's models/migration comparison never sees them (it compares the tables of the
  default schema only; views and functions are not compared at all).

Migrations call :func:`install` (``alembic/versions/0002_publication_views.py``); a later
migration that changes a table the views read calls :func:`drop` before and
:func:`install` after its own work. The SQL is read at run time from the files, so the
views installed are always the current ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import text

from mis import resources
from mis.settings import settings

#: The schema holding every publication view and its helper functions.
SCHEMA = "pub"


def schema_dir() -> Path:
    """The folder of the SQL files (``MIS_SCHEMA_DIR``, else the project's ``schema/``)."""
    folder = settings().schema_dir or resources.path("schema")
    if not folder.is_dir():
        raise FileNotFoundError(
            f"publication SQL not found at {folder}; set MIS_SCHEMA_DIR to the project's schema/ folder")
    return folder


def sql_files() -> list[Path]:
    """The SQL files that build the publication schema, in the order they run."""
    files = sorted(schema_dir().glob("*.sql"))
    if not files:
        raise FileNotFoundError(f"no .sql files in {schema_dir()}")
    return files


def _execute(target: Any, sql: str) -> None:
    """Run ``sql`` on an alembic ``op``, a SQLAlchemy connection, or a database URL.

    The SQL goes to the driver as it is (no bind parameters: ``:name`` and ``%`` mean
    nothing special), several statements at once."""
    if hasattr(target, "get_bind"):  # alembic op: the migration's connection
        target.get_bind().exec_driver_sql(sql)
    elif hasattr(target, "exec_driver_sql"):  # SQLAlchemy Connection
        target.exec_driver_sql(sql)
    else:
        from mis.catalogue.session import get_engine

        with get_engine(target).begin() as conn:
            conn.exec_driver_sql(sql)


def install(target: Any = None) -> list[str]:
    """(Re)build the ``pub`` schema: every view and function, in one transaction.

    ``target``: an alembic ``op``, a SQLAlchemy ``Connection`` (the caller's
    transaction), or a database URL (default: :func:`mis.catalogue.locate.database_url`).
    Returns the names of the files run.
    """
    files = sql_files()
    body = "\n".join(f.read_text(encoding="utf-8") for f in files)
    if f"CREATE SCHEMA {SCHEMA}" not in body:
        raise ValueError(f"the SQL in {schema_dir()} does not create the schema {SCHEMA!r}")
    _execute(target if target is not None else _default_url(), body)
    return [f.name for f in files]


def drop(target: Any = None) -> None:
    """Remove the ``pub`` schema and everything in it (the tables are not touched)."""
    _execute(target if target is not None else _default_url(), f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


def published(conn: Any) -> list[str]:
    """Names of the views in ``pub`` (what the server can publish)."""
    rows = conn.execute(text(
        "SELECT table_name FROM information_schema.views WHERE table_schema = :s ORDER BY 1"), {"s": SCHEMA})
    return [r[0] for r in rows]


def _default_url() -> str:
    from mis.catalogue.locate import database_url

    return database_url()
