"""The one ASGI app of MIS: pygeoapi (OGC API - Features) mounted, MIS's own routes, auth.

::

    from mis.api.app import create_app
    app = create_app(url, port=5000, extra_routes=[Mount("/iiif", iiif_app)])
    uvicorn.run(app, host="127.0.0.1", port=5000)

``create_app``

1. fills the configuration template (``pygeoapi-config.yml``, see :mod:`mis.api.config`)
   and writes it, with the OpenAPI document pygeoapi generates from it (made
   self-contained: the server works offline), to ``MIS_HOME/api/`` (or ``state_dir``);
2. loads pygeoapi's Starlette application for that configuration (a fresh module object
   per app, so that several apps can live in one process, e.g. in tests) and mounts it at
   ``/``; the landing page, ``/openapi``, ``/conformance``, ``/collections/...`` with
   their HTML pages are pygeoapi's, patched where pygeoapi 0.21 falls short of what MIS
   needs (every patch is one function of :mod:`mis.api.patches`);
3. adds MIS's routes before it: ``/mis/health``, ``/mis/register`` (bulk registration,
   the same service as ``mis register``; needs a token), ``/mis/tiles/{z}/{x}/{y}.png``
   (the offline base map of pygeoapi's HTML pages), the pages, the IIIF service, and
   ``extra_routes`` (other stages add theirs this way); every answer of pygeoapi passes
   :func:`mis.api.responses.adjust`;
4. wraps everything in :class:`WriteAuth`: writes need a bearer token (:mod:`mis.api.auth`),
   reads stay open.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import itertools
import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mis.api.auth import TokenStore, WriteRefused, authorise_write, default_token_file, duplicated_header
from mis.api.patches import apply_process_wide, keep_raw_headers, serve_through_mis
from mis.api.provider import dispose_engines
from mis.catalogue import engines

__all__ = ["QueryGuard", "WriteAuth", "create_app", "serve"]

_COUNTER = itertools.count(1)
WRITE_METHODS = {"PUT", "PATCH", "DELETE"}


def _load_pygeoapi(config_path: Path, openapi_path: Path, tokens: TokenStore, base_url: str):
    """A fresh instance of ``pygeoapi.starlette_app`` for one configuration.

    pygeoapi reads its configuration when the module is imported; loading the module
    file anew gives each app its own configuration and API object, which MIS then patches
    (:func:`mis.api.patches.keep_raw_headers`, :func:`mis.api.patches.serve_through_mis`).
    """
    found = importlib.util.find_spec("pygeoapi.starlette_app")  # not imported: it would run
    if found is None or found.origin is None:
        raise RuntimeError("cannot find the module pygeoapi.starlette_app: is pygeoapi installed?")
    origin = found.origin
    # pygeoapi reads these two only while its module is imported; afterwards the process
    # environment is put back exactly as it was (a key that was absent is removed again)
    saved = {k: os.environ.get(k) for k in ("PYGEOAPI_CONFIG", "PYGEOAPI_OPENAPI")}
    os.environ["PYGEOAPI_CONFIG"] = str(config_path)
    os.environ["PYGEOAPI_OPENAPI"] = str(openapi_path)
    try:
        spec = importlib.util.spec_from_file_location(f"mis_pygeoapi_app_{next(_COUNTER)}", origin)
        if spec is None or spec.loader is None:
            raise RuntimeError(f"cannot load pygeoapi.starlette_app from {origin}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    keep_raw_headers(module, tokens)
    serve_through_mis(module, base_url)
    return module


def _items_path(path: str) -> bool:
    parts = path.strip("/").split("/")
    return len(parts) in (3, 4) and parts[0] == "collections" and parts[2] == "items"


class WriteAuth:
    """ASGI middleware, the first line of defence for writes (not the deciding one).

    - a request carrying a header of :data:`~mis.api.auth.SINGLE_HEADERS` twice
      (``Content-Type``, ``Authorization`` ...) is a 400: layers that read the first and
      the last value would disagree on what it is;
    - an evident write (PUT, PATCH or DELETE under ``/collections/{id}/items``, a POST of
      GeoJSON there, a POST to ``/mis/register``) without a valid token gets its 401
      before its body is read;
    - every 401 carries ``WWW-Authenticate: Bearer``.

    The decision that counts is taken again where each write happens
    (:func:`mis.api.auth.authorise_write` in the provider's create/update/delete and in
    the bulk route), on the request's own headers, so that a request this layer does not
    recognise as a write is still refused there.
    """

    def __init__(self, app: ASGIApp, tokens: TokenStore) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        twice = duplicated_header(scope["headers"])
        if twice:
            await _problem(400, "InvalidParameterValue", f"the {twice} header is given more than once")(
                scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        write = False
        if _items_path(path) and method in WRITE_METHODS:
            write = True
        elif _items_path(path) and method == "POST" and content_type == "application/geo+json":
            write = True
            # pygeoapi routes a create on the exact media type only: drop "; charset=..."
            scope = dict(scope)
            scope["headers"] = [(k, b"application/geo+json") if k.lower() == b"content-type" else (k, v)
                                for k, v in scope["headers"]]
        elif path.rstrip("/") == "/mis/register" and method == "POST":
            write = True
        if write:
            try:
                authorise_write(self.tokens, scope["headers"])
            except WriteRefused as exc:
                await _problem(exc.status, exc.code, str(exc))(scope, receive, send)
                return

        async def send_with_challenge(message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401 and not any(
                    k.lower() == b"www-authenticate" for k, _v in message.get("headers", [])):
                message = {**message, "headers": [*message.get("headers", []), *CHALLENGE]}
            await send(message)

        await self.app(scope, receive, send_with_challenge)


#: The challenge of every 401.
CHALLENGE = [(b"www-authenticate", b'Bearer realm="mis"')]


def _problem(status: int, code: str, description: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An OGC API exception document (``code``, ``description``) as a response."""
    extra = dict(headers or {})
    if status == 401:
        extra.setdefault("WWW-Authenticate", CHALLENGE[0][1].decode())
    return JSONResponse({"code": code, "description": description}, status_code=status, headers=extra)


#: Longest URL (path + query) the server answers; longer ones get a 414.
MAX_URL_BYTES = 64 * 1024
#: Largest request head uvicorn reads (beyond it, its own 400 and a closed connection).
MAX_REQUEST_HEAD_BYTES = 2 * 1024 * 1024

#: Seconds a client is asked to wait (``Retry-After``) while the catalogue is unreachable.
RETRY_AFTER_S = 5


class Availability:
    """ASGI middleware: while the catalogue database is down, every answer is a 503 with
    ``Retry-After``, never a 500.

    A 503 from any layer (the provider's :class:`~mis.api.errors.CatalogueUnavailable`,
    the pages, IIIF) gets ``Retry-After``; a connection error that escapes a route before
    its response started becomes such a 503. The pools reconnect on their own once the
    database is back (pre-ping, or a retry on a fresh connection for the read pools).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_retry(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if message["status"] == 503:
                    message = {**message, "headers": [*message.get("headers", []),
                                                      (b"retry-after", str(RETRY_AFTER_S).encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_retry)
        except Exception as exc:
            from mis.catalogue.errors import DatabaseUnavailable, is_connection_error

            if started or not (isinstance(exc, DatabaseUnavailable) or is_connection_error(exc)):
                raise
            await _problem(503, "ServiceUnavailable", "the catalogue database is not reachable; try again shortly",
                           {"Retry-After": str(RETRY_AFTER_S)})(scope, receive, send)


class QueryGuard:
    """ASGI middleware: refuse requests pygeoapi 0.21 would answer with a 500.

    A URL longer than :data:`MAX_URL_BYTES` gets a 414 (uvicorn, see :func:`server_config`,
    reads request heads of up to :data:`MAX_REQUEST_HEAD_BYTES`, so that such a request
    gets this answer instead of a reset connection). A POST to ``/collections/{id}/items``
    without a Content-Type gets a 415;
    ``filter-lang=cql2-text`` (the standard's name, which pygeoapi 0.21 refuses) is dropped,
    as ``filter`` is read as CQL2 text anyway, and ``cql2-json`` becomes its ``cql-json``.
    ``sortby=`` with an empty term (``sortby=``, ``sortby=a,,b``, ``sortby=+``) makes pygeoapi
    index an empty string; such a request gets a 400 here instead.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"") \
                > MAX_URL_BYTES:
            await _problem(414, "InvalidParameterValue", f"the URL is longer than {MAX_URL_BYTES} bytes: "
                                                         "send a long filter as CQL2 JSON in a POST body")(
                scope, receive, send)
            return
        if scope["type"] == "http" and scope["method"] == "POST" and _items_path(scope["path"]) \
                and not any(k.lower() == b"content-type" for k, _v in scope["headers"]):
            # pygeoapi returns nothing for a POST without a media type (a 500)
            response = JSONResponse({"code": "InvalidParameterValue", "description":
                                     "POST needs a Content-Type: application/geo+json (a new feature) or "
                                     "application/json (a CQL2 JSON query)"}, status_code=415)
            await response(scope, receive, send)
            return
        if scope["type"] == "http" and scope.get("query_string"):
            from urllib.parse import parse_qsl

            try:
                pairs = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
            except ValueError:
                pairs = []
            if any(k == "filter-lang" and v.lower() in ("cql2-text", "cql2-json") for k, v in pairs):
                # pygeoapi 0.21 knows only the pre-standard names: `filter=` is read as CQL2
                # text anyway, and a POSTed CQL2 JSON body is its "cql-json"
                from urllib.parse import urlencode

                pairs = [(k, v) for k, v in pairs if not (k == "filter-lang" and v.lower() == "cql2-text")]
                pairs = [(k, "cql-json" if k == "filter-lang" else v) for k, v in pairs]
                scope = {**scope, "query_string": urlencode(pairs).encode("latin-1")}
            for key, value in pairs:
                if key == "sortby" and any(not term.strip().lstrip("+-").strip() for term in value.split(",")):
                    response = JSONResponse({"code": "InvalidParameterValue",
                                             "description": "sortby: give property names, e.g. sortby=-depth_m,name"},
                                            status_code=400)
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def _mis_routes(url: str, tokens: TokenStore) -> list[BaseRoute]:
    async def health(request: Request) -> JSONResponse:
        from sqlalchemy import text

        from mis import __version__
        def ping() -> str | None:
            with engines.engine(url, engines.Use.API).connect() as conn:
                return conn.execute(text("SELECT max(version_num) FROM alembic_version")).scalar()

        try:
            revision = await asyncio.get_running_loop().run_in_executor(None, ping)
        except Exception as exc:  # noqa: BLE001 - health reports, never raises
            return JSONResponse({"status": "error", "database": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ok", "version": __version__, "schema_revision": revision})

    async def register_route(request: Request) -> JSONResponse:
        """Bulk registration: ``{"deposits": [...], "collars": [...], "surveys": [...],
        "samples": [...]}`` rows as ``mis register`` reads them; ``?dry_run=true``."""
        from mis.catalogue.errors import DatabaseUnavailable
        from mis.catalogue.register import register

        try:  # decided here, where the write happens, whatever the middleware made of it
            authorise_write(tokens, request.headers.raw)
        except WriteRefused as exc:
            return _problem(exc.status, exc.code, str(exc))
        try:
            body = json.loads(await request.body() or b"null")
        except json.JSONDecodeError as exc:
            return JSONResponse({"code": "InvalidParameterValue", "description": f"the body is not JSON: {exc.msg}"},
                                status_code=400)
        except (RecursionError, UnicodeDecodeError):
            return _problem(400, "InvalidParameterValue", "the body is not JSON row lists (nested too deeply, "
                                                          "or not UTF-8)")
        if not isinstance(body, dict) or not body or not all(isinstance(v, list) for v in body.values()):
            return JSONResponse({"code": "InvalidParameterValue", "description":
                                 "give an object of row lists: {\"collars\": [...], \"surveys\": [...], ...}"},
                                status_code=400)
        dry_run = request.query_params.get("dry_run", "").lower() in ("1", "true", "yes")

        def run():
            return register([body], url=url, dry_run=dry_run, source="POST /mis/register")

        try:
            report = await asyncio.get_running_loop().run_in_executor(None, run)
        except ValueError as exc:
            return JSONResponse({"code": "InvalidParameterValue", "description": str(exc)}, status_code=400)
        except DatabaseUnavailable as exc:
            return _problem(503, "ServiceUnavailable", str(exc))
        payload = {**report.to_dict(), "report": report.render()}
        return JSONResponse(payload, status_code=200 if report.ok else 400)

    async def tile(request: Request) -> Response:
        """The offline base map of pygeoapi's HTML pages: one plain tile for every
        ``{z}/{x}/{y}`` (the configuration's ``server.map.url`` points here)."""
        return Response(_plain_tile(), media_type="image/png", headers={"Cache-Control": "public, max-age=86400"})

    return [Route("/mis/health", health, methods=["GET"]),
            Route("/mis/register", register_route, methods=["POST"]),
            Route("/mis/tiles/{z:int}/{x:int}/{y:int}.png", tile, methods=["GET"], name="mis_tile")]


@functools.cache
def _plain_tile() -> bytes:
    """A 256 px PNG of the MIS map's background with a faint edge (the tile grid)."""
    import io

    from PIL import Image, ImageDraw

    image = Image.new("RGB", (256, 256), (238, 241, 238))
    draw = ImageDraw.Draw(image)
    draw.line([(0, 255), (255, 255), (255, 0)], fill=(214, 220, 214))
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _rights(config: dict[str, Any]):
    """The reuse terms of the IIIF manifests: the licence and provider of the configuration."""
    from mis.imagery.iiif import Rights

    metadata = config.get("metadata") or {}
    licence = metadata.get("license") or {}
    provider = (metadata.get("provider") or {}).get("name")
    statement = ", ".join(v for v in (provider, licence.get("name")) if v) or None
    return Rights(uri=licence.get("url"), statement=statement)


def create_app(
    url: str | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 5000,
    public_url: str | None = None,
    extra_routes: Sequence[BaseRoute] = (),
    token_file: Path | None = None,
    state_dir: Path | None = None,
    template: dict[str, Any] | None = None,
) -> Starlette:
    """The MIS server for catalogue ``url`` (default: :func:`mis.catalogue.locate.database_url`).

    ``host``/``port``/``public_url``: where clients reach it (links in responses);
    ``extra_routes``: more Starlette routes, matched before pygeoapi's (e.g.
    ``Mount("/iiif", ...)``); ``token_file``: the write tokens (default
    ``MIS_HOME/api/tokens.json``); ``state_dir``: where the generated configuration and
    OpenAPI document go (default ``MIS_HOME/api``).
    """
    from pygeoapi.openapi import get_oas

    from mis.api.config import build_config, offline_openapi
    from mis.catalogue.locate import database_url, normalise_url
    from mis.settings import mis_home

    url = normalise_url(url or database_url())
    state = Path(state_dir) if state_dir else mis_home() / "api"
    state.mkdir(parents=True, exist_ok=True)
    config = build_config(url, host=host, port=port, public_url=public_url, template=template)
    config_path = state / "pygeoapi-config.generated.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    os.chmod(config_path, 0o600)  # it holds the database password
    openapi = offline_openapi(get_oas(config, fail_on_invalid_collection=True))
    openapi_path = state / "openapi.json"
    openapi_path.write_text(json.dumps(openapi), encoding="utf-8")
    apply_process_wide()
    tokens = TokenStore(Path(token_file) if token_file else default_token_file())
    pygeoapi_module = _load_pygeoapi(config_path, openapi_path, tokens, config["server"]["url"])

    from mis.api.pages import page_routes
    from mis.imagery.iiif_routes import iiif_routes

    routes: list[BaseRoute] = [*extra_routes, *_mis_routes(url, tokens), *page_routes(url),
                               *iiif_routes(url, rights=_rights(config)),
                               Mount("/", app=pygeoapi_module.APP)]

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        dispose_engines()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.config = config
    app.state.openapi = openapi
    app.state.pygeoapi = pygeoapi_module
    app.state.tokens = tokens
    app.add_middleware(WriteAuth, tokens=tokens)
    app.add_middleware(QueryGuard)
    app.add_middleware(Availability)
    return app


class RedactRefusedQueries(logging.Filter):
    """Access-log filter: the query string of a refused request (401, 403: a token may
    have been put in the URL) is left out of the log, and anything shaped like an MIS
    token is masked in every line."""

    TOKEN = re.compile(r"mis_[0-9a-f]{8}_[A-Za-z0-9_%-]+")

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 5:  # uvicorn: client, method, path, version, status
            path, status = str(args[2]), args[4]
            if status in (401, 403):
                path = path.split("?", 1)[0] + ("?[redacted]" if "?" in path else "")
            record.args = (*args[:2], self.TOKEN.sub("mis_[redacted]", path), *args[3:])
        return True


def server_config(app: ASGIApp, *, host: str, port: int, log_level: str = "info", **kwargs: Any):
    """The uvicorn configuration MIS runs under (``mis serve``, the tests): request heads up
    to :data:`MAX_REQUEST_HEAD_BYTES` (a too-long URL gets the app's 414), and the access
    log without refused requests' query strings (:class:`RedactRefusedQueries`)."""
    import uvicorn

    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactRefusedQueries) for f in access.filters):
        access.addFilter(RedactRefusedQueries())
    return uvicorn.Config(app, host=host, port=port, log_level=log_level,
                          h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES, **kwargs)


def serve(url: str | None = None, *, host: str = "127.0.0.1", port: int = 5000, public_url: str | None = None,
          token_file: Path | None = None, log_level: str = "info",
          extra_routes: Iterable[BaseRoute] = ()) -> None:
    """Build the app and run it with uvicorn until interrupted."""
    import uvicorn

    app = create_app(url, host=host, port=port, public_url=public_url, token_file=token_file,
                     extra_routes=list(extra_routes))
    uvicorn.Server(server_config(app, host=host, port=port, log_level=log_level)).run()
