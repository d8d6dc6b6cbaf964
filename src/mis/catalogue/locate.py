"""Which database MIS talks to: the user's own PostGIS, else the embedded cluster's.

``MIS_DATABASE_URL`` names an existing PostGIS; when it is set, MIS never starts or stops
a server of its own. Otherwise every command uses the embedded cluster of
:mod:`mis.catalogue.postgres`, whose URL it reads from the state the cluster wrote when it
started. The locator lives beside the cluster (not in the settings) so that the settings
import nothing of the catalogue.
"""

from __future__ import annotations

from mis.catalogue.postgres import EmbeddedPostgres
from mis.settings import settings


def external_database_url() -> str | None:
    """The user's own database, if ``MIS_DATABASE_URL`` names one."""
    url = (settings().database_url or "").strip()
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
    return external_database_url() or EmbeddedPostgres().url()
