"""Each patch of pygeoapi in :mod:`mis.api.patches` is in effect on a running server, and
pygeoapi 0.21 as installed (a fresh copy of its module, unpatched) behaves the other way:
if a pygeoapi release makes a patch needless, its test here fails and says so."""

from __future__ import annotations

import asyncio
import copy
import importlib.util
import re
from types import ModuleType

import httpx
import pytest

from mis.api.patches import FILTER_CONFORMANCE
from tests.test_api_support import api_db, http, live  # noqa: F401 - fixtures

CQL2_TEXT = "S_INTERSECTS(geom, POLYGON((-180 -90, 180 -90, 180 90, -180 90, -180 -90)))"


def pristine(name: str) -> ModuleType:
    """A fresh copy of pygeoapi's module ``name`` as installed, with none of MIS's patches
    (loaded beside the real one, under another name, into no registry of modules)."""
    found = importlib.util.find_spec(name)
    assert found is not None and found.origin
    parent, _, leaf = name.rpartition(".")
    spec = importlib.util.spec_from_file_location(f"{parent}.mis_pristine_{leaf}", found.origin)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_keep_raw_headers_lets_the_provider_authorise_writes(http, live):
    """keep_raw_headers: a write with a valid token reaches the registration (a dry run
    answers 201); without the request's headers the provider would refuse every write."""
    from mis.api.auth import WriteRefused, authorise_write

    assert live.app.state.pygeoapi.APIRequest.__name__ == "MISRequest"
    body = {"type": "Feature", "geometry": None, "properties": {
        "name": "PATCH-1", "drillcore": "QA-001", "deposit": "Quebrada Azul", "from_m": 100.0, "to_m": 100.5,
        "sampleType": "thin section", "lithology": "andesite"}}
    r = http.post("/collections/plugs/items", params={"dry_run": "true"}, json=body,
                  headers={"Content-Type": "application/geo+json", "Authorization": f"Bearer {live.token('patch')}"})
    assert r.status_code == 201, r.text
    with pytest.raises(WriteRefused):  # what the provider would see of an unpatched APIRequest
        authorise_write(None, None)


def test_serve_through_mis_gives_the_provider_its_request(http, live):
    """serve_through_mis: a page's next link carries the provider's keyset cursor and the
    features come as PostgreSQL wrote them; called without the request (as pygeoapi
    alone calls it), the provider writes no next link at all."""
    from mis.api.provider import MISProvider

    r = http.get("/collections/plugs/items", params={"limit": 1})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    page = r.json()
    assert page["numberReturned"] == 1 and page["features"][0]["type"] == "Feature"
    assert any("cursor=" in link["href"] for link in page["links"] if link["rel"] == "next")
    provider_def = live.app.state.config["resources"]["plugs"]["providers"][0]
    alone = MISProvider(provider_def).query(limit=1)
    assert alone["numberReturned"] == 1 and "links" not in alone


def test_declare_filtering_declares_cql2(http):
    """declare_filtering: /conformance names Part 3 and CQL2; pygeoapi's own list does not."""
    declared = http.get("/conformance", params={"f": "json"}).json()["conformsTo"]
    assert set(FILTER_CONFORMANCE) <= set(declared)
    assert not set(FILTER_CONFORMANCE) & set(pristine("pygeoapi.api.itemtypes").CONFORMANCE_CLASSES_FEATURES)


def test_read_cql2_text_reads_cql2_function_names(http):
    """read_cql2_text: a CQL2 text filter (S_INTERSECTS) is answered; pygeoapi's ECQL
    parser cannot read it."""
    r = http.get("/collections/plugs/items", params={"filter": CQL2_TEXT, "limit": 1})
    assert r.status_code == 200, r.text
    assert r.json()["numberReturned"] == 1
    with pytest.raises(Exception):  # noqa: B017 - lark's UnexpectedToken, whatever its module
        pristine("pygeoapi.api.itemtypes").parse_ecql_text(CQL2_TEXT)


def test_accept_any_datetime_answers_intervals_outside_the_data(http, live):
    """accept_any_datetime: an interval before every drill core is an empty page;
    pygeoapi's check refuses it as out of the collection's temporal extent."""
    interval = "1900-01-01/1900-12-31"
    r = http.get("/collections/drillcores/items", params={"datetime": interval})
    assert r.status_code == 200, r.text
    assert r.json()["features"] == []
    extents = copy.deepcopy(live.app.state.config["resources"]["drillcores"]["extents"])
    assert "temporal" in extents
    with pytest.raises(ValueError):
        pristine("pygeoapi.api.itemtypes").validate_datetime(extents, interval)


def test_translate_config_per_app_renders_each_apps_url(live, api_db, tmp_path):
    """translate_config_per_app: two apps in one process (the module's server and this
    one) each link their HTML to their own URL; pygeoapi's cache, by locale alone, gives
    the second configuration the first's translation."""
    from babel import Locale

    from mis.api.app import create_app

    other = create_app(api_db, port=1, public_url="http://other.example:8080", state_dir=tmp_path / "state",
                       token_file=tmp_path / "tokens.json")

    async def landing() -> str:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=other), base_url="http://other.example:8080",
                                     timeout=60) as client:
            return (await client.get("/", params={"f": "html"})).text

    page = asyncio.run(landing())
    mine = httpx.get(f"{live.url}/?f=html", timeout=60).text
    assert set(re.findall(r'(https?://[^/"]+)/static/', page)) == {"http://other.example:8080"}
    assert set(re.findall(r'(https?://[^/"]+)/static/', mine)) == {live.url}
    l10n = pristine("pygeoapi.l10n")
    first, second = {"server": {"url": "http://a.example"}}, {"server": {"url": "http://b.example"}}
    en = Locale.parse("en")
    assert l10n.translate_struct(first, en, True)["server"]["url"] == "http://a.example"
    assert l10n.translate_struct(second, en, True)["server"]["url"] == "http://a.example"  # the first's
