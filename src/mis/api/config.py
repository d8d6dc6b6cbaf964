"""The runtime pygeoapi configuration: the template (``pygeoapi-config.yml``) filled at start.

:func:`build_config` reads the template and fills in what only the running server knows:
its URL, the catalogue connection, the extents and CRS lists computed from the data, and
a local ``ogc_schemas_location`` (so nothing is fetched from the internet). The OpenAPI
document is then generated from that configuration by pygeoapi itself
(:func:`pygeoapi.openapi.get_oas`) and made self-contained by :func:`offline_openapi`.
"""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import text
from sqlalchemy.engine import make_url

from mis import resources
from mis.api.options import validate_collections
from mis.catalogue import engines
from mis.settings import settings

#: Placeholder of the provider ``data`` block in the template.
CATALOGUE = "catalogue"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/{}"
#: Local folder served at /schemas (pygeoapi's ogc_schemas_location; kept empty on purpose:
#: the OpenAPI document is made self-contained instead, see :func:`offline_openapi`).
OGC_SCHEMAS_DIR = Path(__file__).resolve().parent / "ogc-schemas"
#: pygeoapi templates MIS overrides (looked up before pygeoapi's own, which serve the rest):
#: the item and items pages, whose JSON embedded in a <script> pygeoapi does not escape.
TEMPLATES_DIR = Path(__file__).resolve().parent / "pygeoapi-templates"


def template_path() -> Path:
    """``MIS_PYGEOAPI_CONFIG``, else the project's ``pygeoapi-config.yml`` (:mod:`mis.resources`)."""
    path = settings().pygeoapi_config or resources.path("pygeoapi-config.yml")
    if not path.is_file():
        raise FileNotFoundError(f"pygeoapi configuration template not found at {path}; "
                                "set MIS_PYGEOAPI_CONFIG to the project's pygeoapi-config.yml")
    return path


def load_template(path: Path | None = None) -> dict[str, Any]:
    with open(path or template_path(), encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def connection(url: str) -> dict[str, Any]:
    """pygeoapi's ``data`` block for a SQLAlchemy URL; the views' schema first."""
    u = make_url(url)
    return {"host": u.host or "127.0.0.1", "port": int(u.port or 5432), "dbname": u.database,
            "user": u.username, "password": u.password or "", "search_path": ["pub", "public"]}


def _extent(conn, table: str, geom: str | None, scheme: str | None) -> list[float] | None:
    """Bounding box of a view's geometries (2D; None when it has none)."""
    if not geom:
        return None
    row = conn.execute(text(
        f'SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM '
        f'(SELECT ST_Extent("{geom}") AS e FROM pub."{table}") s')).first()
    if row is None or row[0] is None:
        return None
    return _padded([round(v, 6) for v in row])


def _padded(box: list[float]) -> list[float]:
    """A box with no zero width or height (one point: 1e-4 degrees around it)."""
    if box[0] == box[2]:
        box[0], box[2] = box[0] - 1e-4, box[2] + 1e-4
    if box[1] == box[3]:
        box[1], box[3] = box[1] - 1e-4, box[3] + 1e-4
    return box


#: Base table and geometry column whose extent stands for each big view (no full scan).
ESTIMATED: dict[str, tuple[str, str] | None] = {"roxels": ("roxel", "position"), "grains": None}
#: Grains are located at their plug: their extent is that of the plugs holding grains
#: (a run's grains are one partition, so EXISTS reads an index entry per run).
GRAIN_PLUGS_EXTENT = text(
    "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(p.position) AS e "
    "FROM public.plug p WHERE EXISTS (SELECT 1 FROM public.image i JOIN public.segmentation_run r "
    "ON r.image_id = i.id WHERE i.plug_id = p.id AND EXISTS (SELECT 1 FROM public.grain g "
    "WHERE g.run_id = r.id))) s")
#: The temporal reference system of every temporal extent (the Gregorian calendar, UTC).
GREGORIAN = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"


def compute_extents(url: str, config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per collection: spatial bbox (from the data; the deposits' box for empty ones) and,
    for collections with a time field, the temporal interval."""
    engine = engines.engine(url, engines.Use.API)
    out: dict[str, dict[str, Any]] = {}
    with engine.connect() as conn:
        deposits = None
        for cid, res in config["resources"].items():
            prov = res["providers"][0]
            table, geom = prov["table"], prov.get("geom_field")
            box = None
            estimated = ESTIMATED.get(table)
            if estimated:
                base, column = estimated
                # per run partition (PostGIS has no statistics of the partitioned parent)
                row = conn.execute(text(
                    "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM ("
                    "  SELECT ST_Extent(ST_EstimatedExtent('public', c.relname, :c)::geometry) AS e"
                    "  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                    "  WHERE i.inhparent = to_regclass(:t)) s"), {"t": f"public.{base}", "c": column}).first()
                if row is not None and row[0] is not None:
                    box = [round(v, 6) for v in row]
            if box is None and table == "grains":
                row = conn.execute(GRAIN_PLUGS_EXTENT).first()
                if row is not None and row[0] is not None:
                    box = _padded([round(v, 6) for v in row])
            if box is None and table not in ESTIMATED:
                box = _extent(conn, table, geom, None)
            if table == "deposits":
                deposits = box
            temporal = None
            time_field = prov.get("time_field")
            if time_field:
                row = conn.execute(text(f'SELECT min("{time_field}"), max("{time_field}") FROM pub."{table}"')).first()
                if row and row[0] is not None:
                    utc = dt.UTC
                    temporal = [dt.datetime.combine(row[0], dt.time(0, 0, 0), utc),
                                dt.datetime.combine(row[1], dt.time(23, 59, 59), utc)]
            out[cid] = {"bbox": box, "temporal": temporal}
        for ext in out.values():
            if ext["bbox"] is None:
                ext["bbox"] = deposits or [-180.0, -90.0, 180.0, 90.0]
    return out


def crs_in_use(url: str) -> list[str]:
    """CRS84, EPSG:4326 and the projected CRSs of the catalogue (UTM zones of the holes)."""
    with engines.engine(url, engines.Use.API).connect() as conn:
        codes = sorted({r[0] for r in conn.execute(text(
            "SELECT local_epsg FROM drillcore WHERE local_epsg IS NOT NULL UNION "
            "SELECT collar_epsg FROM drillcore WHERE collar_epsg <> 4326"))})
    return [CRS84, EPSG.format(4326)] + [EPSG.format(c) for c in codes]


def build_config(url: str, *, host: str = "127.0.0.1", port: int = 5000, public_url: str | None = None,
                 template: dict[str, Any] | None = None) -> dict[str, Any]:
    """The template with connection, server URL, extents and CRS lists filled in."""
    config = copy.deepcopy(template if template is not None else load_template())
    validate_collections(config)
    base = (public_url or f"http://{host}:{port}").rstrip("/")
    server = config["server"]
    server["bind"] = {"host": host, "port": port}
    server["url"] = base
    # pygeoapi's HTML maps: MIS's plain offline tiles, never a tile server on the internet
    server["map"] = {"url": base + "/mis/tiles/{z}/{x}/{y}.png", "attribution": "MIS (offline base map)"}
    OGC_SCHEMAS_DIR.mkdir(parents=True, exist_ok=True)
    server["ogc_schemas_location"] = str(OGC_SCHEMAS_DIR)
    server["templates"] = {"path": str(TEMPLATES_DIR)}
    data = connection(url)
    extents = compute_extents_safe(url, config)
    crs = crs_in_use(url)
    for cid, res in config["resources"].items():
        res = config["resources"][cid] = copy.deepcopy(res)
        for link in res.get("links", []):
            if link["href"].startswith("/"):
                link["href"] = base + link["href"]
        ext = extents.get(cid, {})
        res["extents"] = {"spatial": {"bbox": ext.get("bbox") or [-180, -90, 180, 90], "crs": CRS84}}
        if ext.get("temporal"):
            res["extents"]["temporal"] = {"begin": ext["temporal"][0], "end": ext["temporal"][1],
                                          "trs": GREGORIAN}
        for prov in res["providers"]:
            if prov.get("data") == CATALOGUE:
                prov["data"] = dict(data)
            prov.setdefault("mis", {})
            prov["mis"] = {**prov["mis"], "base_url": base, "collection": cid}
            if prov.get("geom_field"):
                prov["crs"] = list(crs)
                prov["storage_crs"] = CRS84
    return config


def compute_extents_safe(url: str, config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """:func:`compute_extents`, but a missing view is reported clearly."""
    from sqlalchemy.exc import ProgrammingError

    try:
        return compute_extents(url, config)
    except ProgrammingError as exc:
        raise RuntimeError(f"the publication views are missing or out of date ({str(exc.orig).splitlines()[0]}); "
                           "run `mis db migrate`") from None


# --------------------------------------------------------------------------- OpenAPI
#: Stand-ins for the OGC components pygeoapi's document refers to by URL.
_RESPONSES = {
    "LandingPage": "The landing page: links to the API definition, conformance and collections.",
    "ConformanceDeclaration": "The conformance classes this server implements.",
    "Collections": "The feature collections of this server.",
    "Collection": "Metadata of one collection: extent, CRSs, links.",
    "Features": "A page of features (GeoJSON FeatureCollection) with a next link while more remain.",
    "Feature": "One feature (GeoJSON Feature).",
    "InvalidParameter": "A query parameter has an invalid value (the body says which).",
    "NotFound": "The requested resource does not exist.",
    "ServerError": "A server error occurred.",
    "Queryables": "The properties of the collection that filters can use.",
}
_EXCEPTION = {"type": "object", "required": ["code"],
              "properties": {"code": {"type": "string"}, "description": {"type": "string"}}}


def offline_openapi(doc: dict[str, Any]) -> dict[str, Any]:
    """pygeoapi's OpenAPI document with every reference to an external schema file
    replaced by a local component, so that it can be read (and validated against) offline."""
    responses: dict[str, Any] = {}
    schemas: dict[str, Any] = {
        "exception": _EXCEPTION,
        "link": {"type": "object", "required": ["href"],
                 "properties": {"href": {"type": "string"}, "rel": {"type": "string"},
                                "type": {"type": "string"}, "title": {"type": "string"}}},
    }
    parameters: dict[str, Any] = {}

    def local(ref: str) -> str:
        frag = ref.split("#", 1)[1] if "#" in ref else ""
        name = frag.rstrip("/").split("/")[-1] if frag else ref.rstrip("/").split("/")[-1].split(".")[0]
        if "/responses/" in ref or frag.startswith("/components/responses"):
            responses.setdefault(name, {
                "description": _RESPONSES.get(name, name),
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/exception"}}}
                if name in ("InvalidParameter", "NotFound", "ServerError") else
                {"application/json": {"schema": {"type": "object"}}}})
            return f"#/components/responses/{name}"
        if "/parameters/" in ref or frag.startswith("/components/parameters"):
            parameters.setdefault(name, _parameter(name))
            return f"#/components/parameters/{name}"
        schemas.setdefault(name, {"type": "object"})
        return f"#/components/schemas/{name}"

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                return {**{k: walk(v) for k, v in node.items() if k != "$ref"}, "$ref": local(ref)}
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    out = walk(doc)
    components = out.setdefault("components", {})
    for kind, made in (("responses", responses), ("schemas", schemas), ("parameters", parameters)):
        section = components.setdefault(kind, {})
        for name, value in made.items():
            section.setdefault(name, value)
    return share_limit(out)


def share_limit(doc: dict[str, Any]) -> dict[str, Any]:
    """The items paths' ``limit`` parameter as one shared ``#/components/parameters/limit``.

    pygeoapi writes ``limit`` inline in every ``/collections/{id}/items`` path; QGIS reads a
    server's page sizes (``schema.default``, ``schema.maximum``) from the shared component
    only, and without it pages by 100 whatever the server allows. The component takes the
    first inline one's schema (the server's ``limits``: default_items, max_items)."""
    shared = None
    for path, item in (doc.get("paths") or {}).items():
        if not path.endswith("/items"):
            continue
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            params = operation.get("parameters") or []
            for k, param in enumerate(params):
                if isinstance(param, dict) and param.get("name") == "limit" and param.get("in") == "query":
                    shared = shared or param
                    params[k] = {"$ref": "#/components/parameters/limit"}
    if shared is not None:
        doc.setdefault("components", {}).setdefault("parameters", {})["limit"] = shared
    return doc


def _parameter(name: str) -> dict[str, Any]:
    """The OGC API - Features parameters pygeoapi refers to, written out."""
    known = {
        "bbox": {"name": "bbox", "in": "query", "required": False, "style": "form", "explode": False,
                 "description": "minx,miny,maxx,maxy (or 6 numbers with z) in bbox-crs (default CRS84)",
                 "schema": {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}}},
        "limit": {"name": "limit", "in": "query", "required": False, "style": "form", "explode": False,
                  "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100}},
        "datetime": {"name": "datetime", "in": "query", "required": False, "style": "form", "explode": False,
                     "schema": {"type": "string"}},
        "featureId": {"name": "featureId", "in": "path", "required": True, "schema": {"type": "string"}},
        "collectionId": {"name": "collectionId", "in": "path", "required": True, "schema": {"type": "string"}},
        "crs": {"name": "crs", "in": "query", "required": False, "schema": {"type": "string", "format": "uri"}},
        "bbox-crs": {"name": "bbox-crs", "in": "query", "required": False,
                     "schema": {"type": "string", "format": "uri"}},
    }
    return known.get(name, {"name": name, "in": "query", "required": False, "schema": {"type": "string"}})
