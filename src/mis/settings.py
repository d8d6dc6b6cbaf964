"""Every setting of MIS, in one typed object read from ``MIS_*`` environment variables.

As tipg's ``settings.py`` does, one pydantic-settings class names each variable, its type
and its default, so a newcomer finds them in one place and a typo in a value fails with
the variable's name. :func:`settings` builds the object afresh on each call (about 0.1 ms):
the test suite and ``mis`` subcommands change ``MIS_HOME`` and friends at run time, and a
cached copy would silently keep the old value.

No module outside this one reads ``os.environ`` for MIS's own settings. An empty variable
counts as unset (``MIS_DEVICE=`` means the default, as ``if os.environ.get(...)`` did).

Importing this module costs about 0.2 s (pydantic-settings); modules on the path of
``mis --help`` import it inside the functions that need it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """MIS's settings; each field is read from ``MIS_<FIELD>`` (case-insensitive)."""

    model_config = SettingsConfigDict(env_prefix="MIS_", extra="ignore", frozen=True, env_ignore_empty=True)

    #: The project's private state (embedded PostgreSQL cluster, image store, tokens).
    home: Path = Path(".mis")
    #: An existing PostGIS to use instead of the embedded cluster (never started or stopped).
    database_url: str | None = None
    #: The bearer-token file of the API (default ``home/api/tokens.json``).
    api_tokens: Path | None = None
    #: Where image stores are written (a folder or an fsspec URL; default ``home/images``).
    image_store: str | None = None
    #: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
    device: str | None = None
    #: The pygeoapi configuration template (default: the one shipped with the package).
    pygeoapi_config: Path | None = None
    #: Alembic migrations, SQL views, SKOS ontology (defaults: shipped with the package).
    alembic_dir: Path | None = None
    schema_dir: Path | None = None
    ontology_dir: Path | None = None
    #: The source vocabularies ``mis vocab build`` reads (default: ``../shared/data/vocabularies``
    #: beside a checkout).
    vocab_sources: Path | None = None

    # -- the API's database use -----------------------------------------------------------
    #: Connections per server process (SQLAlchemy pool) and the overflow above it.
    pool_size: int = Field(default=8, ge=1, le=256)
    pool_overflow: int = Field(default=8, ge=0, le=256)
    #: A read statement running longer is cancelled (HTTP 503 with Retry-After).
    statement_timeout_ms: int = Field(default=30_000, ge=100)
    #: ``numberMatched`` is counted exactly below this many rows, else estimated.
    exact_count_below: int = Field(default=200_000, ge=0)
    #: How long the vocabulary cache (terms and their hierarchy) is trusted, in seconds.
    terms_ttl_s: float = Field(default=60.0, ge=0)


def settings() -> Settings:
    """The current settings (read from the environment now)."""
    return Settings()


def mis_home() -> Path:
    """The directory holding MIS's private state (``MIS_HOME``), created on first use."""
    home = settings().home.expanduser().absolute()
    home.mkdir(parents=True, exist_ok=True)
    return home
