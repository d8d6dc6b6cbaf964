"""Property-based fuzzing (hypothesis): no input makes the IIIF parser, the CQL entry points
or a registration reader raise anything but their own refusal.

The parsers and readers are fuzzed in process (thousands of cases per second); the CQL
entry points over real HTTP against a live server (a few hundred requests), where the
rule is "a 4xx or a 200, never a 5xx".
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mis.catalogue.register.tables import KINDS, Table, read_csv_text, read_deposit_text
from mis.imagery import iiif
from mis.imagery.iiif import IIIFError
from tests.test_api_support import api_db, http, live  # noqa: F401 - fixtures

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HTTP = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

#: Pieces IIIF paths are made of, so that the fuzzer reaches the parsers' inner branches.
NUMBERISH = st.one_of(st.integers(-5, 10**12).map(str), st.text("0123456789.,:!^-+e_ \u0661\u00b2", max_size=12),
                      st.sampled_from(["9" * 400, "1" + "0" * 5000, "nan", "inf", "1e309"]))
SIZE = st.one_of(st.sampled_from(["max", "^max", "full", ""]),
                 st.builds(lambda p, a, b: f"{p}{a},{b}", st.sampled_from(["", "^", "!", "^!"]), NUMBERISH, NUMBERISH),
                 st.builds(lambda p, n: f"{p}pct:{n}", st.sampled_from(["", "^"]), NUMBERISH), st.text(max_size=20))
REGION = st.one_of(st.sampled_from(["full", "square"]),
                   st.builds(lambda p, *n: p + ",".join(n), st.sampled_from(["", "pct:"]),
                             NUMBERISH, NUMBERISH, NUMBERISH, NUMBERISH), st.text(max_size=20))


@FAST
@given(region=REGION, size=SIZE, rotation=st.one_of(NUMBERISH, st.text(max_size=8)),
       quality=st.one_of(st.sampled_from(["default.png", "gray.jpg", "color.webp", "bitonal.png"]),
                         st.text(max_size=12)),
       width=st.integers(1, 100_000), height=st.integers(1, 100_000))
def test_iiif_request_parsing_refuses_or_plans_within_limits(region, size, rotation, quality, width, height):
    limits = iiif.DEFAULT_LIMITS
    try:
        req = iiif.parse_image_request(region, size, rotation, quality, width, height, limits, ["png", "jpg"])
    except IIIFError as exc:
        assert exc.status in (400, 501)
        return
    assert 1 <= req.width <= limits.max_width and 1 <= req.height <= limits.max_height
    assert req.width * req.height <= limits.max_area
    assert req.width <= max(1, req.region.w * limits.max_upscale) + 1


@FAST
@given(identifier=st.one_of(st.text(max_size=30), NUMBERISH.map(lambda n: f"{n};bands={n}")),
       bands=st.one_of(st.none(), st.text(max_size=20), NUMBERISH))
def test_iiif_identifiers_and_bands(identifier, bands):
    try:
        iiif.parse_identifier(identifier)
    except IIIFError as exc:
        assert exc.status == 404
    try:
        iiif.parse_bands(bands, ["R", "G", "B"])
    except IIIFError as exc:
        assert exc.status == 400


CSV_CELL = st.one_of(st.text(max_size=12), NUMBERISH, st.sampled_from(["..", "a/b", "x\x00y", "", "NA", "1,5"]))
HEADERS = ["HOLE_ID", "SAMPLE_ID", "FROM", "TO", "EOH", "LON", "LAT", "Z", "X", "Y", "EPSG", "DEPTH", "DIP",
           "AZIMUTH", "DEPOSIT", "START_DATE", "LITHOLOGY", "\ufeffHOLE_ID", "???"]


@FAST
@given(header=st.lists(st.sampled_from(HEADERS), min_size=1, max_size=8),
       rows=st.lists(st.lists(CSV_CELL, max_size=9), max_size=6),
       separator=st.sampled_from([",", ";", "\t"]), junk=st.binary(max_size=40))
def test_csv_reader_turns_any_bytes_into_findings(header, rows, separator, junk):
    text = "\n".join(separator.join(r) for r in [header, *rows])
    for data in (text.encode("utf-8", "surrogatepass"), junk, text.encode("utf-8", "surrogatepass") + junk):
        table = read_csv_text(data, "fuzz.csv")
        assert isinstance(table, Table)
        for row in table.rows:
            for value in row.values.values():
                assert not isinstance(value, str) or "\x00" not in value


JSONISH = st.recursive(st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True), st.integers(),
                                 st.text(max_size=10)),
                       lambda children: st.one_of(st.lists(children, max_size=4),
                                                  st.dictionaries(st.text(max_size=8), children, max_size=4)),
                       max_leaves=20)


@FAST
@given(doc=st.one_of(JSONISH, st.dictionaries(st.sampled_from(["name", "footprint", "commodities", "country", "lon",
                                                               "lat", "type", "features", "deposits"]),
                                              JSONISH, max_size=6)),
       yaml_text=st.text(max_size=80))
def test_deposit_reader_turns_any_document_into_findings(doc, yaml_text):
    for data in (json.dumps(doc, allow_nan=True).encode(), yaml_text.encode("utf-8", "surrogatepass")):
        assert isinstance(read_deposit_text(data, "fuzz.yaml"), Table)


@FAST
@given(kind=st.sampled_from(KINDS), rows=st.lists(st.one_of(
    st.dictionaries(st.sampled_from(HEADERS + ["name", "footprint"]), JSONISH, max_size=6), JSONISH), max_size=4))
def test_parsed_rows_become_a_table_or_a_value_error(kind, rows):
    try:
        assert isinstance(Table.from_rows(kind, rows, "fuzz"), Table)
    except ValueError as exc:
        assert "is not an object" in str(exc)


CQL_TEXT = st.one_of(
    st.text(max_size=40),
    st.builds(lambda p, op, v: f"{p} {op} {v}", st.sampled_from(["name", "depth_m", "lithology_broader", "nosuch",
                                                                  "S_INTERSECTS(geom", "id"]),
              st.sampled_from(["=", "<", "LIKE", "IN", "BETWEEN", "IS NULL", "AND", ")"]),
              st.one_of(NUMBERISH, st.text(max_size=10).map(repr), st.just("POINT(1 2))"))))
CQL_JSON = st.recursive(
    st.one_of(st.integers(), st.text(max_size=6), st.fixed_dictionaries({"property": st.sampled_from(
        ["name", "depth_m", "nosuch", "lithology_broader"])})),
    lambda children: st.fixed_dictionaries({"op": st.sampled_from(["=", "and", "or", "not", "<", "like", "in",
                                                                   "s_intersects", "between", "isNull", "x"]),
                                            "args": st.lists(children, max_size=3)}),
    max_leaves=8)


@HTTP
@given(filter_text=CQL_TEXT, sortby=st.one_of(st.none(), st.text(max_size=10)), limit=st.one_of(st.none(), NUMBERISH))
def test_cql_text_and_paging_parameters_over_http(http, filter_text, sortby, limit):
    params = {"filter": filter_text, "f": "json"}
    if sortby is not None:
        params["sortby"] = sortby
    if limit is not None:
        params["limit"] = limit
    r = http.get("/collections/plugs/items", params=params)
    assert r.status_code < 500, (params, r.status_code, r.text[:300])


@HTTP
@given(body=st.one_of(CQL_JSON, JSONISH))
def test_cql_json_bodies_over_http(http, body):
    r = http.post("/collections/plugs/items", content=json.dumps(body), headers={"Content-Type": "application/json"})
    assert r.status_code < 500, (body, r.status_code, r.text[:300])


@pytest.mark.parametrize("text", ["name = 'x'" + " AND name = 'x'" * 300, "NOT " * 300 + "name = 'x'"])
def test_very_deep_cql_is_a_400(http, text):
    r = http.get("/collections/plugs/items", params={"filter": text, "f": "json"})
    assert r.status_code in (200, 400), r.text[:300]
