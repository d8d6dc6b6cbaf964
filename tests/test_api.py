"""OGC API - Features over real HTTP: collections, Part 1-3 reads, paging, hierarchy, hostile input.

One live server (the real app under uvicorn) on a catalogue holding the sample deposit
and a synthetic segmentation run (see ``test_api_support``).
"""

from __future__ import annotations

import json

import pytest
import yaml

from mis.api.config import load_template
from tests.test_api_support import (  # noqa: F401 - fixtures
    N_GRAINS,
    ROXEL_GRID,
    api_db,
    count,
    follow,
    http,
    live,
)

SPATIAL = ["deposits", "drillcores", "drillcore-traces", "plugs", "rocks", "grains", "roxels"]


# --------------------------------------------------------------------------- the service
def test_landing_conformance_and_openapi_work_offline(http):
    landing = http.get("/", params={"f": "json"})
    assert landing.status_code == 200
    rels = {link["rel"] for link in landing.json()["links"]}
    assert {"service-desc", "conformance", "data"} <= rels
    conformance = http.get("/conformance", params={"f": "json"}).json()["conformsTo"]
    for part in ("ogcapi-features-1/1.0/conf/core", "ogcapi-features-1/1.0/conf/geojson",
                 "ogcapi-features-2/1.0/conf/crs", "ogcapi-features-3/1.0/conf/filter"):
        assert any(part in c for c in conformance), part
    doc = http.get("/openapi", params={"f": "json"})
    assert doc.status_code == 200
    text = doc.text
    assert '"$ref": "http' not in text.replace(" ", "").replace('"$ref":"http', '"$ref": "http')
    spec = doc.json()
    for cid in load_template()["resources"]:
        assert f"/collections/{cid}/items" in spec["paths"], cid
    assert http.get("/mis/health").json()["status"] == "ok"


def test_config_template_is_in_step_with_the_views(api_db):
    """Every view of schema pub is published, and every collection reads an existing view."""
    import psycopg

    from tests.test_api_support import libpq

    template = load_template()
    with psycopg.connect(libpq(api_db)) as conn:
        views = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.views WHERE table_schema = 'pub'")}
        columns = {}
        for view in views:
            columns[view] = {r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'pub' "
                "AND table_name = %s", [view])}
    tables = {res["providers"][0]["table"] for res in template["resources"].values()}
    helpers = {"run_class_names"}
    assert views - helpers == tables
    for cid, res in template["resources"].items():
        prov = res["providers"][0]
        assert prov["id_field"] in columns[prov["table"]], cid
        if prov.get("geom_field"):
            assert prov["geom_field"] in columns[prov["table"]], cid
        if prov.get("time_field"):
            assert prov["time_field"] in columns[prov["table"]], cid
        parent = (prov.get("mis") or {}).get("parent")
        if parent:
            assert parent["collection"] in template["resources"], cid
            assert parent["field"] in columns[prov["table"]], cid
        defaults = (prov.get("mis") or {}).get("default_properties") or []
        assert set(defaults) <= columns[prov["table"]], (cid, set(defaults) - columns[prov["table"]])
        for key in ("title", "description", "keywords"):
            assert res.get(key), (cid, key)


def test_every_collection_has_metadata_extent_queryables_and_parent_links(http):
    collections = {c["id"]: c for c in http.get("/collections", params={"f": "json"}).json()["collections"]}
    assert set(collections) == set(load_template()["resources"])
    deposit_box = collections["deposits"]["extent"]["spatial"]["bbox"][0]
    for cid, c in collections.items():
        assert c["title"] and c["description"] and c["keywords"], cid
        box = c["extent"]["spatial"]["bbox"][0]
        if cid in SPATIAL:  # computed from the data: inside the deposit, never the world
            assert deposit_box[0] - 0.01 <= box[0] <= box[2] <= deposit_box[2] + 0.01, (cid, box)
        queryables = http.get(f"/collections/{cid}/queryables", params={"f": "json"})
        assert queryables.status_code == 200, cid
        assert len(queryables.json()["properties"]) >= 3, cid
    for cid, parent in (("drillcores", "deposits"), ("plugs", "drillcores"), ("roxels", "plugs"),
                        ("rocks", "plugs"), ("grains", "plugs"), ("surveys", "drillcores")):
        ups = [link["href"] for link in collections[cid]["links"] if link["rel"] == "up"]
        assert ups and ups[0].endswith(f"/collections/{parent}"), cid
    drillcores = collections["drillcores"]
    assert "temporal" in drillcores["extent"]
    assert any("32719" in crs for crs in drillcores["crs"])  # the UTM zone the holes were desurveyed in
    assert "lithology_broader" in http.get("/collections/plugs/queryables", params={"f": "json"}).json()["properties"]


# --------------------------------------------------------------------------- features
def test_drillcores_use_geosciml_lite_names_with_labels_beside_uris(http):
    body = http.get("/collections/drillcores/items", params={"limit": 10}).json()
    assert body["numberMatched"] == 6 and body["numberReturned"] == 6
    feature = body["features"][0]
    props = feature["properties"]
    for name in ("name", "purpose", "drillingMethod", "drillingMethod_uri", "boreholeLength_m", "elevation_m",
                 "elevation_srs", "drillStartDate", "drillEndDate", "operator", "deposit", "inclinationType",
                 "boreholeMaterialCustodian"):
        assert name in props, name
    assert props["drillingMethod"] == "diamond core"
    assert props["drillingMethod_uri"].endswith("/diamond_core")
    assert feature["geometry"]["type"] == "Point" and len(feature["geometry"]["coordinates"]) == 3
    assert feature["geometry"]["coordinates"][2] == props["elevation_m"]
    assert feature["links"][0]["rel"] == "up" and "/collections/deposits/items/" in feature["links"][0]["href"]

    trace = http.get(f"/collections/drillcore-traces/items/{feature['id']}").json()
    assert trace["geometry"]["type"] == "LineString"
    coords = trace["geometry"]["coordinates"]
    assert len(coords) > 2 and all(len(c) == 3 for c in coords)
    assert coords[0] == feature["geometry"]["coordinates"]  # the trace starts at the collar
    assert coords[-1][2] < coords[0][2]  # and goes down


def test_plugs_deposits_and_vocabularies(http):
    plug = http.get("/collections/plugs/items", params={"limit": 1}).json()["features"][0]
    p = plug["properties"]
    assert {"from_m", "to_m", "sampleType", "sampleType_uri", "lithology", "lithology_uri", "drillcore"} <= set(p)
    assert p["from_m"] < p["depth_m"] < p["to_m"]
    assert plug["geometry"]["type"] == "Point" and len(plug["geometry"]["coordinates"]) == 3
    deposit = http.get("/collections/deposits/items").json()["features"][0]
    assert deposit["properties"]["commodities"] == "copper, molybdenum, gold"
    assert deposit["properties"]["occurrenceType_uri"].endswith("/deposit")
    assert deposit["geometry"]["type"] == "Polygon"
    minerals = http.get("/collections/vocab-mineral/items", params={"notation": "Ccp"}).json()
    assert minerals["numberReturned"] == 1
    assert minerals["features"][0]["geometry"] is None
    assert minerals["features"][0]["properties"]["prefLabel"] == "chalcopyrite"
    lith = http.get("/collections/vocab-lithology/items", params={"narrowerOf": "igneous rock", "limit": 500}).json()
    assert lith["numberReturned"] > 20
    assert all(f["properties"]["scheme"] == "lithology" for f in lith["features"])


def test_roxels_grains_and_rocks_name_their_fractions(http):
    page = http.get("/collections/roxels/items", params={"filter": "row = 0 AND col <= 1"}).json()["features"]
    first, roxel = sorted(page, key=lambda f: f["properties"]["pixelWindow"][1])  # cols 0 and 1
    r = roxel["properties"]
    assert set(r) == {"roxel_id", "run_id", "plug_id", "depth_m", "dominantClass", "dominantGrain_id", "composition",
                      "pixelWindow", "imageRegion"}  # a page's lean default
    assert r["roxel_id"] == roxel["id"]
    assert r["composition"] == {"Ccp": 0.13, "Qz": 0.77, "pore-epoxy": 0.1}
    assert first["properties"]["composition"] == {"Qz": 0.9, "pore-epoxy": 0.1}  # zero fractions left out
    assert r["dominantClass"] == "Qz"
    assert r["pixelWindow"] == [0, 16, 16, 16]
    assert r["depth_m"] > 0 and len(roxel["geometry"]["coordinates"]) == 3
    # everything else on request, and the whole record as an item
    full = http.get(f"/collections/roxels/items/{roxel['id']}").json()["properties"]
    assert {k: full[k] for k in r} == r
    assert full["dominantClass_uri"] == "https://w3id.org/mis/vocab/mineral/quartz"
    assert full["dominantClassName"] == "quartz" and full["zarrStore"].endswith(".zarr") and full["zarrArray"] == "0"
    assert full["chunkKey"] == "c/0/0/0"
    assert {"image_id", "drillcore_id", "drillcore", "row", "col", "dominantFraction"} <= set(full)
    asked = http.get("/collections/roxels/items", params={
        "filter": "row = 0 AND col = 1", "properties": "dominantClass_uri,zarrStore,drillcore"}).json()["features"][0]
    assert asked["id"] == roxel["id"] and asked["properties"] == {
        "dominantClass_uri": full["dominantClass_uri"], "zarrStore": full["zarrStore"], "drillcore": full["drillcore"]}
    hole = full["drillcore"]
    of_hole = http.get("/collections/roxels/items", params={
        "filter": f"drillcore = '{hole}' AND depth_m BETWEEN 0 AND 10000", "limit": 10}).json()
    assert of_hole["features"] and all(f["properties"]["plug_id"] == full["plug_id"] for f in of_hole["features"])
    no_hole = http.get("/collections/roxels/items", params={"filter": "drillcore = 'no-such-hole'"})
    assert no_hole.json()["features"] == []
    last = http.get("/collections/roxels/items", params={"filter": f"row = {ROXEL_GRID - 1} AND col = 17",
                                                         "properties": "chunkKey"}).json()
    assert last["features"][0]["properties"]["chunkKey"] == "c/0/3/1"

    grains = http.get("/collections/grains/items",
                      params={"filter": "mineral = 'Ccp' AND area_um2 > 100", "limit": 100}).json()
    expected = [g for g in range(1, N_GRAINS + 1) if g % 3 == 0 and g * 5 + (g > 20) / 4 > 100]
    assert grains["numberReturned"] == len(expected)
    assert all(f["properties"]["mineralName"] == "chalcopyrite" for f in grains["features"])
    rock = http.get("/collections/rocks/items").json()["features"][0]["properties"]
    assert rock["composition"] == {"Ccp": 0.12, "Qz": 0.6}
    assert rock["lithology"] == "porphyry"


def test_keyset_paging_gives_every_feature_exactly_once(http, api_db):
    features, pages = follow(http, "/collections/roxels/items", {"limit": 500})
    ids = [f["id"] for f in features]
    assert len(ids) == ROXEL_GRID ** 2 == len(set(ids)) == count(api_db, "SELECT count(*) FROM roxel")
    assert pages == 9  # 8 full pages and a last partial one: no empty page at the end
    first = http.get("/collections/roxels/items", params={"limit": 500}).json()
    nxt = [link["href"] for link in first["links"] if link["rel"] == "next"][0]
    assert "cursor=" in nxt and "offset=" not in nxt
    # offset still works, and the next link it gets continues with a cursor
    page = http.get("/collections/roxels/items", params={"limit": 100, "offset": 4000}).json()
    assert [f["id"] for f in page["features"]] == ids[4000:4100]
    # filters survive in the next links
    filtered, _ = follow(http, "/collections/roxels/items", {"limit": 300, "dominantClass": "Ccp"})
    assert filtered and all(f["properties"]["dominantClass"] == "Ccp" for f in filtered)
    assert len(filtered) == count(api_db, "SELECT count(*) FROM roxel x JOIN concept c ON c.id = x.dominant_class_id "
                                          "WHERE c.notation = 'Ccp'")
    # a big table gets no count(*); a small one does
    assert "numberMatched" not in first or first["numberMatched"] == ROXEL_GRID ** 2


def test_bbox_on_points_is_exact_and_pages_like_st_intersects(http, api_db):
    """Roxels are points: their bbox is the index (&&) plus exact x/y ranges, which must give
    what ST_Intersects gives, edges included, through filters, offsets and cursors."""
    import psycopg

    from tests.test_api_support import libpq

    with psycopg.connect(libpq(api_db)) as conn:
        x0, y0, x1, y1 = conn.execute("SELECT ST_X(position), ST_Y(position), ST_X(position) + 20e-7, "
                                      "ST_Y(position) + 10e-7 FROM roxel WHERE row = 3 AND col = 5").fetchone()

        def truth(box, where="true"):
            return [r[0] for r in conn.execute(
                f"SELECT x.id FROM roxel x JOIN concept c ON c.id = x.dominant_class_id WHERE {where} AND "
                "ST_Intersects(x.position, ST_MakeEnvelope(%s, %s, %s, %s, 4326)) ORDER BY x.id", box)]

        edges = (x0, y0, x1, y1)  # points on all four edges: a closed box
        expected = truth(edges)
        assert len(expected) >= 20 * 10  # cols 5..25 x rows 3..13 (the far edges up to rounding)
        got, _ = follow(http, "/collections/roxels/items", {"bbox": ",".join(map(repr, edges)), "limit": 50})
        assert [f["id"] for f in got] == expected
        inside = (x0 + 1e-9, y0 + 1e-9, x1 - 1e-9, y1 - 1e-9)  # just inside: the edge rows and columns go
        got, _ = follow(http, "/collections/roxels/items", {"bbox": ",".join(map(repr, inside)), "limit": 1000})
        assert [f["id"] for f in got] == truth(inside) and 0 < len(got) < len(expected)
        ccp = truth(edges, "c.notation = 'Ccp'")
        page = http.get("/collections/roxels/items", params={
            "bbox": ",".join(map(repr, edges)), "dominantClass": "Ccp", "offset": 3, "limit": 5}).json()
        assert [f["id"] for f in page["features"]] == ccp[3:8]
        by_depth = http.get("/collections/roxels/items", params={
            "bbox": ",".join(map(repr, edges)), "sortby": "-depth_m", "offset": 2, "limit": 4}).json()["features"]
        depths = [f["properties"]["depth_m"] for f in by_depth]
        assert len(by_depth) == 4 and depths == sorted(depths, reverse=True)


def test_hierarchy_filter_by_query_parameter_and_cql(http, api_db):
    from sqlalchemy.orm import Session

    from mis.catalogue.session import get_engine
    from mis.vocab.lookup import narrower

    with Session(get_engine(api_db)) as session:
        igneous = set(narrower(session, "http://resource.geosciml.org/classifier/cgi/lithology/igneous_rock"))
    everything = http.get("/collections/plugs/items", params={"limit": 100}).json()["features"]
    expected = {f["id"] for f in everything if f["properties"]["lithology_uri"] in igneous}
    assert expected and len(expected) < len(everything)  # the sample has igneous and other rocks
    by_param = http.get("/collections/plugs/items", params={"lithology_broader": "igneous rock", "limit": 100}).json()
    assert {f["id"] for f in by_param["features"]} == expected
    by_uri = http.get("/collections/plugs/items", params={
        "lithology_broader": "http://resource.geosciml.org/classifier/cgi/lithology/igneous_rock", "limit": 100}).json()
    assert {f["id"] for f in by_uri["features"]} == expected
    by_cql = http.get("/collections/plugs/items", params={
        "filter": "lithology_broader = 'igneous rock' AND depth_m > 100", "limit": 100}).json()
    assert {f["id"] for f in by_cql["features"]} == {
        f["id"] for f in everything if f["id"] in expected and f["properties"]["depth_m"] > 100}
    unknown = http.get("/collections/plugs/items", params={"lithology_broader": "igneus rock"})
    assert unknown.status_code == 400 and "did you mean" in unknown.json()["description"]


def test_part1_and_part2_parameters(http):
    some = http.get("/collections/plugs/items", params={"properties": "name,depth_m", "skipGeometry": "true",
                                                        "sortby": "-depth_m", "limit": 5}).json()
    depths = [f["properties"]["depth_m"] for f in some["features"]]
    assert depths == sorted(depths, reverse=True)
    assert set(some["features"][0]["properties"]) == {"name", "depth_m"}
    assert some["features"][0]["geometry"] is None
    assert any(link["rel"] == "next" and "offset=5" in link["href"] for link in some["links"])
    hits = http.get("/collections/plugs/items", params={"resulttype": "hits"}).json()
    assert hits["numberMatched"] == 36 and hits["features"] == []
    assert http.get("/collections/plugs/items", params={"f": "html"}).status_code == 200
    assert http.get("/collections/drillcores/items/1", params={"f": "html"}).status_code == 200

    lonlat = http.get("/collections/drillcores/items/1").json()["geometry"]["coordinates"]
    utm = http.get("/collections/drillcores/items/1",
                   params={"crs": "http://www.opengis.net/def/crs/EPSG/0/32719"})
    assert utm.status_code == 200 and "32719" in utm.headers["content-crs"]
    x, y, z = utm.json()["geometry"]["coordinates"]
    assert 400_000 < x < 600_000 and 7_400_000 < y < 7_500_000 and z == lonlat[2]
    latlon = http.get("/collections/drillcores/items/1",
                      params={"crs": "http://www.opengis.net/def/crs/EPSG/0/4326"}).json()
    assert latlon["geometry"]["coordinates"][:2] == pytest.approx([lonlat[1], lonlat[0]])
    # bbox in the UTM zone around that collar finds it
    box = f"{x - 50},{y - 50},{x + 50},{y + 50}"
    found = http.get("/collections/drillcores/items", params={
        "bbox": box, "bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/32719"}).json()
    assert [f["id"] for f in found["features"]] == [1]
    plain = http.get("/collections/drillcores/items", params={"bbox": f"{lonlat[0] - 1e-4},{lonlat[1] - 1e-4},"
                                                                      f"{lonlat[0] + 1e-4},{lonlat[1] + 1e-4}"}).json()
    assert [f["id"] for f in plain["features"]] == [1]
    spatial = http.get("/collections/drillcores/items", params={
        "filter": f"S_INTERSECTS(geom, POLYGON(({lonlat[0] - 1e-4} {lonlat[1] - 1e-4}, {lonlat[0] + 1e-4} "
                  f"{lonlat[1] - 1e-4}, {lonlat[0] + 1e-4} {lonlat[1] + 1e-4}, {lonlat[0] - 1e-4} "
                  f"{lonlat[1] + 1e-4}, {lonlat[0] - 1e-4} {lonlat[1] - 1e-4})))"}).json()
    assert [f["id"] for f in spatial["features"]] == [1]
    dated = http.get("/collections/drillcores/items", params={"datetime": "2025-03-01/2025-04-30"}).json()
    assert {f["properties"]["name"] for f in dated["features"]} == {"QA-001", "QA-002"}
    standard = http.get("/collections/plugs/items", params={"filter": "depth_m > 300", "filter-lang": "cql2-text"})
    assert standard.status_code == 200 and standard.json()["features"]
    cql2_json = http.post("/collections/plugs/items", params={"filter-lang": "cql2-json"},
                          json={"op": ">", "args": [{"property": "depth_m"}, 300]},
                          headers={"Content-Type": "application/query-cql-json"})
    assert cql2_json.status_code == 200, cql2_json.text
    assert {f["id"] for f in cql2_json.json()["features"]} == {f["id"] for f in standard.json()["features"]}
    depth = http.get("/collections/plugs/items", params={"filter": "depth_m BETWEEN 100 AND 200", "limit": 100}).json()
    assert depth["features"] and all(100 <= f["properties"]["depth_m"] <= 200 for f in depth["features"])


# --------------------------------------------------------------------------- hostile input
HOSTILE = [
    ("/collections/plugs/items", {"filter": "name = 'x'; DROP TABLE plug; --"}),
    ("/collections/plugs/items", {"filter": "1=1) OR (1=1"}),
    ("/collections/plugs/items", {"filter": "pg_sleep(5) = 1"}),
    ("/collections/plugs/items", {"filter": "depth_m >>> 3"}),
    ("/collections/plugs/items", {"filter": "nosuchproperty = 3"}),
    ("/collections/plugs/items", {"filter": "depth_m > 'abc'"}),
    ("/collections/plugs/items", {"filter": "S_INTERSECTS(geom, POLYGON((0 0, 1 1)))"}),
    ("/collections/plugs/items", {"filter": "lithology_broader > 'igneous rock'"}),
    ("/collections/plugs/items", {"filter-lang": "sql", "filter": "depth_m > 1"}),
    ("/collections/plugs/items", {"limit": "10000000000000"}),
    ("/collections/plugs/items", {"limit": "-1"}),
    ("/collections/plugs/items", {"limit": "1e9"}),
    ("/collections/plugs/items", {"offset": "-5"}),
    ("/collections/plugs/items", {"bbox": "a,b,c,d"}),
    ("/collections/plugs/items", {"bbox": "1,2,3"}),
    ("/collections/plugs/items", {"bbox": "1,2,3,4,5"}),
    ("/collections/plugs/items", {"bbox": "10,10,0,0"}),
    ("/collections/plugs/items", {"bbox": "1,2,3,4", "bbox-crs": "EPSG:99999"}),
    ("/collections/plugs/items", {"crs": "http://www.opengis.net/def/crs/EPSG/0/99999"}),
    ("/collections/plugs/items", {"depth_m": "deep"}),
    ("/collections/plugs/items", {"cursor": "1 OR 1=1"}),
    ("/collections/plugs/items", {"sortby": ""}),
    ("/collections/plugs/items", {"sortby": "name;DROP TABLE plug"}),
    ("/collections/plugs/items", {"properties": "name,\"; DROP"}),
    ("/collections/plugs/items", {"datetime": "yesterday"}),
    ("/collections/drillcores/items", {"datetime": "2025-13-45"}),
    ("/collections/surveys/items", {"bbox": "0,0,1,1"}),
    ("/collections/plugs/items", {"f": "xml"}),
]


@pytest.mark.parametrize("path,params", HOSTILE, ids=[f"{p.split('/')[2]}-{list(q.items())[-1][0]}-{i}"
                                                      for i, (p, q) in enumerate(HOSTILE)])
def test_hostile_input_is_a_400_never_a_500(http, path, params):
    response = http.get(path, params=params)
    assert response.status_code == 400, (params, response.status_code, response.text[:300])
    assert "Traceback" not in response.text and "psycopg" not in response.text
    assert "SELECT" not in response.text


@pytest.mark.parametrize("params", [
    {"filter": "(" * 5000 + "depth_m > 1" + ")" * 5000},
    {"filter": "depth_m > 1" + " AND depth_m > 1" * 2000},
    {"filter": "name LIKE lower('x')"},
    {"limit": "10000"},
])
def test_odd_but_legal_input_is_never_a_500(http, params):
    response = http.get("/collections/plugs/items", params=params)
    assert response.status_code in (200, 400), (response.status_code, response.text[:300])
    assert "Traceback" not in response.text


def test_hostile_values_are_data_not_sql(http, api_db):
    before = count(api_db, "SELECT count(*) FROM plug")
    for value in ("' OR 1=1 --", "x'); DROP TABLE plug; --", "\\x00", "%", "_"):
        r = http.get("/collections/plugs/items", params={"name": value})
        assert r.status_code == 200 and r.json()["numberReturned"] == 0
    for ident in ("abc", "1 OR 1=1", "99999999999999999999", "-1"):
        r = http.get(f"/collections/plugs/items/{ident}")
        assert r.status_code == 404, (ident, r.text)
    assert http.get("/collections/nosuch/items").status_code == 404
    assert count(api_db, "SELECT count(*) FROM plug") == before
    assert json.loads(http.get("/collections/plugs/items", params={"limit": 10000}).text)["numberReturned"] == before


def test_generated_configuration_holds_the_filled_template(live):
    config = yaml.safe_load((live.token_file.parent / "pygeoapi-config.generated.yml").read_text())
    assert config["server"]["url"] == live.url
    assert not config["server"]["ogc_schemas_location"].startswith("http")
    prov = config["resources"]["plugs"]["providers"][0]
    assert prov["data"]["search_path"] == ["pub", "public"] and prov["data"]["dbname"]
    assert (live.token_file.parent / "pygeoapi-config.generated.yml").stat().st_mode & 0o077 == 0


# --------------------------------------------------------------------------- what real clients need
def _typed(text: str):
    """JSON with every integer literal kept apart (``("int", "10")``), so that a real written
    as ``10`` cannot pass for ``10.0``."""
    return json.loads(text, parse_int=lambda s: ("int", s))


@pytest.mark.parametrize("cid", list(load_template()["resources"]))
def test_every_value_has_its_schema_type(http, cid):
    """QGIS types a field from the first page it reads: a real column must never be written
    as an integer (``"area_um2": 29424``), or later non-integral values are lost. Every
    property of every feature (page and item) has the JSON type of its schema entry."""
    schema = http.get(f"/collections/{cid}/schema", params={"f": "json"}).json()["properties"]
    queryables = http.get(f"/collections/{cid}/queryables", params={"f": "json"}).json()["properties"]
    names = [n for n in schema if n != "geometry"]
    page = http.get(f"/collections/{cid}/items", params={"limit": 10000, "properties": ",".join(
        n for n in names if not n.endswith("_broader") and n != "narrowerOf")})
    assert page.status_code == 200, page.text[:300]
    features = _typed(page.text)["features"]
    assert features, cid
    item = http.get(f"/collections/{cid}/items/{features[-1]['id'][1]}")
    seen: dict[str, set[str]] = {}
    for feature in [*features, _typed(item.text)]:
        for name, value in feature["properties"].items():
            kind = ("null" if value is None else "integer" if isinstance(value, tuple) else
                    "number" if isinstance(value, float) else "string" if isinstance(value, str) else
                    "boolean" if isinstance(value, bool) else "array" if isinstance(value, list) else "object")
            seen.setdefault(name, set()).add(kind)
    for name, kinds in seen.items():
        expected = schema[name]["type"]
        assert queryables[name]["type"] == expected, (cid, name)
        assert kinds - {"null"} <= {expected}, (cid, name, expected, kinds)
    reals = [n for n in seen if schema[n]["type"] == "number" and seen[n] != {"null"}]
    if cid in ("grains", "surveys", "plugs", "drillcores", "roxels"):
        assert reals, cid  # the test sees real columns, whole values among them (area 5.0, depth 0.0)


@pytest.mark.parametrize("value,names", [
    ("2025-03-01/2025-04-30", {"QA-001", "QA-002"}),
    ("2025-09-01/2025-12-31", set()),                       # a range with no data: empty, not a 400
    ("0000-01-01T00:00:00Z/2025-03-31T23:59:59Z", {"QA-001"}),  # QGIS 3.22's open start
    ("../2025-03-31", {"QA-001"}),
    ("/2025-03-31", {"QA-001"}),
    ("2025-07-01T00:00:00+02:00/..", None),
    ("1900-01-01/1900-12-31", set()),
    ("2025-03-01", {"QA-001"}),
    ("2025-03-01T10:15:00.123456789Z", {"QA-001"}),
    ("2025-03-01t10:15:00z", {"QA-001"}),
    ("0000-01-01T00:00:00Z", set()),
    ("../..", None),
])
def test_any_rfc3339_datetime_is_answered(http, value, names):
    response = http.get("/collections/drillcores/items", params={"datetime": value, "limit": 100})
    assert response.status_code == 200, response.text
    got = {f["properties"]["name"] for f in response.json()["features"]}
    if names is not None:
        assert got == names, value
    traces = http.get("/collections/drillcore-traces/items", params={"datetime": value, "limit": 100})
    assert traces.status_code == 200 and {f["properties"]["name"] for f in traces.json()["features"]} == got


@pytest.mark.parametrize("value", ["yesterday", "2025-13-45", "2025-02-30", "2025-05-01/2025-01-01",
                                   "2025-01-01/2025-02-01/2025-03-01", "2025-03-01T25:00:00Z", "20250301"])
def test_a_datetime_that_is_not_rfc3339_is_a_400(http, value):
    response = http.get("/collections/drillcores/items", params={"datetime": value})
    assert response.status_code == 400 and "datetime" in response.json()["description"], response.text


def test_links_compose_and_features_are_geojson(http, live):
    """GDAL appends ``/{id}`` to the items link: it must carry no query (``?f=json``)."""
    for body in (http.get("/collections", params={"f": "json"}).json()["collections"],
                 [http.get("/collections/drillcores", params={"f": "json"}).json()]):
        for collection in body:
            items = [link for link in collection["links"] if link["rel"] == "items"]
            geojson = [link["href"] for link in items if link["type"] == "application/geo+json"]
            assert geojson == [f"{live.url}/collections/{collection['id']}/items"]
            assert any(link["href"].endswith("?f=html") for link in items)  # the others keep theirs
            one = http.get(geojson[0] + "/1", headers={"Accept": "application/geo+json"})
            assert one.status_code in (200, 404), one.text
    page = http.get("/collections/plugs/items", params={"limit": 1})
    item = http.get("/collections/plugs/items/1")
    for response in (page, item):
        assert response.headers["content-type"].startswith("application/geo+json"), response.headers
    missing = http.get("/collections/plugs/items/999999")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/json")
    assert http.get("/collections/plugs", params={"f": "json"}).headers["content-type"].startswith("application/json")


def test_openapi_shares_the_limit_parameter(http):
    """QGIS reads page sizes from #/components/parameters/limit only."""
    spec = http.get("/openapi", params={"f": "json"}).json()
    limit = spec["components"]["parameters"]["limit"]
    assert limit["schema"]["maximum"] == 10000 and limit["schema"]["default"] == 100 and limit["in"] == "query"
    for path, item in spec["paths"].items():
        if path.endswith("/items"):
            params = item["get"]["parameters"]
            assert {"$ref": "#/components/parameters/limit"} in params, path
            assert not any(p.get("name") == "limit" for p in params), path


def test_extents_are_where_the_data_is(http, api_db):
    collections = {c["id"]: c for c in http.get("/collections", params={"f": "json"}).json()["collections"]}
    with_grains = count(api_db, "SELECT count(DISTINCT i.plug_id) FROM grain g JOIN segmentation_run r "
                                "ON r.id = g.run_id JOIN image i ON i.id = r.image_id")
    assert with_grains == 1
    x, y = [float(v) for v in count(api_db, "SELECT ST_X(p.position) || ' ' || ST_Y(p.position) FROM plug p "
                                            "JOIN image i ON i.plug_id = p.id LIMIT 1").split()]
    box = collections["grains"]["extent"]["spatial"]["bbox"][0]
    assert box == pytest.approx([x - 1e-4, y - 1e-4, x + 1e-4, y + 1e-4], abs=2e-6)  # one plug: its point
    deposit = collections["deposits"]["extent"]["spatial"]["bbox"][0]
    assert (box[2] - box[0]) < (deposit[2] - deposit[0]) / 100
    for cid in ("drillcores", "drillcore-traces"):
        temporal = collections[cid]["extent"]["temporal"]
        assert temporal["interval"] == [["2025-03-01T00:00:00+00:00", "2025-08-01T23:59:59+00:00"]], cid
        assert temporal["trs"].endswith("/Gregorian")


def test_grains_and_roxels_link_to_their_pixels(http, live):
    """A grain's and a roxel's imageRegion is the IIIF Image API request of its pixels."""
    grain = http.get("/collections/grains/items/3").json()["properties"]
    # outline: a 3 um buffer around (30, 30) um, 1.5 um pixels, pixel centres at index * size
    assert grain["pixelWindow"] == [18, 18, 5, 5]  # pixels 18..22: centres 27..33 um
    assert grain["imageRegion"] == f"{live.url}/iiif/3/{grain['image_id']}/18,18,5,5/max/0/default.png"
    queryables = http.get("/collections/grains/queryables", params={"f": "json"}).json()["properties"]
    assert queryables["imageRegion"]["format"] == "uri"
    roxel = http.get("/collections/roxels/items", params={"filter": f"row = {ROXEL_GRID - 1} AND col = 17"}).json()
    props = roxel["features"][0]["properties"]
    y, x, h, w = props["pixelWindow"]
    assert props["imageRegion"].endswith(f"/iiif/3/1/{x},{y},{w},{h}/max/0/default.png") and (y, x) == (1008, 272)
    plug = http.get("/collections/plugs/items/1").json()["properties"]
    assert plug["iiifManifest"] == f"{live.url}/iiif/presentation/plug/1/manifest.json"
    assert http.get("/collections/plugs/items/2").json()["properties"]["iiifManifest"] is None  # no images


def test_plug_manifests_are_on_the_map_and_in_drill_core_and_deposit_collections(http, live, api_db):
    """A plug's manifest: navPlace at the plug's point, seeAlso its OGC API feature, partOf
    its drill core's collection, a thumbnail, rights and a required statement; the drill
    core's collection lists its imaged plugs by depth, the deposit's its drill cores."""
    plug = http.get("/collections/plugs/items/1").json()
    manifest = http.get("/iiif/presentation/plug/1/manifest.json")
    assert manifest.status_code == 200 and manifest.headers["access-control-allow-origin"] == "*"
    doc = manifest.json()
    assert doc["@context"][0] == "http://iiif.io/api/extension/navplace/context.json"
    assert doc["@context"][-1] == "http://iiif.io/api/presentation/3/context.json"
    point = doc["navPlace"]["features"][0]["geometry"]
    assert point["type"] == "Point" and point["coordinates"] == pytest.approx(plug["geometry"]["coordinates"])
    assert doc["seeAlso"][0]["id"] == f"{live.url}/collections/plugs/items/1"
    assert doc["seeAlso"][0]["format"] == "application/geo+json"
    assert http.get(doc["seeAlso"][0]["id"]).json()["properties"]["iiifManifest"] == doc["id"]
    assert doc["thumbnail"][0]["id"].startswith(f"{live.url}/iiif/3/") and doc["thumbnail"][0]["type"] == "Image"
    assert doc["rights"] == "http://creativecommons.org/licenses/by/4.0/"
    assert "CC-BY 4.0" in doc["requiredStatement"]["value"]["en"][0]
    collection_url = doc["partOf"][0]["id"]
    hole = http.get(collection_url).json()
    assert hole["type"] == "Collection" and hole["label"]["none"] == ["Drill core QA-001"]
    imaged = count(api_db, "SELECT count(DISTINCT plug_id) FROM image i JOIN plug p ON p.id = i.plug_id "
                           "WHERE p.drillcore_id = 1")
    assert [m["id"] for m in hole["items"]] == [doc["id"]] and len(hole["items"]) == imaged
    assert hole["items"][0]["thumbnail"][0]["id"].endswith("/full/!200,200/0/default.jpg")
    deposit = http.get(hole["partOf"][0]["id"]).json()
    assert [c["id"] for c in deposit["items"]] == [collection_url]
    # the grains are annotations of the image's canvas: a box and a text each, linked to the feature
    page_url = doc["items"][0]["annotations"][0]["id"]
    page = http.get(page_url).json()
    assert page["type"] == "AnnotationPage" and len(page["items"]) == N_GRAINS
    grain = http.get("/collections/grains/items/3").json()["properties"]
    y, x, h, w = grain["pixelWindow"]
    three = [a for a in page["items"] if a["seeAlso"][0]["id"].endswith("/collections/grains/items/3")]
    assert three[0]["target"] == f"{doc['items'][0]['id']}#xywh={x},{y},{w},{h}"
    assert three[0]["body"]["value"].startswith("Ccp (chalcopyrite) grain 3: 15.0 µm²")
    for path in ("/iiif/presentation/plug/2/canvas/1/grains.json", "/iiif/presentation/plug/1/canvas/x/grains.json",
                 "/iiif/presentation/drillcore/999/collection.json", "/iiif/presentation/deposit/0/collection.json",
                 "/iiif/presentation/drillcore/x/collection.json", "/iiif/presentation/plug/2/manifest.json"):
        assert http.get(path).status_code == 404, path


def test_building_an_app_leaves_the_process_environment_as_it_was(api_db, tmp_path, monkeypatch):
    """pygeoapi is configured through PYGEOAPI_CONFIG/PYGEOAPI_OPENAPI while its module loads;
    afterwards a key that was absent is absent again and one that was set keeps its value."""
    import os

    from mis.api.app import create_app

    monkeypatch.delenv("PYGEOAPI_CONFIG", raising=False)
    monkeypatch.setenv("PYGEOAPI_OPENAPI", "/elsewhere/openapi.yml")
    before = dict(os.environ)
    create_app(api_db, port=1, public_url="http://env.example:8080", state_dir=tmp_path / "state",
               token_file=tmp_path / "tokens.json")
    assert dict(os.environ) == before
