"""Where MIS keeps its things, and which database it talks to.

Two environment variables steer everything:

- ``MIS_HOME``: the project's private state (embedded PostgreSQL cluster, image store).
  Defaults to ``./.mis`` so that a checkout is self-contained.
- ``MIS_DATABASE_URL``: an existing PostGIS to use instead of the embedded one. When set,
  MIS never starts or stops a server of its own.
"""

from __future__ import annotations

import os
from pathlib import Path

DATABASE_URL_ENV = "MIS_DATABASE_URL"
HOME_ENV = "MIS_HOME"


def mis_home() -> Path:
    """The directory holding MIS's private state, created on first use."""
    home = Path(os.environ.get(HOME_ENV, ".mis")).expanduser().absolute()
    home.mkdir(parents=True, exist_ok=True)
    return home


def external_database_url() -> str | None:
    """The user's own database, if ``MIS_DATABASE_URL`` names one."""
    url = os.environ.get(DATABASE_URL_ENV, "").strip()
    return normalise_url(url) if url else None


def normalise_url(url: str) -> str:
    """Make SQLAlchemy use psycopg 3 for plain ``postgresql://`` URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def database_url() -> str:
    """The URL every command uses: the external database, else the embedded cluster's.

    The embedded cluster must be running (``mis db start``); its URL is read from the
    state it wrote when it started.
    """
    url = external_database_url()
    if url:
        return url
    from mis.catalogue.postgres import EmbeddedPostgres

    return EmbeddedPostgres().url()
