"""OGC API - Features Part 4 writes, through the one registration service and the one delete.

A POST/PUT body is a GeoJSON Feature with the collection's own property names (what a
GET returns can be sent back). It becomes a row for :func:`mis.catalogue.register.register`
(the same reading, validation and writes as ``mis register``), so that the API refuses
exactly what the CLI refuses, with the same messages, and writes all or nothing:

=================  ====================  ===============================================
collection         registration table    natural key (must not change through PUT)
=================  ====================  ===============================================
``deposits``       deposits              name
``drillcores``     collars (+ surveys)   deposit + name (the hole id)
``surveys``        surveys               drill core + depth_m
``plugs``          samples               drill core + name (the sample id)
=================  ====================  ===============================================

- For a classification the body may give the label (``lithology``), the URI
  (``lithology_uri``) or both; given both, they must name the same concept (a label
  edited next to a stale URI is a 400, not a silent no-op). Read-only properties (ids of
  parents, counts, ``updated`` ...) are ignored.
- PUT replaces: a property the body leaves out is cleared (or, if required, refused with
  the registration's message), as the whole representation is sent. The bulk route
  (``POST /mis/register``) keeps the CSV semantics: a column not given keeps what is stored.
- ``drillcores``: the geometry is the collar (lon, lat[, elevation]); ``collar_x``,
  ``collar_y`` and ``collar_srs`` give the collar in its own CRS instead (they win
  while they agree with the geometry). A ``surveys`` property (a list of
  ``{depth_m, dip_deg, azimuth_deg}``) replaces the hole's survey set.
- ``surveys``: registration replaces a hole's survey set as a whole, so a POST, PUT or
  DELETE of one station sends the hole's complete new set (the stations are re-numbered:
  a station's id changes when its hole's set is rewritten).
- ``DELETE`` of a deposit, drill core or plug is refused while it has children (409),
  unless ``?cascade=true`` (:func:`mis.catalogue.delete.delete`, one transaction).
- ``?dry_run=true`` validates and reports without writing (a 400 still lists errors).

Errors are :class:`WriteError` (a pygeoapi provider error with the HTTP status): 400 with
every finding of the registration report, 404, 409.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from pygeoapi.provider.base import ProviderGenericError, ProviderItemNotFoundError
from sqlalchemy import text
from sqlalchemy.engine import Engine

from mis.catalogue import queries
from mis.catalogue.ids import bigint
from mis.catalogue.queries import HoleRef

__all__ = ["WriteContext", "WriteError", "create", "remove", "replace"]


class WriteError(ProviderGenericError):
    """A refused write: ``status`` 400 (invalid), 404, 409 (conflict)."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST,
                 code: str = "InvalidParameterValue") -> None:
        super().__init__(message, user_msg=message)
        self.http_status_code = status
        self.ogc_exception_code = code


@dataclass
class WriteContext:
    kind: str  # deposits | collars | surveys | samples
    url: str
    engine: Engine
    params: dict[str, str]
    #: the published view's properties (no id, no geometry)
    columns: list[str] = field(default_factory=list)

    @property
    def dry_run(self) -> bool:
        return str(self.params.get("dry_run", "")).lower() in ("1", "true", "yes")

    @property
    def cascade(self) -> bool:
        return str(self.params.get("cascade", "")).lower() in ("1", "true", "yes")

    @property
    def collection(self) -> str:
        return {"deposits": "deposits", "collars": "drillcores", "surveys": "surveys",
                "samples": "plugs"}[self.kind]


# --------------------------------------------------------------------------- body -> row
#: Published property -> registration column, per kind (names the registration already
#: reads as aliases pass unchanged, so that its messages use the client's names).
RENAME: dict[str, dict[str, str]] = {
    "deposits": {"occurrenceType": "occurrence_type", "depositModel": "deposit_model"},
    "collars": {"name": "hole_id", "boreholeMaterialCustodian": "custodian",
                "azimuthReference": "azimuth_reference", "magneticDeclination_deg": "declination",
                "elevationReference": "elevation_reference", "collar_srs": "epsg"},
    "samples": {"name": "sample_id", "drillcore": "hole_id", "from_m": "from", "to_m": "to",
                "sampleType": "sample_type"},
    "surveys": {"drillcore": "hole_id", "depth_m": "depth"},
}
#: Label/URI pairs: when both are given they must agree; the URI is what is registered.
URI_PAIRS: dict[str, dict[str, str]] = {
    "deposits": {"occurrenceType_uri": "occurrenceType", "depositModel_uri": "depositModel",
                 "commodity_uris": "commodities"},
    "collars": {"drillingMethod_uri": "drillingMethod"},
    "samples": {"sampleType_uri": "sampleType", "lithology_uri": "lithology"},
    "surveys": {},
}
#: Computed or parent-id properties a client may send back; never registered.
READ_ONLY: dict[str, set[str]] = {
    "deposits": {"id", "deposit_id", "drillcoreCount", "updated"},
    "collars": {"id", "deposit_id", "inclinationType", "elevation_srs", "desurveySrs", "desurveyMethod",
                "plugCount", "updated", "collar_x", "collar_y", "collar_srs", "surveys", "drillcore_id"},
    "samples": {"id", "plug_id", "drillcore_id", "deposit_id", "depth_m", "imageCount", "iiifManifest", "updated"},
    "surveys": {"id", "survey_id", "drillcore_id", "deposit_id"},
}


def _feature(item: Any) -> dict[str, Any]:
    if isinstance(item, (bytes, bytearray)):
        item = item.decode("utf-8", errors="replace")
    if isinstance(item, str):
        try:
            item = json.loads(item)
        except json.JSONDecodeError as exc:
            raise WriteError(f"the body is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
        except RecursionError:
            raise WriteError("the body is nested too deeply to be a GeoJSON Feature") from None
    if not isinstance(item, dict):
        raise WriteError("the body must be a GeoJSON Feature (a JSON object)")
    if item.get("type") != "Feature":
        raise WriteError("the body must be a GeoJSON Feature: {\"type\": \"Feature\", \"geometry\": ..., "
                         "\"properties\": {...}}")
    props = item.get("properties")
    if props is None:
        props = {}
    if not isinstance(props, dict):
        raise WriteError("properties must be a JSON object")
    geometry = item.get("geometry")
    if geometry is not None and not isinstance(geometry, dict):
        raise WriteError("geometry must be a GeoJSON geometry object or null")
    return {"properties": props, "geometry": geometry}


def _check_pairs(ctx: WriteContext, props: dict[str, Any]) -> None:
    """A label and a URI given together must name the same concept(s)."""
    pairs = []
    for uri_name, label_name in URI_PAIRS[ctx.kind].items():
        uri, label = props.get(uri_name), props.get(label_name)
        if uri in (None, "", []) or label in (None, "", []):
            continue
        if uri_name == "commodity_uris":  # lists: URIs space-separated, labels comma-separated
            uris = [str(u) for u in uri] if isinstance(uri, list) else str(uri).split()
            labels = [str(x).strip() for x in label] if isinstance(label, list) else \
                [x.strip() for x in str(label).split(",") if x.strip()]
        else:
            uris, labels = [str(uri)], [str(label).strip()]
        if len(uris) != len(labels):
            raise WriteError(f"{label_name} names {len(labels)} concept(s) but {uri_name} {len(uris)}: "
                             "send one of them, or both in agreement")
        pairs += [(label_name, uri_name, u, lab) for u, lab in zip(uris, labels, strict=False)]
    if not pairs:
        return
    with ctx.engine.connect() as conn:  # one look-up for every pair of the body
        names = {row[0]: {n.casefold() for n in (row[1], row[2], *(row[3] or [])) if n}
                 for row in conn.execute(text("SELECT uri, pref_label, notation, alt_labels FROM concept "
                                              "WHERE uri = ANY(:u)"), {"u": [p[2] for p in pairs]})}
    for label_name, uri_name, u, lab in pairs:
        if u in names and lab.casefold() not in names[u]:
            raise WriteError(f"{label_name} {lab!r} and {uri_name} {u} name different concepts: "
                             "send one of them, or both in agreement")


def _check_keys(ctx: WriteContext, props: dict[str, Any]) -> None:
    """Only the collection's own property names: an alias the registration would read
    (``HOLEID``, ``EOH``, ``SAMPLE`` ...) names nothing this collection publishes, and
    would bypass the checks made on the published names (a POST updating a record)."""
    allowed = set(ctx.columns) | READ_ONLY[ctx.kind] | set(URI_PAIRS[ctx.kind])
    unknown = sorted(str(k) for k in props if k not in allowed)
    if unknown:
        raise WriteError(f"unknown properties for {ctx.collection}: {', '.join(map(repr, unknown))} "
                         f"(its properties: {', '.join(sorted(allowed - READ_ONLY[ctx.kind]))})")


def _writable(ctx: WriteContext) -> list[str]:
    """The collection's published properties a body may set (PUT clears those it omits)."""
    return [c for c in ctx.columns if c not in READ_ONLY[ctx.kind]]


def _row(kind: str, props: dict[str, Any]) -> dict[str, Any]:
    """Registration row from published properties (URIs over labels, renames applied)."""
    props = dict(props)
    for uri_name, label in URI_PAIRS[kind].items():
        uri = props.pop(uri_name, None)
        if uri not in (None, ""):
            if uri_name == "commodity_uris" and isinstance(uri, str):
                uri = uri.split()
            props[label] = uri
    if kind == "deposits" and isinstance(props.get("commodities"), str):
        props["commodities"] = [c.strip() for c in props["commodities"].split(",") if c.strip()]
    row: dict[str, Any] = {}
    for key, value in props.items():
        if key in READ_ONLY[kind]:
            continue
        row[RENAME[kind].get(key, key)] = value
    return row


def _collar_row(props: dict[str, Any], geometry: dict | None) -> dict[str, Any]:
    row = _row("collars", props)
    x, y, srs = props.get("collar_x"), props.get("collar_y"), props.get("collar_srs")
    point = None
    if geometry is not None:
        coords = geometry.get("coordinates")
        if geometry.get("type") != "Point" or not isinstance(coords, list) or len(coords) not in (2, 3) \
                or not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in coords):
            raise WriteError("geometry of a drill core must be a Point [lon, lat] or [lon, lat, elevation]")
        point = coords
    use_xy = x is not None and y is not None and srs is not None
    if use_xy and point is not None and not _same_place(x, y, srs, point):
        use_xy = False  # the geometry was moved (e.g. edited on a map): it wins
    if use_xy:
        row.update(collar_x=x, collar_y=y, epsg=srs)
    elif point is not None:
        row.update(lon=point[0], lat=point[1], epsg="EPSG:4326")
        if len(point) == 3 and "elevation_m" not in row and "z" not in row:
            row["elevation_m"] = point[2]
    return row


def _same_place(x: Any, y: Any, srs: Any, point: list[float]) -> bool:
    try:
        from pyproj import Transformer

        from mis.catalogue.register.tables import parse_crs

        epsg = parse_crs(srs)
        lon, lat = (x, y) if epsg == 4326 else Transformer.from_crs(epsg, 4326, always_xy=True).transform(x, y)
        return math.isclose(lon, point[0], abs_tol=1e-6) and math.isclose(lat, point[1], abs_tol=1e-6)
    except Exception:  # noqa: BLE001 - a bad CRS is reported by the registration itself
        return True


def _survey_rows(hole: str, deposit: str, stations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"hole_id": hole, "deposit": deposit, **_row("surveys", s)} for s in stations]


# --------------------------------------------------------------------------- database
def _one(ctx: WriteContext, sql: str, **params: Any):
    with ctx.engine.connect() as conn:
        return conn.execute(text(sql), params).first()


def _hole(ctx: WriteContext, drillcore_id: Any = None, name: Any = None, deposit: Any = None) -> HoleRef | None:
    """A hole by id, or by name (+ deposit; a name alone only where it is unique)."""
    if drillcore_id is not None:
        try:
            ident = int(drillcore_id)
        except (TypeError, ValueError):
            raise WriteError(f"drillcore_id must be an integer; got {drillcore_id!r}") from None
        with ctx.engine.connect() as conn:
            return queries.hole_by_id(conn, ident)
    if name is None:
        return None
    with ctx.engine.connect() as conn:
        holes = queries.holes_named(conn, str(name), None if deposit is None else str(deposit))
    return holes[0] if len(holes) == 1 else None


def _stations(ctx: WriteContext, drillcore_id: int) -> list[dict[str, Any]]:
    with ctx.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, depth_m, dip, azimuth FROM survey_station WHERE drillcore_id = :h "
                                 "ORDER BY depth_m"), {"h": drillcore_id}).all()
    return [{"id": r[0], "depth_m": r[1], "dip_deg": r[2], "azimuth_deg": r[3]} for r in rows]


def _identity(ctx: WriteContext, ident: Any) -> int:
    try:
        return bigint(ident)
    except ValueError:
        raise ProviderItemNotFoundError(user_msg=f"No such item: id={ident}.") from None


def _existing(ctx: WriteContext, ident: int) -> dict[str, Any]:
    """The natural key of record ``ident`` of the context's collection (404 if none)."""
    with ctx.engine.connect() as conn:
        if ctx.kind == "deposits":
            name = conn.execute(text("SELECT name FROM deposit WHERE id = :i"), {"i": ident}).scalar()
            found: dict[str, Any] | None = None if name is None else {"name": name}
        elif ctx.kind == "collars":
            hole = queries.hole_by_id(conn, ident)
            found = None if hole is None else {"name": hole.name, "deposit": hole.deposit}
        elif ctx.kind == "samples":
            plug = queries.plug_ref(conn, ident)
            found = None if plug is None else {"name": plug.name, "drillcore": plug.drillcore,
                                               "deposit": plug.deposit, "drillcore_id": plug.drillcore_id}
        else:
            station = queries.station_ref(conn, ident)
            found = None if station is None else {"depth_m": station.depth_m, "drillcore": station.drillcore,
                                                  "deposit": station.deposit, "drillcore_id": station.drillcore_id}
    if found is None:
        raise ProviderItemNotFoundError(user_msg=f"No such item: id={ident}.")
    return found


def _find(ctx: WriteContext, props: dict[str, Any]) -> int | None:
    """The id of the record a (registered) body names, by natural key."""
    if ctx.kind == "deposits":
        row = _one(ctx, "SELECT id FROM deposit WHERE name = :n", n=str(props.get("name")))
    elif ctx.kind == "collars":
        with ctx.engine.connect() as conn:
            holes = queries.holes_named(conn, str(props.get("name")), str(props.get("deposit")))
        return holes[0].id if holes else None
    elif ctx.kind == "samples":
        row = _one(ctx, "SELECT id FROM plug WHERE drillcore_id = :h AND name = :n",
                   h=props["drillcore_id"], n=str(props.get("name")))
    else:
        row = _one(ctx, "SELECT id FROM survey_station WHERE drillcore_id = :h AND depth_m = :d",
                   h=props["drillcore_id"], d=float(props["depth_m"]))
    return row[0] if row else None


# --------------------------------------------------------------------------- registration
def _register(ctx: WriteContext, inputs: dict[str, list[dict[str, Any]]], method: str,
              create: bool = False) -> Any:
    """Register ``inputs``; 400 with the report's findings. ``create``: the records must
    be new (POST); one that exists is a 409, decided in the registration's own
    transaction, so that a concurrent POST of the same name cannot slip by."""
    from mis.catalogue.errors import DatabaseUnavailable
    from mis.catalogue.register import register

    source = f"{method} /collections/{ctx.collection}/items"
    try:
        report = register([inputs], url=ctx.url, dry_run=ctx.dry_run, source=source, create=create)
    except (ValueError, TypeError) as exc:
        raise WriteError(f"{source}: {exc}") from None
    except DatabaseUnavailable as exc:
        raise WriteError(str(exc), HTTPStatus.SERVICE_UNAVAILABLE, "ServiceUnavailable") from None
    if report.conflict:
        raise WriteError(report.render(), HTTPStatus.CONFLICT, "Conflict")
    if not report.ok:
        raise WriteError(report.render())
    return report


def _with_parent(ctx: WriteContext, props: dict[str, Any]) -> dict[str, Any]:
    """Samples and surveys: name the hole (and its deposit) from drillcore_id or drillcore."""
    props = dict(props)
    hole = _hole(ctx, props.get("drillcore_id"), props.get("drillcore"), props.get("deposit"))
    if hole is None:
        if props.get("drillcore_id") is not None:
            raise WriteError(f"drillcore_id {props['drillcore_id']}: no such drill core")
        if props.get("drillcore") is None:
            raise WriteError("name the drill core: give drillcore_id, or drillcore (the hole id) and deposit")
        # unknown or ambiguous: let the registration say which, with its own message
        return props
    props.update(drillcore_id=hole.id, drillcore=hole.name, deposit=hole.deposit)
    return props


def _inputs(ctx: WriteContext, feature: dict[str, Any]) -> tuple[dict[str, list], dict[str, Any]]:
    """Registration inputs for one body, and the (completed) properties."""
    props = feature["properties"]
    if ctx.kind == "deposits":
        row = _row("deposits", props)
        if feature["geometry"] is not None:
            row["footprint"] = feature["geometry"]
        return {"deposits": [row]}, props
    if ctx.kind == "collars":
        row = _collar_row(props, feature["geometry"])
        inputs: dict[str, list] = {"collars": [row]}
        surveys = props.get("surveys")
        if surveys is not None:
            if not isinstance(surveys, list) or not all(isinstance(s, dict) for s in surveys):
                raise WriteError("surveys must be a list of {depth_m, dip_deg, azimuth_deg} objects")
            inputs["surveys"] = _survey_rows(str(props.get("name")), str(props.get("deposit")), surveys)
        return inputs, props
    props = _with_parent(ctx, props)
    if ctx.kind == "samples":
        row = _row("samples", props)
        return {"samples": [row]}, props
    raise AssertionError(ctx.kind)


def _survey_set(ctx: WriteContext, props: dict[str, Any], *, drop_id: int | None = None,
                add: dict[str, Any] | None = None) -> dict[str, list]:
    """The complete new survey set of a hole, with one station removed and/or added."""
    hole_id = props.get("drillcore_id")
    if hole_id is None:
        raise WriteError("name the drill core: give drillcore_id, or drillcore (the hole id) and deposit")
    stations = [s for s in _stations(ctx, hole_id) if s["id"] != drop_id]
    if add is not None:
        depth = add.get("depth_m")
        if any(isinstance(depth, (int, float)) and math.isclose(s["depth_m"], depth) for s in stations):
            raise WriteError(f"drill core {props['drillcore']} already has a survey station at {depth} m; "
                             "PUT it to change it", HTTPStatus.CONFLICT, "Conflict")
        stations.append({k: add.get(k) for k in ("depth_m", "dip_deg", "azimuth_deg")})
    if not stations:  # the hole's own orientation at the collar stands for an empty set
        hole = _hole(ctx, hole_id)
        if hole is None:
            raise WriteError(f"drillcore_id {hole_id}: no such drill core")
        stations = [{"depth_m": 0.0, "dip_deg": hole.dip, "azimuth_deg": hole.azimuth}]
    for s in stations:
        s.pop("id", None)
    return {"surveys": _survey_rows(props["drillcore"], props["deposit"], stations)}


def create(ctx: WriteContext, item: Any) -> Any:
    """POST: register a new record; returns its id (None in a dry run)."""
    feature = _feature(item)
    _check_keys(ctx, feature["properties"])
    if ctx.kind == "surveys":
        props = _with_parent(ctx, feature["properties"])
        if props.get("drillcore_id") is None:
            raise WriteError(f"unknown drill core {props.get('drillcore')!r}"
                             + (f" in deposit {props['deposit']!r}" if props.get("deposit") else ""))
        _register(ctx, _survey_set(ctx, props, add=props), "POST")
    else:
        _check_pairs(ctx, feature["properties"])
        inputs, props = _inputs(ctx, feature)
        try:
            _register(ctx, inputs, "POST", create=True)
        except WriteError as exc:
            if exc.http_status_code != HTTPStatus.CONFLICT:
                raise
            existing = _find(ctx, props)
            raise WriteError(f"{ctx.collection} item {existing} already has this name; POST creates: PUT "
                             f"/collections/{ctx.collection}/items/{existing} to change it",
                             HTTPStatus.CONFLICT, "Conflict") from None
    if ctx.dry_run:
        return "dry-run"
    created = _find(ctx, props)
    if created is None:  # registered, yet not found by the body's key: never a Location of None
        raise WriteError(f"the new {ctx.collection} item cannot be found by its name", HTTPStatus.INTERNAL_SERVER_ERROR)
    return created


def replace(ctx: WriteContext, identifier: Any, item: Any) -> bool:
    """PUT: replace record ``identifier``; its natural key must stay the same."""
    ident = _identity(ctx, identifier)
    old = _existing(ctx, ident)
    feature = _feature(item)
    _check_keys(ctx, feature["properties"])
    props = dict(feature["properties"])
    keys = ("depth_m",) if ctx.kind == "surveys" else tuple(k for k in ("name", "deposit", "drillcore") if k in old)
    for key in ("name", "deposit", "drillcore"):
        if key in old and key in props and props[key] is not None and str(props[key]) != str(old[key]):
            raise WriteError(f"{key} cannot change through PUT ({old[key]!r} -> {props[key]!r}): "
                             "create the new record and delete the old one")
    for key in keys:
        props.setdefault(key, old[key])
    if "drillcore_id" in old:
        props["drillcore_id"] = old["drillcore_id"]
    if ctx.kind != "surveys":
        _check_pairs(ctx, props)
        for name in _writable(ctx):
            props.setdefault(name, None)
    feature["properties"] = props
    if ctx.kind == "surveys":
        props.update(drillcore=old["drillcore"], deposit=old["deposit"])
        _register(ctx, _survey_set(ctx, props, drop_id=ident, add=props), "PUT")
    else:
        inputs, _props = _inputs(ctx, feature)
        _register(ctx, inputs, "PUT")
    return True


def remove(ctx: WriteContext, identifier: Any) -> bool:
    """DELETE: one record (409 while it has children, unless ``?cascade=true``)."""
    from mis.catalogue.delete import delete
    from mis.catalogue.errors import CatalogueError
    from mis.catalogue.models import Deposit, DrillCore, Plug
    from mis.catalogue.session import transaction

    ident = _identity(ctx, identifier)
    old = _existing(ctx, ident)
    if ctx.kind == "surveys":
        _register(ctx, _survey_set(ctx, {**old}, drop_id=ident), "DELETE")
        return True
    model = {"deposits": Deposit, "collars": DrillCore, "samples": Plug}[ctx.kind]
    if ctx.dry_run:
        return True
    from mis.imagery.catalogue import remove_stores

    try:
        with transaction(ctx.url) as session:
            report = delete(session, model, ident, cascade=ctx.cascade)
    except CatalogueError as exc:
        raise WriteError(str(exc).replace("--cascade", "?cascade=true"), HTTPStatus.CONFLICT, "Conflict") from None
    remove_stores(report.stores)  # committed: the deleted images' pixels go too
    return True
