"""The IIIF service as starlette routes (mounted by ``mis serve`` through
``mis.api.app.create_app(extra_routes=iiif_routes(url))``).

Routes (``base_path`` defaults to ``/iiif``)::

    GET {base}/3/{identifier}                       303 -> .../info.json (base URI redirect)
    GET {base}/3/{identifier}/info.json             Image API 3.0 information document
    GET {base}/3/{identifier}/{region}/{size}/{rotation}/{quality}.{format}
    GET {base}/3/...anything else...                400 with the expected syntax
    GET {base}/presentation/plug/{plug_id}/manifest.json   Presentation 3 manifest
    GET {base}/presentation/plug/{plug_id}/canvas/{image_id}/grains.json
                                                    AnnotationPage: the image's grains (boxes)
    GET {base}/presentation/drillcore/{id}/collection.json  its plugs' manifests, by depth
    GET {base}/presentation/deposit/{id}/collection.json    its drill cores' collections
    GET /viewer/plug/{plug_id}                      HTML page: OpenSeadragon on the plug's images
    GET /viewer/mirador/plug/{plug_id}              HTML page: Mirador on the plug's manifest
    GET /static/mirador/mirador.min.js              vendored Mirador 4 (npm, Apache-2.0, see
                                                    src/mis/api/static/mirador/VENDOR.md)
    GET /static/openseadragon/...                   vendored OpenSeadragon (npm, BSD-3, see
                                                    src/mis/api/static/openseadragon/VENDOR.md)

``identifier`` is the catalogue's ``image.id``, optionally with a band selection
(``12;bands=4,3,2``); ``?bands=`` works on every image route too. Request syntax, level
choice, bands and bit-depth handling: :mod:`mis.imagery.iiif`.

Statuses: 400 malformed request, 404 unknown image/plug (or an image whose store is
gone), 501 unimplemented rotation, 503 catalogue database unreachable; never a 500 for
anything a client sends. Every answer carries ``Access-Control-Allow-Origin: *`` (errors
and static files too); ``OPTIONS`` answers CORS preflights. Image rows are read from the
catalogue with SQLAlchemy Core, at most every ``row_ttl_s`` seconds per image (default 5
s: a burst of tile requests costs one query); opened pyramids (zarr arrays and the
display stretch) are kept in a small LRU keyed by store URI and checksum. Blocking work
(database, zarr, image encoding) runs in starlette's thread pool.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from mis.catalogue import queries
from mis.catalogue.ids import positive_id
from mis.imagery import iiif
from mis.imagery.iiif import IIIFError

#: Image renders at a time per service (see :class:`IIIFService`).
MAX_RENDERS = 4

__all__ = ["iiif_routes", "create_iiif_app", "IIIFService", "STATIC_DIR", "CORS_HEADERS"]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "api" / "static" / "openseadragon"
MIRADOR_DIR = STATIC_DIR.parent / "mirador"
CORS_HEADERS = {"Access-Control-Allow-Origin": "*"}
_PREFLIGHT = {
    **CORS_HEADERS,
    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": "*",
    "Access-Control-Max-Age": "86400",
}
_JSONLD = f'application/ld+json;profile="{iiif.IMAGE_CONTEXT}"'
_JSONLD_P = f'application/ld+json;profile="{iiif.PRESENTATION_CONTEXT}"'
_TILE_CACHE = "public, max-age=3600"
#: Grains per image in its IIIF annotation page (the largest; a viewer draws every one).
GRAIN_ANNOTATIONS = 1000


@dataclass(frozen=True)
class ImageRow:
    id: int
    plug_id: int
    name: str
    store_uri: str
    n_levels: int
    width: int
    height: int
    n_bands: int
    dtype: str
    checksum: str
    band_names: tuple[str, ...]
    pixel_size_um: float
    modality_uri: str


def _catalogue_errors(fn):
    """Run ``fn`` (blocking), turning catalogue connection failures into a 503."""
    from sqlalchemy.exc import OperationalError

    def wrapped(*args: Any) -> Any:
        try:
            return fn(*args)
        except OperationalError as exc:
            log.error("catalogue unavailable: %s", exc)
            raise IIIFError(503, "the catalogue database is unavailable; try again later") from exc

    return wrapped


def _error(exc: IIIFError) -> PlainTextResponse:
    return PlainTextResponse(exc.message + "\n", status_code=exc.status, headers=CORS_HEADERS)


class _CORSStaticFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        resp = await super().get_response(path, scope)
        resp.headers.update(CORS_HEADERS)
        return resp


#: No reuse terms stated (the default of a service made without a configuration).


class IIIFService:
    """Endpoints of the IIIF service over the catalogue at ``url``."""

    def __init__(self, url: str | None = None, *, limits: iiif.Limits = iiif.DEFAULT_LIMITS,
                 row_ttl_s: float = 5.0, max_open: int = 64, max_renders: int = MAX_RENDERS,
                 rights: iiif.Rights = iiif.NO_RIGHTS):
        self.url = url
        #: renders at a time (each holds its output and the source window in memory);
        #: further requests wait their turn rather than all decoding at once
        self._renders = asyncio.Semaphore(max_renders)
        self.limits = limits
        self.rights = rights
        self.row_ttl_s = row_ttl_s
        self.max_open = max_open
        self.formats = iiif.supported_formats()
        self._rows: dict[int, tuple[float, ImageRow]] = {}
        self._pyramids: OrderedDict[tuple[str, str], iiif.Pyramid] = OrderedDict()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ catalogue
    def _engine(self):
        from mis.catalogue.session import get_engine

        return get_engine(self.url)

    def image_row(self, image_id: int) -> ImageRow:
        now = time.monotonic()
        with self._lock:
            hit = self._rows.get(image_id)
        if hit is not None and now - hit[0] < self.row_ttl_s:
            return hit[1]
        from sqlalchemy import select

        from mis.catalogue.models import Image

        t = Image.__table__
        with self._engine().connect() as conn:
            r = conn.execute(select(t).where(t.c.id == image_id)).mappings().first()
        if r is None:
            with self._lock:
                self._rows.pop(image_id, None)
            raise IIIFError(404, f"no image {image_id} in the catalogue")
        row = self._to_row(r)
        with self._lock:
            self._rows[image_id] = (now, row)
        return row

    @staticmethod
    def _to_row(r: Any) -> ImageRow:
        c, h, w = (int(v) for v in r["shape"])
        return ImageRow(
            id=int(r["id"]), plug_id=int(r["plug_id"]), name=r["name"],
            store_uri=r["store_uri"], n_levels=len(r["array_paths"]), width=w, height=h,
            n_bands=c, dtype=r["dtype"], checksum=r["checksum_sha256"],
            band_names=tuple(r["band_names"] or ()), pixel_size_um=float(r["pixel_size_um"]),
            modality_uri=r["modality_uri"],
        )

    def pyramid(self, row: ImageRow) -> iiif.Pyramid:
        key = (row.store_uri, row.checksum)
        with self._lock:
            pyr = self._pyramids.get(key)
            if pyr is not None:
                self._pyramids.move_to_end(key)
                return pyr
        try:
            pyr = iiif.Pyramid.open(row.store_uri, row.n_levels, row.band_names)
        except Exception as exc:  # missing/unreadable store: say so, do not 500
            log.error("image %s: cannot open its store %s: %s", row.id, row.store_uri, exc)
            raise IIIFError(404, f"the pixels of image {row.id} are not available "
                                 "(its image store is missing or unreadable)") from exc
        with self._lock:
            self._pyramids[key] = pyr
            while len(self._pyramids) > self.max_open:
                self._pyramids.popitem(last=False)
        return pyr

    def plug_images(self, plug_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        from sqlalchemy import func, select

        from mis.catalogue import models as m

        p, d, im, c = (m.Plug.__table__, m.DrillCore.__table__, m.Image.__table__,
                       m.Concept.__table__)
        with self._engine().connect() as conn:
            plug = conn.execute(
                select(p.c.id, p.c.name, p.c.from_m, p.c.to_m, d.c.name.label("hole"), d.c.id.label("hole_id"),
                       func.ST_X(p.c.position).label("lon"), func.ST_Y(p.c.position).label("lat"),
                       func.ST_Z(p.c.position).label("z"))
                .join(d, d.c.id == p.c.drillcore_id).where(p.c.id == plug_id)
            ).mappings().first()
            if plug is None:
                raise IIIFError(404, f"no plug {plug_id} in the catalogue")
            images = conn.execute(
                select(im, c.c.pref_label.label("modality_label"))
                .join(c, c.c.uri == im.c.modality_uri, isouter=True)
                .where(im.c.plug_id == plug_id).order_by(im.c.id)
            ).mappings().all()
        return dict(plug), [dict(r) for r in images]

    def grain_boxes(self, plug_id: int, image_id: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """The largest ``limit`` grains of the image's latest complete run with their pixel
        boxes (``pub.grains``' pixelWindow), and how many grains the run has."""
        from sqlalchemy import text

        with self._engine().connect() as conn:
            run = conn.execute(text(
                "SELECT (SELECT sr.id FROM segmentation_run sr WHERE sr.image_id = i.id AND sr.status = 'complete' "
                "ORDER BY sr.finished_at DESC NULLS LAST, sr.id DESC LIMIT 1) FROM image i "
                "WHERE i.id = :image AND i.plug_id = :plug"), {"image": image_id, "plug": plug_id}).first()
            if run is None:
                raise IIIFError(404, f"no image {image_id} of plug {plug_id} in the catalogue")
            if run[0] is None:
                return 0, []
            total = conn.execute(text("SELECT count(*) FROM grain WHERE run_id = :r"), {"r": run[0]}).scalar()
            rows = conn.execute(text(
                'SELECT id, mineral, "mineralName" AS name, area_um2, ecd_um, "pixelWindow" AS window '
                "FROM pub.grains WHERE run_id = :r ORDER BY area_um2 DESC, id LIMIT :n"),
                {"r": run[0], "n": limit}).mappings().all()
        return int(total), [{**r, "window": json.loads(r["window"])} for r in rows]

    def grain_images(self, image_ids: list[int]) -> set[int]:
        """The images among ``image_ids`` whose latest complete run has grains."""
        from sqlalchemy import text

        if not image_ids:
            return set()
        with self._engine().connect() as conn:
            rows = conn.execute(text(
                "SELECT i.id FROM image i CROSS JOIN LATERAL (SELECT sr.id FROM segmentation_run sr "
                "WHERE sr.image_id = i.id AND sr.status = 'complete' ORDER BY sr.finished_at DESC NULLS LAST, "
                "sr.id DESC LIMIT 1) r WHERE i.id = ANY(:ids) AND EXISTS (SELECT 1 FROM grain g "
                "WHERE g.run_id = r.id)"), {"ids": image_ids}).all()
        return {r[0] for r in rows}

    def drillcore_plugs(self, drillcore_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A drill core and its plugs that have images, in depth order, each with its
        first image (the thumbnail)."""
        from sqlalchemy import text

        with self._engine().connect() as conn:
            hole = queries.hole_by_id(conn, drillcore_id)
            if hole is None:
                raise IIIFError(404, f"no drill core {drillcore_id} in the catalogue")
            plugs = conn.execute(text(
                "SELECT p.id, p.name, p.from_m, p.to_m, (SELECT min(i.id) FROM image i WHERE i.plug_id = p.id) "
                "AS image_id FROM plug p WHERE p.drillcore_id = :id AND EXISTS (SELECT 1 FROM image i "
                "WHERE i.plug_id = p.id) ORDER BY p.from_m, p.to_m, p.id"), {"id": drillcore_id}).mappings().all()
        return ({"id": hole.id, "name": hole.name, "deposit_id": hole.deposit_id, "deposit": hole.deposit},
                [dict(r) for r in plugs])

    def deposit_drillcores(self, deposit_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A deposit and its drill cores that have imaged plugs, by name."""
        from sqlalchemy import text

        with self._engine().connect() as conn:
            deposit = conn.execute(text("SELECT id, name FROM deposit WHERE id = :id"),
                                   {"id": deposit_id}).mappings().first()
            if deposit is None:
                raise IIIFError(404, f"no deposit {deposit_id} in the catalogue")
            holes = conn.execute(text(
                "SELECT h.id, h.name FROM drillcore h WHERE h.deposit_id = :id AND EXISTS (SELECT 1 FROM plug p "
                "JOIN image i ON i.plug_id = p.id WHERE p.drillcore_id = h.id) ORDER BY h.name, h.id"),
                {"id": deposit_id}).mappings().all()
        return dict(deposit), [dict(r) for r in holes]

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _bands_text(request: Request, in_identifier: str | None) -> str | None:
        q = request.query_params.get("bands")
        if q is not None and in_identifier is not None and q != in_identifier:
            raise IIIFError(400, f"bands given twice and differently: in the identifier "
                                 f"({in_identifier!r}) and as ?bands={q!r}")
        return q if q is not None else in_identifier

    @staticmethod
    def _record_id(text: str, what: str = "plug") -> int:
        found = positive_id(text)
        if found is None:
            raise IIIFError(404, f"no {what} {text!r} ({what} ids are positive integers)")
        return found

    @staticmethod
    def _root(request: Request) -> str:
        """The server's root URL (the OGC API beside this service)."""
        return str(request.base_url).rstrip("/")

    def _thumbnail(self, request: Request, image_id: int) -> list[dict[str, Any]]:
        sid = str(request.url_for("iiif_info", identifier=str(image_id)))[: -len("/info.json")]
        return [{"id": f"{sid}/full/!200,200/0/default.jpg", "type": "Image", "format": "image/jpeg",
                 "service": [iiif.image_service_ref(sid)]}]

    @staticmethod
    def _presentation(doc: dict[str, Any], request: Request) -> JSONResponse:
        accept = request.headers.get("accept", "")
        media = _JSONLD_P if "application/ld+json" in accept else "application/json"
        return JSONResponse(doc, media_type=media, headers=CORS_HEADERS)

    # ------------------------------------------------------------------ endpoints
    async def options(self, request: Request) -> Response:
        return Response(status_code=204, headers=_PREFLIGHT)

    async def base_redirect(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            return await self.options(request)
        ident = request.path_params["identifier"]
        url = request.url_for("iiif_info", identifier=ident)
        if request.url.query:
            url = url.replace(query=request.url.query)
        return RedirectResponse(str(url), status_code=303, headers=CORS_HEADERS)

    async def info(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            return await self.options(request)
        try:
            ident = request.path_params["identifier"]
            image_id, in_ident = iiif.parse_identifier(ident)
            bands_text = self._bands_text(request, in_ident)
            row = await run_in_threadpool(_catalogue_errors(self.image_row), image_id)
            names = iiif.display_band_names(row.band_names, row.n_bands)
            bands = iiif.parse_bands(bands_text, names)
            service_ident = str(image_id) if not bands_text else f"{image_id};bands={bands_text}"
            service_id = str(request.url_for("iiif_info", identifier=service_ident))
            service_id = service_id[: -len("/info.json")]
            doc = iiif.info_json(
                service_id, row.width, row.height, row.n_levels,
                displayed_bands=len(bands), limits=self.limits, formats=self.formats,
            )
        except IIIFError as exc:
            return _error(exc)
        accept = request.headers.get("accept", "")
        media = _JSONLD if "application/ld+json" in accept else "application/json"
        return JSONResponse(doc, media_type=media, headers={
            **CORS_HEADERS, "Link": f'<{iiif.PROFILE_URI}>;rel="profile"',
            "Cache-Control": "public, max-age=60"})

    def _render(self, image_id: int, bands_text: str | None, params: dict[str, str]
                ) -> iiif.Rendered:
        # syntax first: a malformed request is a 400 even for an unknown image
        iiif.parse_rotation(params["rotation"])
        iiif.parse_quality_format(params["quality_format"], self.formats)
        row = self.image_row(image_id)
        req = iiif.parse_image_request(
            params["region"], params["size"], params["rotation"], params["quality_format"],
            row.width, row.height, self.limits, self.formats,
        )
        pyr = self.pyramid(row)
        bands = iiif.parse_bands(bands_text, pyr.band_names)
        return pyr.render(req, bands)

    async def image(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            return await self.options(request)
        try:
            p = request.path_params
            image_id, in_ident = iiif.parse_identifier(p["identifier"])
            bands_text = self._bands_text(request, in_ident)
            async with self._renders:
                out = await run_in_threadpool(_catalogue_errors(self._render), image_id, bands_text,
                                              dict(p))
        except IIIFError as exc:
            return _error(exc)
        return Response(out.body, media_type=out.media_type, headers={
            **CORS_HEADERS, "Link": f'<{iiif.PROFILE_URI}>;rel="profile"',
            "Cache-Control": _TILE_CACHE})

    async def malformed(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            return await self.options(request)
        return _error(IIIFError(400, f"not a IIIF Image API 3.0 request: {request.url.path!r}; "
                                     "expected .../{identifier}/info.json or .../{identifier}/"
                                     "{region}/{size}/{rotation}/{quality}.{format}"))

    def _canvas_images(self, request: Request, images: list[dict[str, Any]], bands: str | None
                       ) -> list[iiif.CanvasImage]:
        out = []
        for r in images:
            row = self._to_row(r)
            ident = str(row.id) if not bands else f"{row.id};bands={bands}"
            sid = str(request.url_for("iiif_info", identifier=ident))[: -len("/info.json")]
            out.append(iiif.CanvasImage(
                image_id=row.id, name=row.name, width=row.width, height=row.height,
                n_levels=row.n_levels, service_id=sid, pixel_size_um=row.pixel_size_um,
                modality=r.get("modality_label") or row.modality_uri,
                bands=row.band_names,
            ))
        return out

    async def manifest(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            return await self.options(request)
        try:
            plug_id = self._record_id(request.path_params["plug_id"])
            bands = request.query_params.get("bands") or None
            plug, images = await run_in_threadpool(_catalogue_errors(self.plug_images), plug_id)
            if not images:
                raise IIIFError(404, f"plug {plug_id} ({plug['hole']} / {plug['name']}) "
                                     "has no images yet")
            label = f"{plug['hole']} / {plug['name']}"
            manifest_id = str(request.url_for("iiif_manifest", plug_id=str(plug_id)))
            with_grains = await run_in_threadpool(_catalogue_errors(self.grain_images), [r["id"] for r in images])
            annotations = {i: str(request.url_for("iiif_grains", plug_id=str(plug_id), image_id=str(i)))
                           for i in with_grains}
            feature = f"{self._root(request)}/collections/plugs/items/{plug_id}"
            place = None
            if plug["lon"] is not None:
                place = iiif.nav_place(manifest_id, f"{label} at {(plug['from_m'] + plug['to_m']) / 2:g} m along hole",
                                       plug["lon"], plug["lat"], plug["z"])
            doc = iiif.manifest_json(
                manifest_id,
                label,
                self._canvas_images(request, images, bands),
                metadata=[("drill core", str(plug["hole"])), ("plug", str(plug["name"])),
                          ("interval (m along hole)",
                           f"{plug['from_m']:g} - {plug['to_m']:g}")],
                summary=f"Images of plug {label}, {plug['from_m']:g}-{plug['to_m']:g} m "
                        "along hole (MIS)",
                limits=self.limits,
                viewer_url=str(request.url_for("plug_viewer", plug_id=str(plug_id))),
                place=place,
                see_also=[{"id": feature, "type": "Dataset", "format": "application/geo+json",
                           "label": iiif.lang(f"{label}: OGC API - Features record", "en")}],
                part_of=[{"id": str(request.url_for("iiif_drillcore", drillcore_id=str(plug["hole_id"]))),
                          "type": "Collection"}],
                rights=self.rights,
                annotations=annotations,
            )
        except IIIFError as exc:
            return _error(exc)
        return self._presentation(doc, request)

    async def grains_page(self, request: Request) -> Response:
        """The image's grains as a IIIF AnnotationPage of its canvas: one ``commenting``
        annotation per grain (mineral, area, ECD, its OGC API feature), targeting the
        grain's pixel box; the largest :data:`GRAIN_ANNOTATIONS` grains."""
        if request.method == "OPTIONS":
            return await self.options(request)
        try:
            plug_id = self._record_id(request.path_params["plug_id"])
            image_id = self._record_id(request.path_params["image_id"], "image")
            total, grains = await run_in_threadpool(_catalogue_errors(self.grain_boxes), plug_id, image_id,
                                                    GRAIN_ANNOTATIONS)
        except IIIFError as exc:
            return _error(exc)
        manifest_id = str(request.url_for("iiif_manifest", plug_id=str(plug_id)))
        canvas_id = f"{manifest_id.rsplit('/', 1)[0]}/canvas/{image_id}"
        page_id = str(request.url_for("iiif_grains", plug_id=str(plug_id), image_id=str(image_id)))
        root = self._root(request)
        items = []
        for g in grains:
            y, x, h, w = g["window"]
            text = (f"{g['mineral']} ({g['name']}) grain {g['id']}: {g['area_um2']:.1f} µm², "
                    f"ECD {g['ecd_um']:.1f} µm")
            items.append({"id": f"{page_id}#grain-{g['id']}", "type": "Annotation", "motivation": "commenting",
                          "body": {"type": "TextualBody", "value": text, "format": "text/plain", "language": "en"},
                          "target": f"{canvas_id}#xywh={x},{y},{w},{h}",
                          "seeAlso": [{"id": f"{root}/collections/grains/items/{g['id']}", "type": "Dataset",
                                       "format": "application/geo+json"}]})
        doc = {"@context": iiif.PRESENTATION_CONTEXT, "id": page_id, "type": "AnnotationPage",
               "label": iiif.lang(f"{len(items)} largest of {total} grains", "en"), "items": items}
        return self._presentation(doc, request)

    async def drillcore_collection(self, request: Request) -> Response:
        """The manifests of a drill core's plugs, in depth order."""
        if request.method == "OPTIONS":
            return await self.options(request)
        try:
            hole_id = self._record_id(request.path_params["drillcore_id"], "drill core")
            hole, plugs = await run_in_threadpool(_catalogue_errors(self.drillcore_plugs), hole_id)
            items = [{"id": str(request.url_for("iiif_manifest", plug_id=str(p["id"]))), "type": "Manifest",
                      "label": iiif.lang(f"{hole['name']} / {p['name']} ({p['from_m']:g}-{p['to_m']:g} m)"),
                      "thumbnail": self._thumbnail(request, p["image_id"])} for p in plugs]
            doc = iiif.collection_json(
                str(request.url_for("iiif_drillcore", drillcore_id=str(hole_id))), f"Drill core {hole['name']}",
                items, summary=f"Imaged samples of drill core {hole['name']} ({hole['deposit']}), by depth (MIS)",
                rights=self.rights,
                see_also=[{"id": f"{self._root(request)}/collections/drillcores/items/{hole_id}", "type": "Dataset",
                           "format": "application/geo+json"}])
            doc["partOf"] = [{"id": str(request.url_for("iiif_deposit", deposit_id=str(hole["deposit_id"]))),
                              "type": "Collection"}]
        except IIIFError as exc:
            return _error(exc)
        return self._presentation(doc, request)

    async def deposit_collection(self, request: Request) -> Response:
        """The collections of a deposit's drill cores that have imaged plugs."""
        if request.method == "OPTIONS":
            return await self.options(request)
        try:
            deposit_id = self._record_id(request.path_params["deposit_id"], "deposit")
            deposit, holes = await run_in_threadpool(_catalogue_errors(self.deposit_drillcores), deposit_id)
            items = [{"id": str(request.url_for("iiif_drillcore", drillcore_id=str(h["id"]))), "type": "Collection",
                      "label": iiif.lang(f"Drill core {h['name']}")} for h in holes]
            doc = iiif.collection_json(
                str(request.url_for("iiif_deposit", deposit_id=str(deposit_id))), f"Deposit {deposit['name']}",
                items, summary=f"Drill cores of {deposit['name']} with imaged samples (MIS)", rights=self.rights,
                see_also=[{"id": f"{self._root(request)}/collections/deposits/items/{deposit_id}", "type": "Dataset",
                           "format": "application/geo+json"}])
        except IIIFError as exc:
            return _error(exc)
        return self._presentation(doc, request)

    async def viewer(self, request: Request) -> Response:
        try:
            plug_id = self._record_id(request.path_params["plug_id"])
            bands = request.query_params.get("bands") or None
            plug, images = await run_in_threadpool(_catalogue_errors(self.plug_images), plug_id)
        except IIIFError as exc:
            return _error(exc)
        label = f"{plug['hole']} / {plug['name']}"
        canvases = self._canvas_images(request, images, bands)
        sources = [f"{c.service_id}/info.json" for c in canvases]
        names = [c.name for c in canvases]
        osd = str(request.url_for("openseadragon", path="/openseadragon.min.js"))
        prefix = str(request.url_for("openseadragon", path="/images/"))
        manifest = str(request.url_for("iiif_manifest", plug_id=str(plug_id)))
        page = _VIEWER.format(
            title=html.escape(f"MIS plug {label}"),
            heading=html.escape(label),
            interval=html.escape(f"{plug['from_m']:g}-{plug['to_m']:g} m along hole"),
            count=len(sources),
            manifest=html.escape(manifest),
            osd=html.escape(osd),
            config=_script_json({"id": "osd", "prefixUrl": prefix, "tileSources": sources,
                                 "sequenceMode": len(sources) > 1,
                                 "showReferenceStrip": len(sources) > 1,
                                 "crossOriginPolicy": "Anonymous",
                                 "maxZoomPixelRatio": 4}),
            names=_script_json(names),
            empty="" if sources else "<p>This plug has no images yet.</p>",
        )
        return HTMLResponse(page, headers=CORS_HEADERS)


    async def mirador(self, request: Request) -> Response:
        """Mirador (vendored) on a plug's manifest: thumbnails, deep zoom, metadata, rights."""
        try:
            plug_id = self._record_id(request.path_params["plug_id"])
            plug, images = await run_in_threadpool(_catalogue_errors(self.plug_images), plug_id)
            if not images:
                raise IIIFError(404, f"plug {plug_id} ({plug['hole']} / {plug['name']}) has no images yet")
        except IIIFError as exc:
            return _error(exc)
        manifest = str(request.url_for("iiif_manifest", plug_id=str(plug_id)))
        page = _MIRADOR.format(
            title=html.escape(f"MIS plug {plug['hole']} / {plug['name']} in Mirador"),
            script=html.escape(str(request.url_for("mirador_static", path="/mirador.min.js"))),
            config=_script_json({"id": "mirador", "windows": [{"manifestId": manifest, "thumbnailNavigationPosition":
                                                                "far-bottom"}],
                                 "window": {"allowClose": False, "defaultSideBarPanel": "info", "sideBarOpen": True},
                                 "workspaceControlPanel": {"enabled": False}}))
        return HTMLResponse(page, headers=CORS_HEADERS)


def _script_json(value: Any) -> str:
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace(
        "&", "\\u0026")


_VIEWER = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
  html, body {{ margin: 0; height: 100%; font-family: system-ui, sans-serif; background: #000; }}
  body {{ display: flex; flex-direction: column; }}
  header {{ flex: none; padding: .4em .8em; background: #222; color: #eee; }}
  header a {{ color: #9cf; }}
  #osd {{ flex: 1; min-height: 0; position: relative; background: #000; }}
  #name {{ margin-left: 1em; color: #fc6; }}
</style>
</head>
<body>
<header><strong>{heading}</strong> &middot; {interval} &middot; {count} image(s)
  &middot; <a href="{manifest}">IIIF manifest</a><span id="name"></span></header>
{empty}
<div id="osd"></div>
<script src="{osd}"></script>
<script>
  const config = {config};
  const names = {names};
  if (config.tileSources.length) {{
    const viewer = OpenSeadragon(config);
    const show = (i) => {{ document.getElementById("name").textContent = names[i] || ""; }};
    show(0);
    viewer.addHandler("page", (e) => show(e.page));
  }}
</script>
</body>
</html>
"""


_MIRADOR = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>html, body {{ margin: 0; height: 100%; }} #mirador {{ position: absolute; inset: 0; }}</style>
</head>
<body>
<div id="mirador"></div>
<script src="{script}"></script>
<script>window.miradorInstance = Mirador.viewer({config});</script>
</body>
</html>
"""


def iiif_routes(url: str | None = None, base_path: str = "/iiif", *,
                viewer_path: str = "/viewer", static_path: str = "/static/openseadragon",
                limits: iiif.Limits = iiif.DEFAULT_LIMITS, rights: iiif.Rights = iiif.NO_RIGHTS) -> list[BaseRoute]:
    """The IIIF image service, plug manifests, drill core and deposit collections, plug
    viewer and OpenSeadragon files over the catalogue at ``url`` (default:
    ``MIS_DATABASE_URL`` / the embedded database); ``rights``: the reuse terms every
    manifest and collection states."""
    svc = IIIFService(url, limits=limits, rights=rights)
    base = base_path.rstrip("/")
    methods = ["GET", "HEAD", "OPTIONS"]
    return [
        Route(f"{base}/3/{{identifier}}", svc.base_redirect, methods=methods, name="iiif_base"),
        Route(f"{base}/3/{{identifier}}/info.json", svc.info, methods=methods, name="iiif_info"),
        Route(f"{base}/3/{{identifier}}/{{region}}/{{size}}/{{rotation}}/{{quality_format}}",
              svc.image, methods=methods, name="iiif_image"),
        Route(f"{base}/3/{{rest:path}}", svc.malformed, methods=methods, name="iiif_malformed"),
        Route(f"{base}/presentation/plug/{{plug_id}}/manifest.json", svc.manifest,
              methods=methods, name="iiif_manifest"),
        Route(f"{base}/presentation/plug/{{plug_id}}/canvas/{{image_id}}/grains.json", svc.grains_page,
              methods=methods, name="iiif_grains"),
        Route(f"{base}/presentation/drillcore/{{drillcore_id}}/collection.json", svc.drillcore_collection,
              methods=methods, name="iiif_drillcore"),
        Route(f"{base}/presentation/deposit/{{deposit_id}}/collection.json", svc.deposit_collection,
              methods=methods, name="iiif_deposit"),
        Route(f"{viewer_path.rstrip('/')}/plug/{{plug_id}}", svc.viewer, methods=["GET", "HEAD"],
              name="plug_viewer"),
        Route(f"{viewer_path.rstrip('/')}/mirador/plug/{{plug_id}}", svc.mirador, methods=["GET", "HEAD"],
              name="plug_mirador"),
        Mount("/static/mirador", app=_CORSStaticFiles(directory=MIRADOR_DIR), name="mirador_static"),
        Mount(static_path.rstrip("/"), app=_CORSStaticFiles(directory=STATIC_DIR),
              name="openseadragon"),
    ]


def create_iiif_app(url: str | None = None, base_path: str = "/iiif", **kw: Any) -> Starlette:
    """A stand-alone ASGI app of :func:`iiif_routes` (tests, benchmarks, ``uvicorn``)."""
    return Starlette(routes=iiif_routes(url, base_path, **kw))
