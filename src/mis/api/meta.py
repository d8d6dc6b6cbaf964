"""What the feature provider knows about one published view, cached per (database, view).

pygeoapi makes a provider on every request; reflecting a view's columns, typing them for
the queryables and estimating the table's size costs far more than a page query, so it
is done once per process (:func:`load_meta`) and kept until :func:`clear`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import geoalchemy2  # noqa: F401 - registers the geometry type for reflection
from pygeoapi.provider.base import ProviderConnectionError
from sqlalchemy import MetaData, Table, text
from sqlalchemy import types as T
from sqlalchemy.dialects.postgresql import JSON, JSONB
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import DBAPIError, NoSuchTableError
from sqlalchemy.sql.schema import Column

from mis.api.errors import CatalogueUnavailable, db_error
from mis.api.options import CollectionOptions
from mis.catalogue import engines, partitions
from mis.catalogue.locate import normalise_url
from mis.settings import settings

__all__ = ["BROADER_SUFFIX", "FIELD_SCHEMES", "JSON_TEXT_COLUMNS", "NARROWER_OF", "SERVER_PATH_COLUMNS",
           "ViewMeta", "clear", "connection_url", "json_type", "load_meta"]

#: Columns holding JSON, with the JSON type of their values: a ``text`` column of these
#: names is JSON the view wrote itself (``pub.roxels``: cheaper than a cast to json, which
#: parses every value again) and goes into a feature as it is.
JSON_TEXT_COLUMNS = {"composition": "object", "pixelWindow": "array"}
#: Text columns holding a path of this server (``/iiif/3/...``, made by the views of
#: digits, commas and slashes only): the views cannot know the server's public URL, the
#: provider can; features carry them as absolute URLs (a QGIS Identify opens them), typed
#: ``format: uri``.
SERVER_PATH_COLUMNS = {"imageRegion", "iiifManifest"}
#: Vocabulary scheme(s) of each classified property (to resolve terms of hierarchy filters).
FIELD_SCHEMES: dict[str, list[str]] = {
    "lithology": ["lithology"],
    "mineral": ["mineral", "segmentation-class"],
    "dominantClass": ["mineral", "segmentation-class"],
    "sampleType": ["sample-type"],
    "drillingMethod": ["drilling-method"],
    "depositModel": ["deposit-model"],
    "occurrenceType": ["occurrence-type"],
}
#: Hierarchy queryable suffix: ``lithology_broader`` = lithology at or under a concept.
BROADER_SUFFIX = "_broader"
#: In the vocabulary collections, the queryable of "this concept and everything under it".
NARROWER_OF = "narrowerOf"


@dataclass
class ViewMeta:
    """What the provider knows about one view (cached per connection + view)."""

    engine: Engine
    table: Table
    #: property name -> JSON-schema-ish {'type', 'format'} (no geometry, no id)
    fields: dict[str, dict[str, Any]]
    #: virtual hierarchy queryables: name -> (uri column, schemes)
    hierarchy: dict[str, tuple[str, list[str] | None]]
    exact_count: bool
    url: str
    #: classification label column -> the view's integer concept id column (big tables:
    #: filters on the label or URI become index conditions on the id)
    concept_ids: dict[str, str] = field(default_factory=dict)
    #: the view's aliases in statements ("t", "f"), made once
    aliases: dict[str, Any] = field(default_factory=dict)
    #: the run column of a view over a table partitioned by run (pages are read run by run)
    by_run: str | None = None
    #: statements of items and unfiltered keyset pages, by collection and shape (CRS ...)
    pages: dict[tuple, Any] = field(default_factory=dict)


_META: dict[tuple, ViewMeta] = {}
_LOCK = threading.Lock()


def connection_url(data: Any) -> str:
    """A SQLAlchemy URL (psycopg 3) from a pygeoapi ``data`` block or a URL string."""
    if isinstance(data, str):
        return normalise_url(data)
    return URL.create(
        "postgresql+psycopg", username=data.get("user"), password=data.get("password"),
        host=data.get("host"), port=int(data.get("port", 5432)), database=data.get("dbname"),
    ).render_as_string(hide_password=False)


def json_type(column: Column) -> dict[str, Any]:
    """The JSON-schema type (and format) of a view's column, as the queryables show it."""
    t = column.type
    if column.name in JSON_TEXT_COLUMNS and isinstance(t, (T.String, JSON, JSONB)):
        return {"type": JSON_TEXT_COLUMNS[column.name]}
    if column.name in SERVER_PATH_COLUMNS and isinstance(t, T.String):
        return {"type": "string", "format": "uri"}
    if isinstance(t, (JSON, JSONB)):
        return {"type": "object"}
    if isinstance(t, T.Boolean):
        return {"type": "boolean"}
    if isinstance(t, (T.Integer,)):
        return {"type": "integer"}
    if isinstance(t, (T.Float, T.Numeric)):
        return {"type": "number"}
    if isinstance(t, T.DateTime):
        return {"type": "string", "format": "date-time"}
    if isinstance(t, T.Date):
        return {"type": "string", "format": "date"}
    return {"type": "string"}


def load_meta(provider_def: dict, options: CollectionOptions) -> ViewMeta:
    """The cached :class:`ViewMeta` of a provider's view (reflected on first use)."""
    url = connection_url(provider_def["data"])
    schema = "pub"
    data = provider_def["data"]
    if isinstance(data, dict) and data.get("search_path"):
        schema = data["search_path"][0]
    key = (url, schema, provider_def["table"], provider_def.get("geom_field"))
    meta = _META.get(key)
    if meta is not None:
        return meta
    engine = engines.engine(url, engines.Use.API)
    try:
        table = Table(provider_def["table"], MetaData(), schema=schema, autoload_with=engine)
    except NoSuchTableError:
        raise ProviderConnectionError(
            user_msg=f"view {schema}.{provider_def['table']} not found: run `mis db migrate`") from None
    except DBAPIError as exc:
        raise CatalogueUnavailable(f"cannot reach the catalogue: {str(exc.orig).splitlines()[0]}") from None
    id_field = provider_def.get("id_field", "id")
    geom = provider_def.get("geom_field")
    if id_field not in table.c:
        raise ProviderConnectionError(user_msg=f"{schema}.{table.name} has no id column {id_field!r}")
    fields = {c.name: json_type(c) for c in table.c if c.name not in (id_field, geom)}
    hierarchy: dict[str, tuple[str, list[str] | None]] = {}
    for name in list(fields):
        if name.endswith("_uri") and name[:-4] in fields:
            base = name[:-4]
            hierarchy[base + BROADER_SUFFIX] = (name, FIELD_SCHEMES.get(base))
    if "uri" in fields and "prefLabel" in fields:
        hierarchy[NARROWER_OF] = ("uri", None)
    concept_ids = {name: f"{name}_id" for name in fields
                   if f"{name}_id" in fields and f"{name}_uri" in fields and fields[f"{name}_id"]["type"] == "integer"}
    exact = True
    if options.count_table:
        try:
            with engine.connect() as conn:
                n = conn.execute(text(partitions.ESTIMATED_ROWS), {"t": f"public.{options.count_table}"}).scalar()
        except DBAPIError as exc:
            raise db_error(exc) from exc
        exact = n is None or n < settings().exact_count_below
    by_run = options.partitioned_by
    if by_run is not None and (by_run != partitions.KEY or by_run not in table.c):
        raise ProviderConnectionError(user_msg=f"{schema}.{table.name}: partitioned_by must name its run "
                                               f"column {partitions.KEY!r} (one partition per run)")
    meta = ViewMeta(engine, table, fields, hierarchy, exact, url, concept_ids, by_run=by_run)
    with _LOCK:
        return _META.setdefault(key, meta)


def clear() -> None:
    """Forget every view's metadata (the engines it names are being disposed)."""
    with _LOCK:
        _META.clear()
