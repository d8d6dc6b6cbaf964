"""MIS's HTML pages: a map of deposits and drill cores, a drill core page, a plug page.

::

    from mis.api.pages import page_routes
    routes = [*page_routes(url), ...]          # create_app adds them before pygeoapi's

Pages (HTML, jinja2 templates in ``mis/api/templates``; scripts and styles in
``mis/api/static/mis``; Leaflet vendored in ``mis/api/static/leaflet``; no CDN, so every
page works offline)::

    GET /mis, /mis/                         303 -> /mis/map
    GET /mis/map                            deposits (footprints), collars and traces on a
                                            Leaflet map; click a hole -> its drill core page
    GET /mis/drillcore/{id}                 collar, length, plan and section of the trace,
                                            plugs with lithology, downhole log of class
                                            fractions (roxels) and modal compositions (rocks)
    GET /mis/plug/{id}                      the plug's images in OpenSeadragon (IIIF) with
                                            the grains of each image overlaid (SVG), modal
                                            composition and grain statistics

JSON the pages read (also useful on their own)::

    GET /mis/api/drillcore/{id}.json        what the drill core page shows (trace in the
                                            local metric CRS the hole was desurveyed in)
    GET /mis/api/drillcore/{id}/log.json?from_m=&to_m=&bins=
                                            roxel class fractions averaged in depth bins
    GET /mis/api/plug/{id}.json             the plug, its images (IIIF info.json URLs),
                                            rocks and grain statistics
    GET /mis/api/image/{id}/grains.json?limit=
                                            grain outlines of the image's latest complete
                                            segmentation run as SVG path data in image
                                            *pixels* (µm / pixel size, pixel-corner origin),
                                            largest first (default 4000, at most 20000)

The map reads the OGC API itself (``/collections/{deposits,drillcores,drillcore-traces}
/items?f=json``, following ``next`` links). Its base layer is a plain background with a
graticule, drawn in the browser; an OpenStreetMap layer can be switched on in the layer
control and simply stays blank where no tile server can be reached.

Statuses: 404 for an unknown or malformed id (an HTML page, or JSON on ``/mis/api``),
503 when the catalogue database cannot be reached; never a 500 for anything a client sends.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from mis.catalogue import engines
from mis.catalogue.ids import ID_DIGITS, positive_id
from mis.catalogue.locate import database_url, normalise_url
from mis.catalogue.queries import HOLE_WITH_DEPOSIT
from mis.grains.cleaning import describe_rules

__all__ = ["page_routes", "PageData", "TEMPLATES_DIR", "STATIC_DIR"]

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
#: Grain outlines sent per image by default, and at most.
GRAINS_DEFAULT, GRAINS_MAX = 4000, 20000
#: Depth bins of the downhole log by default, and at most.
BINS_DEFAULT, BINS_MAX = 200, 2000


class PageError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _positive_id(text: str, what: str) -> int:
    found = positive_id(text)
    if found is None:
        raise PageError(404, f"no {what} {text!r} ({what} ids are positive integers)")
    return found


def _plain(value: Any) -> Any:
    """Database values -> JSON values."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _row(mapping: Any) -> dict[str, Any]:
    return {k: _plain(v) for k, v in dict(mapping).items()}


def _local_xy(lon: float, lat: float, lon0: float, lat0: float) -> tuple[float, float]:
    """Metres east/north of (lon0, lat0): an equirectangular approximation, used only for
    holes that were never desurveyed into a local metric CRS."""
    k = math.pi / 180 * 6371008.8
    return (lon - lon0) * k * math.cos(math.radians(lat0)), (lat - lat0) * k


class PageData:
    """The catalogue queries behind the pages (blocking; run them in a worker thread)."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url

    def engine(self) -> Engine:
        """The catalogue's engine (the API's pool: statements time out as the provider's do)."""
        return engines.engine(normalise_url(self.url or database_url()), engines.Use.API)

    # ------------------------------------------------------------------ drill core
    def drillcore(self, drillcore_id: int) -> dict[str, Any]:
        from sqlalchemy import text

        with self.engine().connect() as conn:
            found = conn.execute(text(f"""
                SELECT h.id, h.name, h.deposit_id, d.name AS deposit, h.purpose, h.length_m,
                       h.elevation_m, h.elevation_reference, h.dip AS dip_deg, h.azimuth AS azimuth_deg,
                       h.azimuth_reference, dm.pref_label AS drilling_method, h.operator,
                       h.core_custodian, h.start_date, h.end_date, h.desurvey_method,
                       h.local_epsg, h.collar_epsg, h.collar_x, h.collar_y,
                       ST_X(h.collar) AS lon, ST_Y(h.collar) AS lat,
                       (SELECT count(*) FROM survey_station s WHERE s.drillcore_id = h.id) AS survey_count
                FROM {HOLE_WITH_DEPOSIT}
                LEFT JOIN concept dm ON dm.uri = h.drilling_method_uri
                WHERE h.id = :id"""), {"id": drillcore_id}).mappings().first()
            if found is None:
                raise PageError(404, f"no drill core {drillcore_id} in the catalogue")
            hole = _row(found)
            epsg = hole["local_epsg"]
            if epsg:
                geo = conn.execute(text("""
                    SELECT ST_AsGeoJSON(ST_Transform(trace, :epsg), 3) AS trace,
                           ST_AsGeoJSON(ST_Transform(collar, :epsg), 3) AS collar
                    FROM drillcore WHERE id = :id"""), {"id": drillcore_id, "epsg": epsg}).mappings().one()
            else:
                geo = conn.execute(text("""
                    SELECT ST_AsGeoJSON(trace, 8) AS trace, ST_AsGeoJSON(collar, 8) AS collar
                    FROM drillcore WHERE id = :id"""), {"id": drillcore_id}).mappings().one()
            pos = "ST_Transform(p.position, :epsg)" if epsg else "p.position"
            plugs = [_row(r) for r in conn.execute(text(f"""
                SELECT v.id, v.name, v.from_m, v.to_m, v.depth_m, v."sampleType" AS sample_type,
                       v.lithology, v.lithology_uri, v."imageCount" AS image_count,
                       ST_X({pos}) AS x, ST_Y({pos}) AS y, ST_Z(p.position) AS z
                FROM pub.plugs v JOIN plug p ON p.id = v.id
                WHERE v.drillcore_id = :id ORDER BY v.from_m, v.id"""),
                {"id": drillcore_id, "epsg": epsg}).mappings()]
            rocks = [_row(r) for r in conn.execute(text("""
                SELECT r.id, r.plug_id, r.plug, r.run_id, r.from_m, r.to_m, r.depth_m, r.lithology,
                       r."lithologySource" AS lithology_source, r.composition
                FROM pub.rocks r WHERE r.drillcore_id = :id ORDER BY r.depth_m, r.id"""),
                {"id": drillcore_id}).mappings()]
            roxels = conn.execute(text("""
                SELECT count(*) AS n, min(x.depth_m) AS top, max(x.depth_m) AS bottom
                FROM roxel x JOIN segmentation_run sr ON sr.id = x.run_id
                JOIN image i ON i.id = sr.image_id JOIN plug p ON p.id = i.plug_id
                WHERE p.drillcore_id = :id AND x.depth_m IS NOT NULL"""), {"id": drillcore_id}).mappings().one()

        lon0, lat0 = hole["lon"], hole["lat"]

        def local(coords: list[float]) -> list[float]:
            if epsg:
                return [round(c, 3) for c in coords]
            x, y = _local_xy(coords[0], coords[1], lon0, lat0)
            return [round(x, 3), round(y, 3), round(coords[2], 3) if len(coords) > 2 else 0.0]

        trace = json.loads(geo["trace"])["coordinates"] if geo["trace"] else []
        collar = local(json.loads(geo["collar"])["coordinates"])
        points: list[list[float]] = []
        depth = 0.0
        for i, c in enumerate(local(c) for c in trace):
            if i:
                depth += math.dist(c[:3], points[-1][:3])
            points.append([*c[:3], round(depth, 3)])
        for p in plugs:
            if p["x"] is not None and not epsg:
                p["x"], p["y"] = (round(v, 3) for v in _local_xy(p["x"], p["y"], lon0, lat0))
        return {
            "drillcore": hole,
            "trace": {"crs": f"EPSG:{epsg}" if epsg else "local (metres east/north of the collar)",
                      "collar": collar, "points": points},
            "plugs": plugs,
            "rocks": rocks,
            "roxels": {"count": int(roxels["n"]), "top_m": _plain(roxels["top"]),
                       "bottom_m": _plain(roxels["bottom"])},
        }

    def drillcore_log(self, drillcore_id: int, from_m: float | None, to_m: float | None,
                      bins: int) -> dict[str, Any]:
        """Roxel class fractions of ``bins`` depth bins between ``from_m`` and ``to_m``
        (default: the whole hole). Only each image's latest complete run counts.

        A bin's fraction of a class is its share of the bin's pixels: every roxel of the bin
        counts, weighted by its pixels (a roxel at an image's edge has fewer), and a class
        a roxel's run does not have is 0 there, so that a bin's fractions sum to 1 where
        images with different class lists meet."""
        from sqlalchemy import text

        with self.engine().connect() as conn:
            length = conn.execute(text("SELECT length_m FROM drillcore WHERE id = :id"),
                                  {"id": drillcore_id}).scalar()
            if length is None:
                raise PageError(404, f"no drill core {drillcore_id} in the catalogue")
            top = 0.0 if from_m is None else from_m
            bottom = float(length) if to_m is None else to_m
            if not bottom > top:
                raise PageError(400, f"to_m ({bottom:g}) must be greater than from_m ({top:g})")
            width = (bottom - top) / bins
            rows = conn.execute(text("""
                WITH runs AS (
                    SELECT DISTINCT ON (sr.image_id) sr.id
                    FROM segmentation_run sr JOIN image i ON i.id = sr.image_id
                    JOIN plug p ON p.id = i.plug_id
                    WHERE p.drillcore_id = :id AND sr.status = 'complete'
                    ORDER BY sr.image_id, sr.finished_at DESC NULLS LAST, sr.id DESC),
                names AS (
                    SELECT rc.run_id, rc.class_index, pub.symbol(c.notation, c.pref_label) AS name
                    FROM run_class rc JOIN concept c ON c.uri = rc.concept_uri
                    WHERE rc.run_id IN (SELECT id FROM runs)),
                cells AS (
                    SELECT x.run_id, x.composition,
                           (least(sr.roxel_size, i.shape[2] - x.row * sr.roxel_size)
                            * least(sr.roxel_size, i.shape[3] - x.col * sr.roxel_size))::float8 AS pixels,
                           least(floor((x.depth_m - :top) / :width)::int, :last) AS bin
                    FROM roxel x JOIN segmentation_run sr ON sr.id = x.run_id JOIN image i ON i.id = sr.image_id
                    WHERE x.run_id IN (SELECT id FROM runs) AND x.depth_m BETWEEN :top AND :bottom),
                totals AS (SELECT bin, sum(pixels) AS pixels, count(*) AS roxels FROM cells GROUP BY bin)
                SELECT cells.bin, n.name, sum(u.f * cells.pixels) / t.pixels AS fraction, t.roxels
                FROM cells
                JOIN totals t ON t.bin = cells.bin
                CROSS JOIN LATERAL unnest(cells.composition) WITH ORDINALITY AS u(f, k)
                JOIN names n ON n.run_id = cells.run_id AND n.class_index = u.k - 1
                GROUP BY cells.bin, n.name, t.pixels, t.roxels
                ORDER BY cells.bin, n.name"""),
                {"id": drillcore_id, "top": top, "bottom": bottom, "width": width,
                 "last": bins - 1}).mappings().all()
        by_bin: dict[int, dict[str, Any]] = {}
        classes: dict[str, float] = {}
        for r in rows:
            b = by_bin.setdefault(int(r["bin"]), {"roxels": 0, "fractions": {}})
            b["fractions"][r["name"]] = round(float(r["fraction"]), 4)
            b["roxels"] = int(r["roxels"])
            classes[r["name"]] = classes.get(r["name"], 0.0) + float(r["fraction"]) * int(r["roxels"])
        out = [{"top_m": round(top + k * width, 4), "bottom_m": round(top + (k + 1) * width, 4), **v}
               for k, v in sorted(by_bin.items())]
        return {"drillcore_id": drillcore_id, "from_m": top, "to_m": bottom, "bin_m": width,
                "classes": sorted(classes, key=lambda c: (-classes[c], c)), "bins": out}

    # ------------------------------------------------------------------ plug
    def plug(self, plug_id: int) -> dict[str, Any]:
        from sqlalchemy import text

        with self.engine().connect() as conn:
            plug = conn.execute(text("""
                SELECT v.id, v.name, v.drillcore, v.drillcore_id, v.deposit, v.deposit_id, v.from_m,
                       v.to_m, v.depth_m, v."sampleType" AS sample_type, v.lithology, v.lithology_uri,
                       v.preparation, v.description,
                       ST_X(v.geom) AS lon, ST_Y(v.geom) AS lat, ST_Z(v.geom) AS elevation_m
                FROM pub.plugs v WHERE v.id = :id"""), {"id": plug_id}).mappings().first()
            if plug is None:
                raise PageError(404, f"no plug {plug_id} in the catalogue")
            images = [_row(r) for r in conn.execute(text("""
                SELECT i.id, i.name, i.shape[2] AS height, i.shape[3] AS width, i.shape[1] AS bands,
                       i.band_names, i.dtype, i.pixel_size_um, coalesce(c.pref_label, i.modality_uri) AS modality,
                       i.depth_axis, i.depth_top_m, i.depth_bottom_m,
                       (SELECT sr.id FROM segmentation_run sr WHERE sr.image_id = i.id AND sr.status = 'complete'
                        ORDER BY sr.finished_at DESC NULLS LAST, sr.id DESC LIMIT 1) AS run_id
                FROM image i LEFT JOIN concept c ON c.uri = i.modality_uri
                WHERE i.plug_id = :id ORDER BY i.id"""), {"id": plug_id}).mappings()]
            for im in images:
                im["grain_count"] = 0 if im["run_id"] is None else conn.execute(
                    text("SELECT count(*) FROM grain WHERE run_id = :r"), {"r": im["run_id"]}).scalar_one()
            rocks = [_row(r) for r in conn.execute(text("""
                SELECT r.id, r.run_id, sr.image_id, i.name AS image, r.lithology, r.lithology_uri,
                       r."lithologySource" AS lithology_source, r.composition, r."compositionWt" AS composition_wt
                FROM pub.rocks r LEFT JOIN segmentation_run sr ON sr.id = r.run_id
                LEFT JOIN image i ON i.id = sr.image_id
                WHERE r.plug_id = :id ORDER BY r.id"""), {"id": plug_id}).mappings()]
            # grains of the cleaned map (all above the run's cut-off); sizes (the rock's
            # area-weighted D10/D50/D90) over those not touching the image border
            grain_stats = [_row(r) for r in conn.execute(text("""
                SELECT sr.image_id, pub.symbol(c.notation, c.pref_label) AS mineral, c.pref_label AS mineral_name,
                       count(*) AS grains, count(*) FILTER (WHERE NOT g.touches_border) AS sized,
                       (r.grain_size -> c.uri ->> 'd10_um')::float AS d10_um,
                       (r.grain_size -> c.uri ->> 'd50_um')::float AS d50_um,
                       (r.grain_size -> c.uri ->> 'd90_um')::float AS d90_um,
                       sum(g.area_um2) AS area_um2, r.grain_size -> 'rules' AS rules
                FROM grain g JOIN concept c ON c.id = g.mineral_id
                JOIN segmentation_run sr ON sr.id = g.run_id
                LEFT JOIN rock r ON r.run_id = sr.id
                WHERE sr.id IN (SELECT DISTINCT ON (s.image_id) s.id FROM segmentation_run s
                                JOIN image i ON i.id = s.image_id
                                WHERE i.plug_id = :id AND s.status = 'complete'
                                ORDER BY s.image_id, s.finished_at DESC NULLS LAST, s.id DESC)
                GROUP BY sr.image_id, c.uri, c.notation, c.pref_label, r.grain_size
                ORDER BY sr.image_id, count(*) DESC"""), {"id": plug_id}).mappings()]
        rules = {g["image_id"]: describe_rules(g.pop("rules") or {}) for g in grain_stats}
        return {"plug": _row(plug), "images": images, "rocks": rocks, "grain_stats": grain_stats,
                "grain_rules": [{"image_id": k, "text": v} for k, v in rules.items()]}

    def grains(self, image_id: int, limit: int) -> dict[str, Any]:
        """Outlines of the image's grains as SVG path data in image pixels.

        Outlines are stored in image micrometres with pixel *centres* at ``index * p``; in
        IIIF/OpenSeadragon image coordinates a pixel ``i`` spans ``[i, i + 1]``, so
        ``px = µm / p + 0.5``. PostGIS's ST_AsSVG negates y (SVG's y points down), and image
        y already points down: the geometry is scaled by ``-1/p`` in y first.
        """
        from sqlalchemy import text

        with self.engine().connect() as conn:
            image = conn.execute(text("""
                SELECT i.id, i.plug_id, i.pixel_size_um, i.shape[2] AS height, i.shape[3] AS width,
                       (SELECT sr.id FROM segmentation_run sr WHERE sr.image_id = i.id AND sr.status = 'complete'
                        ORDER BY sr.finished_at DESC NULLS LAST, sr.id DESC LIMIT 1) AS run_id
                FROM image i WHERE i.id = :id"""), {"id": image_id}).mappings().first()
            if image is None:
                raise PageError(404, f"no image {image_id} in the catalogue")
            out = {"image_id": image_id, "plug_id": image["plug_id"], "run_id": image["run_id"],
                   "width": image["width"], "height": image["height"],
                   "pixel_size_um": float(image["pixel_size_um"]), "total": 0, "grains": []}
            if image["run_id"] is None:
                return out
            out["total"] = conn.execute(text("SELECT count(*) FROM grain WHERE run_id = :r"),
                                        {"r": image["run_id"]}).scalar_one()
            s = 1.0 / float(image["pixel_size_um"])
            rows = conn.execute(text("""
                SELECT g.id, g.label, pub.symbol(c.notation, c.pref_label) AS mineral, g.area_um2, g.ecd_um,
                       ST_AsSVG(ST_Translate(ST_Scale(g.outline, :s, -:s), 0.5, -0.5), 0, 1) AS d
                FROM grain g JOIN concept c ON c.id = g.mineral_id
                WHERE g.run_id = :r AND g.outline IS NOT NULL
                ORDER BY g.area_um2 DESC, g.id LIMIT :limit"""),
                {"r": image["run_id"], "s": s, "limit": limit}).mappings()
            out["grains"] = [{"id": r["id"], "mineral": r["mineral"], "area_um2": round(float(r["area_um2"]), 2),
                              "ecd_um": round(float(r["ecd_um"]), 2), "d": r["d"]} for r in rows]
        return out


# ---------------------------------------------------------------------- rendering
def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
                             autoescape=jinja2.select_autoescape(["html"]),
                             trim_blocks=True, lstrip_blocks=True)

    def fmt(value: Any, digits: int = 1) -> str:
        if value is None:
            return "–"
        if isinstance(value, (int, float)):
            return f"{value:,.{digits}f}"
        return str(value)

    def pct(value: Any, digits: int = 1) -> str:
        return "–" if value is None else f"{100 * float(value):.{digits}f} %"

    env.filters["fmt"] = fmt
    env.filters["pct"] = pct
    return env


def _database_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(*args: Any) -> Any:
        from sqlalchemy.exc import DBAPIError, OperationalError

        try:
            return fn(*args)
        except OperationalError as exc:
            log.error("catalogue unavailable: %s", exc)
            raise PageError(503, "the catalogue database is unavailable; try again later") from exc
        except DBAPIError as exc:  # e.g. the statement timeout
            log.error("catalogue query failed: %s", exc)
            raise PageError(503, "the catalogue could not answer in time; try a smaller request") from exc

    return wrapped


def _float_param(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise PageError(400, f"{name}: not a number: {raw!r}") from None
    if not math.isfinite(value):
        raise PageError(400, f"{name}: must be a finite number")
    return value


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not ID_DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise PageError(400, f"{name}: give an integer from {low} to {high}, not {raw!r}")
    return int(raw)


def page_routes(url: str | None = None) -> list[BaseRoute]:
    """The HTML pages, their JSON and their static files over the catalogue at ``url``
    (default: ``MIS_DATABASE_URL`` / the embedded database). Needs the IIIF routes
    (:func:`mis.imagery.iiif_routes.iiif_routes`) in the same app for the plug viewer."""
    data = PageData(url)
    env = _environment()

    async def call(fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, _database_errors(fn), *args)

    def links(request: Request) -> dict[str, str]:
        root = request.scope.get("root_path", "").rstrip("/")
        return {
            "root": root + "/",
            "map": str(request.url_for("mis_map").path),
            "leaflet": str(request.url_for("mis_leaflet", path="/").path),
            "static": str(request.url_for("mis_static", path="/").path),
            "osd": str(request.url_for("openseadragon", path="/").path) if _has_route(request, "openseadragon") else "",
        }

    def html_page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        body = env.get_template(template).render(links=links(request), **context)
        return HTMLResponse(body, status_code=status)

    def html_error(request: Request, exc: PageError) -> HTMLResponse:
        return html_page(request, "error.html", status=exc.status, title=f"{exc.status}", message=exc.message)

    def json_error(exc: PageError) -> JSONResponse:
        code = {400: "InvalidParameterValue", 404: "NotFound", 503: "ServiceUnavailable"}.get(exc.status, "Error")
        return JSONResponse({"code": code, "description": exc.message}, status_code=exc.status)

    async def index(request: Request) -> Response:
        return RedirectResponse(str(request.url_for("mis_map")), status_code=303)

    async def map_page(request: Request) -> Response:
        return html_page(request, "map.html", title="Map")

    async def drillcore_page(request: Request) -> Response:
        try:
            hole_id = _positive_id(request.path_params["id"], "drill core")
            info = await call(data.drillcore, hole_id)
        except PageError as exc:
            return html_error(request, exc)
        return html_page(request, "drillcore.html", title=f"Drill core {info['drillcore']['name']}", info=info,
                         log_url=str(request.url_for("mis_drillcore_log", id=str(hole_id)).path))

    async def plug_page(request: Request) -> Response:
        try:
            plug_id = _positive_id(request.path_params["id"], "plug")
            info = await call(data.plug, plug_id)
        except PageError as exc:
            return html_error(request, exc)
        has_iiif = _has_route(request, "iiif_info")
        for im in info["images"]:
            im["info_url"] = str(request.url_for("iiif_info", identifier=str(im["id"])).path) if has_iiif else None
            im["grains_url"] = str(request.url_for("mis_image_grains", id=str(im["id"])).path)
        extra: dict[str, Any] = {}
        if has_iiif:
            extra = {"manifest_url": str(request.url_for("iiif_manifest", plug_id=str(plug_id)).path),
                     "viewer_url": str(request.url_for("plug_viewer", plug_id=str(plug_id)).path)}
        title = f"Plug {info['plug']['drillcore']} / {info['plug']['name']}"
        return html_page(request, "plug.html", title=title, info=info, **extra)

    def json_route(handler):
        """A JSON endpoint: the handler's dict as JSON, a PageError as its JSON error."""
        async def endpoint(request: Request) -> Response:
            try:
                return JSONResponse(await handler(request))
            except PageError as exc:
                return json_error(exc)
        return endpoint

    @json_route
    async def drillcore_json(request: Request):
        return await call(data.drillcore, _positive_id(request.path_params["id"], "drill core"))

    @json_route
    async def drillcore_log(request: Request):
        hole_id = _positive_id(request.path_params["id"], "drill core")
        from_m, to_m = _float_param(request, "from_m"), _float_param(request, "to_m")
        bins = _int_param(request, "bins", BINS_DEFAULT, 1, BINS_MAX)
        return await call(data.drillcore_log, hole_id, from_m, to_m, bins)

    @json_route
    async def plug_json(request: Request):
        return await call(data.plug, _positive_id(request.path_params["id"], "plug"))

    @json_route
    async def image_grains(request: Request):
        image_id = _positive_id(request.path_params["id"], "image")
        limit = _int_param(request, "limit", GRAINS_DEFAULT, 0, GRAINS_MAX)
        return await call(data.grains, image_id, limit)

    get = ["GET", "HEAD"]
    return [
        Route("/mis", index, methods=get, name="mis_index"),
        Route("/mis/", index, methods=get),
        Route("/mis/map", map_page, methods=get, name="mis_map"),
        Route("/mis/drillcore/{id}", drillcore_page, methods=get, name="mis_drillcore"),
        Route("/mis/plug/{id}", plug_page, methods=get, name="mis_plug"),
        Route("/mis/api/drillcore/{id}.json", drillcore_json, methods=get, name="mis_drillcore_json"),
        Route("/mis/api/drillcore/{id}/log.json", drillcore_log, methods=get, name="mis_drillcore_log"),
        Route("/mis/api/plug/{id}.json", plug_json, methods=get, name="mis_plug_json"),
        Route("/mis/api/image/{id}/grains.json", image_grains, methods=get, name="mis_image_grains"),
        Mount("/static/leaflet", app=StaticFiles(directory=STATIC_DIR / "leaflet"), name="mis_leaflet"),
        # for pygeoapi's HTML pages (mis.api.responses.OFFLINE_ASSETS)
        Mount("/static/bootstrap", app=StaticFiles(directory=STATIC_DIR / "bootstrap"), name="mis_bootstrap"),
        Mount("/static/leaflet.markercluster", app=StaticFiles(directory=STATIC_DIR / "leaflet.markercluster"),
              name="mis_markercluster"),
        Mount("/static/swagger-ui", app=StaticFiles(directory=STATIC_DIR / "swagger-ui"), name="mis_swagger_ui"),
        Mount("/static/mis", app=StaticFiles(directory=STATIC_DIR / "mis"), name="mis_static"),
    ]


def _has_route(request: Request, name: str) -> bool:
    from starlette.routing import NoMatchFound

    try:
        if name == "openseadragon":
            request.url_for(name, path="/")
        elif name == "iiif_info":
            request.url_for(name, identifier="1")
        else:
            request.url_for(name)
    except NoMatchFound:
        return False
    return True
