"""OGC API - Features Part 4 over real HTTP: writes go through registration, need a token.

The same live server setup as ``test_api`` (its own database: this module writes).
"""

from __future__ import annotations

import json

import pytest

from tests.test_api_support import api_db, count, http, live  # noqa: F401 - fixtures

GEOJSON = {"Content-Type": "application/geo+json"}


def _auth(live) -> dict[str, str]:
    if not hasattr(live, "_write_token"):
        live._write_token = live.token("writer")
    return {**GEOJSON, "Authorization": f"Bearer {live._write_token}"}


def _plug(name: str, **props) -> dict:
    return {"type": "Feature", "geometry": None, "properties": {
        "name": name, "drillcore": "QA-001", "deposit": "Quebrada Azul", "from_m": 100.0, "to_m": 100.5,
        "sampleType": "thin section", "lithology": "andesite", **props}}


def test_writes_without_a_valid_token_get_401_and_write_nothing(http, live, api_db):
    before = count(api_db, "SELECT count(*) FROM plug")
    body = json.dumps(_plug("NOPE-1"))
    for headers in (GEOJSON, {**GEOJSON, "Authorization": "Bearer mis_00000000_wrong"},
                    {**GEOJSON, "Authorization": "Basic dXNlcjpwYXNz"}):
        r = http.post("/collections/plugs/items", content=body, headers=headers)
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert http.put("/collections/plugs/items/1", content=body, headers=GEOJSON).status_code == 401
    assert http.delete("/collections/plugs/items/1").status_code == 401
    assert http.post("/mis/register", json={"samples": []}).status_code == 401
    # GeoJSON with a charset parameter is still a write
    r = http.post("/collections/plugs/items", content=body,
                  headers={"Content-Type": "application/geo+json; charset=utf-8"})
    assert r.status_code == 401
    assert count(api_db, "SELECT count(*) FROM plug") == before
    # reads stay open, and a CQL2 JSON query by POST is a read
    r = http.post("/collections/plugs/items", content=json.dumps({"op": "=", "args": [{"property": "name"},
                                                                                      "QA-001-P01"]}),
                  headers={"Content-Type": "application/json"})
    assert r.status_code == 200 and r.json()["numberReturned"] == 1


def test_tokens_are_stored_hashed(live):
    token = live.token("auditor")
    stored = live.token_file.read_text()
    assert token.split("_", 2)[2] not in stored and "sha256" in stored
    assert live.token_file.stat().st_mode & 0o077 == 0


def test_post_put_delete_a_plug(http, live, api_db):
    r = http.post("/collections/plugs/items", content=json.dumps(_plug("API-P1")), headers=_auth(live))
    assert r.status_code == 201, r.text
    location = r.headers["location"]
    plug = http.get(location).json()
    assert plug["properties"]["name"] == "API-P1" and plug["properties"]["lithology"] == "andesite"
    assert plug["properties"]["sampleType_uri"].endswith("/thin-section")
    assert plug["geometry"]["type"] == "Point"  # placed on the trace by the registration service

    again = http.post("/collections/plugs/items", content=json.dumps(_plug("API-P1")), headers=_auth(live))
    assert again.status_code == 409

    changed = {**plug, "properties": {**plug["properties"], "lithology": "dacite", "lithology_uri": None}}
    r = http.put(location, content=json.dumps(changed), headers=_auth(live))
    assert r.status_code == 204, r.text
    assert http.get(location).json()["properties"]["lithology"] == "dacite"
    # a label edited next to a stale URI is refused, not silently ignored
    basalt = "http://resource.geosciml.org/classifier/cgi/lithology/basalt"
    stale = {**plug, "properties": {**plug["properties"], "lithology": "dacite", "lithology_uri": basalt}}
    r = http.put(location, content=json.dumps(stale), headers=_auth(live))
    assert r.status_code == 400 and "name different concepts" in r.json()["description"]
    assert http.get(location).json()["properties"]["lithology"] == "dacite"
    by_uri = {**plug, "properties": {**plug["properties"], "lithology": None, "lithology_uri": basalt}}
    assert http.put(location, content=json.dumps(by_uri), headers=_auth(live)).status_code == 204
    assert http.get(location).json()["properties"]["lithology"] == "basalt"
    # PUT replaces: what the body leaves out is cleared (optional) or refused (required)
    full = http.get(location).json()
    lean = {**full, "properties": {k: v for k, v in full["properties"].items()
                                   if k not in ("lithology", "lithology_uri")}}
    assert http.put(location, content=json.dumps(lean), headers=_auth(live)).status_code == 204
    assert http.get(location).json()["properties"]["lithology"] is None
    no_range = {**full, "properties": {k: v for k, v in full["properties"].items() if k != "to_m"}}
    r = http.put(location, content=json.dumps(no_range), headers=_auth(live))
    assert r.status_code == 400 and "to: interval depth missing" in r.json()["description"]

    renamed = {**plug, "properties": {**plug["properties"], "name": "API-P2"}}
    r = http.put(location, content=json.dumps(renamed), headers=_auth(live))
    assert r.status_code == 400 and "cannot change" in r.json()["description"]

    assert http.delete(location, headers=_auth(live)).status_code == 200
    assert http.get(location).status_code == 404
    assert http.delete(location, headers=_auth(live)).status_code == 404


def test_invalid_writes_get_the_registration_messages_and_write_nothing(http, live, api_db, tmp_path):
    from mis.catalogue.register import register

    before = count(api_db, "SELECT count(*) FROM plug")
    bad = _plug("API-BAD", from_m=390.0, to_m=450.0, lithology="andesitte")
    r = http.post("/collections/plugs/items", content=json.dumps(bad), headers=_auth(live))
    assert r.status_code == 400
    description = r.json()["description"]
    assert "interval beyond the end of hole" in description
    assert "did you mean" in description  # the vocabulary suggestion
    # the same messages as `mis register` gives for the same row
    cli = register([{"samples": [{"hole_id": "QA-001", "deposit": "Quebrada Azul", "sample_id": "API-BAD",
                                  "from": 390.0, "to": 450.0, "sample_type": "thin section",
                                  "lithology": "andesitte"}]}], url=api_db, dry_run=True)
    for finding in cli.errors:
        rule = finding.rule
        assert rule in description, rule
    assert count(api_db, "SELECT count(*) FROM plug") == before

    for body in ("not json", json.dumps([1, 2]), json.dumps({"type": "FeatureCollection", "features": []}),
                 json.dumps({"type": "Feature", "properties": "x"})):
        r = http.post("/collections/plugs/items", content=body, headers=_auth(live))
        assert r.status_code == 400, (body, r.text)
    r = http.post("/collections/roxels/items", content=json.dumps(_plug("X")), headers=_auth(live))
    assert r.status_code == 400  # not an editable collection
    assert count(api_db, "SELECT count(*) FROM plug") == before


def test_deposit_drillcore_with_surveys_then_cascade_delete(http, live, api_db):
    deposit = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[
        [-69.0, -23.0], [-68.99, -23.0], [-68.99, -22.99], [-69.0, -22.99], [-69.0, -23.0]]]},
        "properties": {"name": "API Deposit", "occurrenceType": "prospect", "commodities": "Cu, Au",
                       "country": "CL"}}
    r = http.post("/collections/deposits/items", content=json.dumps(deposit), headers=_auth(live))
    assert r.status_code == 201, r.text
    dep = http.get(r.headers["location"]).json()["properties"]
    assert dep["commodities"] == "copper, gold" and dep["occurrenceType"] == "prospect"

    hole = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [-68.995, -22.995, 3900.0]},
            "properties": {"name": "API-DH1", "deposit": "API Deposit", "boreholeLength_m": 200.0,
                           "dip_deg": -60.0, "azimuth_deg": 90.0, "drillingMethod": "diamond core",
                           "surveys": [{"depth_m": 0, "dip_deg": -60, "azimuth_deg": 90},
                                       {"depth_m": 100, "dip_deg": -58, "azimuth_deg": 92}]}}
    r = http.post("/collections/drillcores/items", content=json.dumps(hole), headers=_auth(live))
    assert r.status_code == 201, r.text
    hole_url = r.headers["location"]
    hole_id = int(hole_url.rsplit("/", 1)[1])
    core = http.get(hole_url).json()
    assert core["properties"]["elevation_m"] == 3900.0 and core["geometry"]["coordinates"][2] == 3900.0
    trace = http.get(f"/collections/drillcore-traces/items/{hole_id}").json()
    assert trace["properties"]["surveyCount"] == 2 and trace["geometry"]["type"] == "LineString"
    end_before = trace["geometry"]["coordinates"][-1]

    # one more survey station: the trace is recomputed by the registration service
    station = {"type": "Feature", "geometry": None,
               "properties": {"drillcore_id": hole_id, "depth_m": 150, "dip_deg": -50, "azimuth_deg": 100}}
    r = http.post("/collections/surveys/items", content=json.dumps(station), headers=_auth(live))
    assert r.status_code == 201, r.text
    trace = http.get(f"/collections/drillcore-traces/items/{hole_id}").json()
    assert trace["properties"]["surveyCount"] == 3 and trace["geometry"]["coordinates"][-1] != end_before
    station_url = r.headers["location"]
    assert http.delete(station_url, headers=_auth(live)).status_code == 200
    assert http.get(f"/collections/drillcore-traces/items/{hole_id}").json()["properties"]["surveyCount"] == 2

    plug = {"type": "Feature", "geometry": None, "properties": {
        "name": "API-DH1-P1", "drillcore_id": hole_id, "from_m": 50, "to_m": 51, "sampleType": "plug"}}
    assert http.post("/collections/plugs/items", content=json.dumps(plug), headers=_auth(live)).status_code == 201

    r = http.delete(hole_url, headers=_auth(live))
    assert r.status_code == 409 and "cascade=true" in r.json()["description"]
    assert http.get(hole_url).status_code == 200
    r = http.delete(hole_url, params={"cascade": "true"}, headers=_auth(live))
    assert r.status_code == 200, r.text
    assert http.get(hole_url).status_code == 404
    assert count(api_db, "SELECT count(*) FROM plug WHERE name = 'API-DH1-P1'") == 0


def test_bulk_registration_route(http, live, api_db):
    rows = {"samples": [{"HOLE_ID": "QA-002", "DEPOSIT": "Quebrada Azul", "SAMPLE_ID": f"BULK-{i}",
                         "FROM": 10 + i, "TO": 10.5 + i, "SAMPLE_TYPE": "plug"} for i in range(3)]}
    headers = {"Authorization": _auth(live)["Authorization"]}
    dry = http.post("/mis/register", params={"dry_run": "true"}, json=rows, headers=headers)
    assert dry.status_code == 200 and dry.json()["samples"]["added"] == 3 and not dry.json()["written"]
    assert count(api_db, "SELECT count(*) FROM plug WHERE name LIKE 'BULK-%'") == 0
    done = http.post("/mis/register", json=rows, headers=headers)
    assert done.status_code == 200 and done.json()["written"]
    assert count(api_db, "SELECT count(*) FROM plug WHERE name LIKE 'BULK-%'") == 3
    bad = http.post("/mis/register", json={"samples": [{"HOLE_ID": "QA-002", "SAMPLE_ID": "B", "FROM": 5, "TO": 1}]},
                    headers=headers)
    assert bad.status_code == 400 and "from must be less than to" in bad.json()["report"]


@pytest.mark.parametrize("method", ["post", "put"])
def test_dry_run_validates_without_writing(http, live, api_db, method):
    before = count(api_db, "SELECT count(*) FROM plug")
    body = json.dumps(_plug("DRY-1" if method == "post" else "QA-001-P01"))
    url = "/collections/plugs/items" if method == "post" else "/collections/plugs/items/1"
    r = getattr(http, method)(url, params={"dry_run": "true"}, content=body, headers=_auth(live))
    assert r.status_code in (201, 204), r.text
    assert count(api_db, "SELECT count(*) FROM plug") == before
    assert count(api_db, "SELECT count(*) FROM plug WHERE name = 'DRY-1'") == 0


def test_token_commands(tmp_path):
    """`mis token create/list/revoke` (cli_serve.token_app): the secret is shown once, kept hashed."""
    from typer.testing import CliRunner

    from mis.api.auth import TokenStore
    from mis.cli_serve import token_app

    runner = CliRunner()
    path = tmp_path / "tokens.json"
    created = runner.invoke(token_app, ["create", "alice", "--tokens", str(path)])
    assert created.exit_code == 0, created.output
    token = created.output.strip().splitlines()[-1]
    assert token.startswith("mis_") and token not in path.read_text()
    assert TokenStore(path).verify(token) == "alice"
    key_id = token.split("_")[1]
    listed = runner.invoke(token_app, ["list", "--tokens", str(path)])
    assert key_id in listed.output and "alice" in listed.output
    assert runner.invoke(token_app, ["revoke", key_id, "--tokens", str(path)]).exit_code == 0
    assert TokenStore(path).verify(token) is None
    assert runner.invoke(token_app, ["revoke", key_id, "--tokens", str(path)]).exit_code == 1
