"""Security over real HTTP: nothing is written without a valid token, whatever the route,
method or header trick; POST creates or answers 409; embedded JSON is escaped.

Its own live server and database (``tests.test_api_support``): this module writes.
"""

from __future__ import annotations

import itertools
import json

import httpx
import pytest
from starlette.routing import Mount, Route

from tests.test_api_support import api_db, count, http, live  # noqa: F401 - fixtures

GEOJSON = "application/geo+json"
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
EDITABLE = ("deposits", "drillcores", "surveys", "plugs")

#: What is compared before and after: every catalogue record a write could touch.
FINGERPRINT = """
SELECT md5(string_agg(x, '|' ORDER BY x)) FROM (
  SELECT 'd' || t::text AS x FROM deposit t UNION ALL SELECT 'c' || t::text FROM deposit_commodity t
  UNION ALL SELECT 'h' || t::text FROM drillcore t UNION ALL SELECT 's' || t::text FROM survey_station t
  UNION ALL SELECT 'p' || t::text FROM plug t) rows
"""


def _bodies() -> dict[str, dict]:
    """A body each editable collection would accept from a writer (a new record)."""
    return {
        "deposits": {"type": "Feature", "geometry": {"type": "Point", "coordinates": [-68.9, -22.9]},
                     "properties": {"name": "SEC Deposit", "occurrenceType": "prospect"}},
        "drillcores": {"type": "Feature", "geometry": {"type": "Point", "coordinates": [-68.881, -22.941, 3860]},
                       "properties": {"name": "SEC-DC", "deposit": "Quebrada Azul", "boreholeLength_m": 100,
                                      "dip_deg": -60, "azimuth_deg": 90}},
        "surveys": {"type": "Feature", "geometry": None,
                    "properties": {"drillcore": "QA-001", "deposit": "Quebrada Azul", "depth_m": 333,
                                   "dip_deg": -60, "azimuth_deg": 100}},
        "plugs": {"type": "Feature", "geometry": None,
                  "properties": {"name": "SEC-P1", "drillcore": "QA-001", "deposit": "Quebrada Azul",
                                 "from_m": 10.0, "to_m": 10.5, "sampleType": "plug"}},
    }


def _paths(app) -> list[str]:
    """Every route of the ASGI app (mounts walked), its parameters filled with values that
    name real things: each editable collection and item 1, else a plain word."""
    templates: list[str] = []

    def walk(routes, prefix: str = "") -> None:
        for route in routes:
            if isinstance(route, Mount):
                walk(route.routes or [], prefix + route.path)
                if not route.routes:
                    templates.append(prefix + route.path + "/x")
            elif isinstance(route, Route):
                templates.append(prefix + route.path)

    walk(app.routes)
    paths: set[str] = set()
    for template in templates:
        collections = EDITABLE + ("roxels",) if template.endswith("/items") or "{item_id" in template \
            else ("plugs",)
        for collection in collections:
            path = template.replace("{collection_id:path}", collection).replace("{item_id:path}", "1")
            while "{" in path:
                start, end = path.index("{"), path.index("}")
                name = path[start + 1:end].split(":")[0]
                path = path[:start] + ("1" if name.endswith("id") else "x") + path[end + 1:]
            paths.add(path)
    return sorted(paths)


def _tricks(bad_token: str) -> list[list[tuple[str, str]]]:
    """Header sets without one valid token: each way a layer in front could be misled."""
    return [
        [],
        [("Content-Type", GEOJSON)],
        [("Content-Type", GEOJSON), ("Content-Type", "application/json")],
        [("Content-Type", "application/json"), ("Content-Type", GEOJSON)],
        [("Content-Type", "Application/GEO+JSON ; charset=utf-8")],
        [("Content-Type", GEOJSON), ("Authorization", f"Bearer {bad_token}")],
        [("Content-Type", GEOJSON), ("Authorization", "Bearer")],
        [("Content-Type", GEOJSON), ("Authorization", f"bearer {bad_token}"), ("Authorization", "Basic eDp5")],
        [("Content-Type", "application/json"), ("X-HTTP-Method-Override", "PUT")],
    ]


def test_no_route_method_or_header_trick_writes_without_a_valid_token(live, api_db):
    """Every route x every method x every header trick: the catalogue is byte-identical."""
    before = count(api_db, FINGERPRINT)
    paths = _paths(live.app)
    assert any(p == "/collections/plugs/items" for p in paths) and any(p.startswith("/mis/register") for p in paths)
    bodies = _bodies()
    register_body = json.dumps({"samples": [{"HOLE_ID": "QA-001", "DEPOSIT": "Quebrada Azul",
                                             "SAMPLE_ID": "SEC-BULK", "FROM": 1, "TO": 2, "SAMPLE_TYPE": "plug"}]})
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=live.url, timeout=60) as client:
        for path, method, headers in itertools.product(paths, METHODS, _tricks("mis_00000000_wrong")):
            collection = path.split("/")[2] if path.startswith("/collections/") else None
            body = json.dumps(bodies[collection]) if collection in bodies else register_body
            r = client.request(method, path, headers=headers, content=body if method in ("POST", "PUT", "PATCH")
                               else None)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            assert r.status_code < 500, (method, path, headers, r.status_code, r.text[:300])
    assert count(api_db, FINGERPRINT) == before, statuses
    assert statuses.get(401, 0) > 100 and statuses.get(400, 0) > 100, statuses


def test_duplicated_headers_are_a_400_even_with_a_valid_token(live, http, api_db):
    token = live.token("dup")
    before = count(api_db, FINGERPRINT)
    body = json.dumps(_bodies()["plugs"])
    for headers in ([("Content-Type", GEOJSON), ("Content-Type", "application/json")],
                    [("Content-Type", "application/json"), ("Content-Type", GEOJSON)],
                    [("Content-Type", GEOJSON), ("Authorization", "Bearer mis_0_x")]):
        r = http.post("/collections/plugs/items", content=body,
                      headers=[*headers, ("Authorization", f"Bearer {token}")])
        assert r.status_code == 400 and "more than once" in r.json()["description"], r.text
    assert count(api_db, FINGERPRINT) == before


def test_the_provider_refuses_a_write_that_reaches_it_without_a_token(live, api_db):
    """The decision is taken where the write happens: pygeoapi's own app, called without
    MIS's middleware in front, still cannot create."""
    from starlette.testclient import TestClient

    before = count(api_db, FINGERPRINT)
    with TestClient(live.app.state.pygeoapi.APP) as client:
        r = client.post("/collections/plugs/items", content=json.dumps(_bodies()["plugs"]),
                        headers={"Content-Type": GEOJSON})
        assert r.status_code == 401, r.text
        assert client.delete("/collections/plugs/items/1").status_code == 401
    assert count(api_db, FINGERPRINT) == before


def test_a_corrupt_token_file_refuses_writes_with_a_reason_not_a_500(live, http, api_db):
    token = live.token("before-corruption")
    saved = live.token_file.read_bytes()
    try:
        for junk in (b"{not json", b'{"tokens": [1, 2]}', b'[{"key_id": "a"}]', b"[" * 100_000):
            live.token_file.write_bytes(junk)
            r = http.post("/collections/plugs/items", content=json.dumps(_bodies()["plugs"]),
                          headers={"Content-Type": GEOJSON, "Authorization": f"Bearer {token}"})
            assert r.status_code == 401 and "token file" in r.json()["description"], r.text
    finally:
        live.token_file.write_bytes(saved)


@pytest.mark.parametrize("collection, properties", [
    ("drillcores", {"HOLEID": "QA-001", "PROJECT": "Quebrada Azul", "EOH": 250}),
    ("deposits", {"DEPOSIT": "Quebrada Azul", "country": "AR"}),
    ("plugs", {"SAMPLE": "QA-001-P01", "drillcore": "QA-001", "deposit": "Quebrada Azul", "from_m": 1,
               "to_m": 2, "sampleType": "plug"}),
])
def test_post_with_alias_keys_is_refused_and_changes_nothing(live, http, api_db, collection, properties):
    token = live.token("alias")
    before = count(api_db, FINGERPRINT)
    geometry = {"type": "Point", "coordinates": [-68.88, -22.94]} if collection != "plugs" else None
    r = http.post(f"/collections/{collection}/items", headers={"Content-Type": GEOJSON,
                                                               "Authorization": f"Bearer {token}"},
                  content=json.dumps({"type": "Feature", "geometry": geometry, "properties": properties}))
    assert r.status_code == 400 and "unknown properties" in r.json()["description"], r.text
    assert "location" not in r.headers
    assert count(api_db, FINGERPRINT) == before


def test_post_of_an_existing_record_is_a_409_and_location_names_the_new_item(live, http, api_db):
    token = live.token("creator")
    auth = {"Content-Type": GEOJSON, "Authorization": f"Bearer {token}"}
    before = count(api_db, FINGERPRINT)
    existing = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [-68.872, -22.94, 3880]},
                "properties": {"name": "QA-001", "deposit": "Quebrada Azul", "boreholeLength_m": 999,
                               "dip_deg": -60, "azimuth_deg": 90}}
    r = http.post("/collections/drillcores/items", content=json.dumps(existing), headers=auth)
    assert r.status_code == 409 and "PUT" in r.json()["description"], r.text
    assert count(api_db, FINGERPRINT) == before
    r = http.post("/collections/plugs/items", content=json.dumps(_bodies()["plugs"]), headers=auth)
    assert r.status_code == 201, r.text
    location = r.headers["location"]
    assert not location.endswith("/None")
    assert http.get(location).json()["properties"]["name"] == "SEC-P1"
    assert http.delete(location, headers=auth).status_code == 200


XSS_NAME = "<img src=x onerror=window.__xss=1>"
XSS_TEXT = "</script><img src=x onerror=window.__xss=2><script>window.__xss=3</script>&amp;"


def test_stored_script_runs_in_no_html_page(live, http, api_db):
    """A plug whose name and description are markup: pygeoapi's item and items pages and
    MIS's own pages show them as text, and no script of theirs runs (a real browser)."""
    import re
    import shutil
    from pathlib import Path

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("needs Debian's chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    token = live.token("xss")
    plug = _bodies()["plugs"]
    plug["properties"] = {**plug["properties"], "name": XSS_NAME, "description": XSS_TEXT, "from_m": 20.0,
                          "to_m": 20.5}
    r = http.post("/collections/plugs/items", content=json.dumps(plug),
                  headers={"Content-Type": GEOJSON, "Authorization": f"Bearer {token}"})
    assert r.status_code == 201, r.text
    item = r.headers["location"].rsplit("/", 1)[1]
    hole = http.get(f"/collections/plugs/items/{item}", params={"f": "json"}).json()["properties"]["drillcore_id"]
    pages = [f"/collections/plugs/items/{item}?f=html", "/collections/plugs/items?f=html&limit=1000",
             f"/collections/plugs/items?f=html&name={XSS_NAME}", f"/mis/plug/{item}", f"/mis/drillcore/{hole}"]
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        context = browser.new_context()
        context.route(re.compile(r"^(?!http://127\.0\.0\.1[:/]).*", re.I), lambda route: route.abort())
        page = context.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        try:
            for path in pages:
                response = page.goto(live.url + path, wait_until="load")
                assert response is not None and response.status == 200, path
                page.wait_for_timeout(300)
                assert page.evaluate("window.__xss") is None, path
                assert page.locator("img[src='x']").count() == 0, path
            page.goto(live.url + pages[0], wait_until="load")
            assert XSS_NAME in page.inner_text("body")  # shown, as text
            # the embedded GeoJSON still reads as the stored text (the map script itself stops
            # early offline: Leaflet comes from a CDN in pygeoapi's pages)
            script = next(s for s in page.locator("script").all_inner_texts() if "geojson_data" in s)
            literal = re.search(r"var geojson_data = (.*);\n", script).group(1)
            assert page.evaluate(f"({literal}).properties.description") == XSS_TEXT
        finally:
            context.close()
            browser.close()
    assert not dialogs


def test_client_input_never_gets_a_500(live, http, api_db):
    """The issue's probes: huge numbers, non-canonical ids, deep JSON, NUL bytes, row lists
    that are not rows, a 1 MB URL; each is a 4xx with a reason, and nothing is written."""
    token = live.token("probe")
    auth = {"Authorization": f"Bearer {token}"}
    before = count(api_db, FINGERPRINT)
    huge = "9" * 400
    deep = "[" * 100_000 + "]" * 100_000
    plug_nul = _bodies()["plugs"]
    plug_nul["properties"] = {**plug_nul["properties"], "name": "NUL\x00NAME"}
    probes = [
        ("GET", f"/iiif/3/1/0,0,{huge},10/max/0/default.jpg", None, None),
        ("GET", f"/iiif/3/1/full/{huge},/0/default.jpg", None, None),
        ("GET", f"/iiif/3/1/full/max/{huge}/default.jpg", None, None),
        ("GET", f"/iiif/3/1;bands={huge}/full/max/0/default.jpg", None, None),
        ("GET", f"/collections/plugs/items?limit={huge}", None, None),
        ("GET", f"/collections/plugs/items?offset={huge}", None, None),
        ("GET", f"/collections/plugs/items?from_m={huge}", None, None),
        ("GET", f"/collections/plugs/items?cursor={'1' * 5000}", None, None),
        ("GET", "/collections/plugs/items?filter=" + "NOT " * 2000 + "name='x'", None, None),
        ("GET", "/mis/plug/\u00b2", None, None),
        ("POST", "/collections/plugs/items", deep, {"Content-Type": "application/json"}),
        ("POST", "/collections/plugs/items", deep, {"Content-Type": GEOJSON, **auth}),
        ("POST", "/collections/plugs/items", json.dumps(plug_nul), {"Content-Type": GEOJSON, **auth}),
        ("POST", "/mis/register", deep, auth),
        ("POST", "/mis/register", json.dumps({"samples": [1, 2, 3]}), auth),
        ("POST", "/mis/register", json.dumps({"samples": [{"HOLE_ID": "QA-001", "SAMPLE_ID": "a\x00b", "FROM": 1,
                                                           "TO": 2, "SAMPLE_TYPE": "plug"}]}), auth),
        ("POST", "/mis/register", json.dumps({"samples": [{"HOLE_ID": {"a": 1}, "SAMPLE_ID": [1], "FROM": 1,
                                                           "TO": 2}]}), auth),
    ]
    for method, path, body, headers in probes:
        r = http.request(method, path, content=body, headers=headers or {})
        assert 400 <= r.status_code < 500, (method, path[:80], r.status_code, r.text[:300])
        assert "Traceback" not in r.text
    assert _raw_status(live.port, "/collections/plugs/items?name=" + "x" * (1024 * 1024)) == 414
    assert count(api_db, FINGERPRINT) == before


def _raw_status(port: int, target: str) -> int:
    """The status of a GET of ``target`` sent on a plain socket (httpx refuses long URLs)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        head = sock.recv(64).decode("latin-1")
    return int(head.split()[1])


def test_ids_are_canonical_and_unknown_parameters_are_named(http):
    assert http.get("/collections/plugs/items/1?f=json").status_code == 200
    for ident in ["0_1", "1_0", "\u0661", "\uff11", " 1", "+1", "01_"]:
        r = http.get(f"/collections/plugs/items/{ident}", params={"f": "json"})
        assert r.status_code == 404, (ident, r.status_code)
    r = http.get("/collections/plugs/items", params={"lithologgy": "dacite", "f": "json"})
    assert r.status_code == 400 and "'lithologgy'" in r.json()["description"], r.text
    r = http.get("/collections/plugs/items/1", params={"f": "json", "limt": "5"})
    assert r.status_code == 400 and "'limt'" in r.json()["description"], r.text
    ok = http.get("/collections/plugs/items", params={"lithology": "dacite", "limit": 2, "sortby": "name",
                                                      "f": "json", "skipGeometry": "true", "filter-lang": "cql2-text",
                                                      "filter": "name LIKE 'QA%'", "lithology_broader": "igneous rock"})
    assert ok.status_code == 200, ok.text


def test_refused_tokens_in_a_url_stay_out_of_the_access_log(live, http):
    import logging

    from mis.api.app import RedactRefusedQueries

    token = live.token("leaky")
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', (
        "127.0.0.1:5", "DELETE", f"/collections/plugs/items/1?access_token={token}", "1.1", 401), None)
    assert RedactRefusedQueries().filter(record)
    line = record.getMessage()
    assert token not in line and token.split("_")[2] not in line and "/collections/plugs/items/1" in line
    read = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', (
        "127.0.0.1:5", "GET", f"/collections/plugs/items?f=json&x={token}", "1.1", 400), None)
    RedactRefusedQueries().filter(read)
    assert token.split("_")[2] not in read.getMessage() and "f=json" in read.getMessage()
    assert any(isinstance(f, RedactRefusedQueries) for f in logging.getLogger("uvicorn.access").filters)
