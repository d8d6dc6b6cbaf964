"""QGIS (Debian ``qgis`` + ``python3-qgis``, 3.22) as the judge: its OGC API - Features
provider loads every collection of the live server headless, and loses nothing.

QGIS runs in its own process (``tests/qgis_client.py`` under ``/usr/bin/python3``: the
bindings are Debian's, not the virtualenv's). Compared with what the server's JSON says:
every attribute of every feature (QGIS types a field from the first page it reads: a
real written as an integer there makes later values NULL), geometry types with Z, field
types, counts, query parameters in the connection URL (what QGIS 3.22 sends to the
server: its own filter expressions are evaluated in QGIS after fetching every feature),
and a rendered map that is not blank.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mis.api.config import load_template
from tests.test_api_support import api_db, count, follow, http, live  # noqa: F401 - fixtures

QGIS_PYTHON = "/usr/bin/python3"
CLIENT = Path(__file__).with_name("qgis_client.py")
COLLECTIONS = list(load_template()["resources"])
#: The QGIS field type of each schema type (Integer64 where values exceed 32 bits).
QGIS_TYPES = {"integer": {"Integer", "Integer64"}, "number": {"Real"}, "string": {"String"},
              "boolean": {"Boolean"}, "object": {"JSON", "Map"}, "array": {"IntegerList", "RealList",
                                                                               "StringList", "JSON"}}
GEOMETRY = {"deposits": "Polygon", "drillcores": "PointZ", "drillcore-traces": "LineStringZ", "plugs": "PointZ",
            "rocks": "PointZ", "grains": "PointZ", "roxels": "PointZ", "surveys": "NoGeometry"}
OPEN_START = "0000-01-01T00:00:00Z/2025-03-31T23:59:59Z"  # what QGIS 3.22 writes for an open start
#: The property holding each collection's own feature id (QGIS shows no feature id).
OWN_ID = {"deposits": "deposit_id", "drillcores": "drillcore_id", "drillcore-traces": "drillcore_id",
          "surveys": "survey_id", "plugs": "plug_id", "rocks": "rock_id", "grains": "grain_id", "roxels": "roxel_id"}


def _qgis_missing() -> str | None:
    if not os.path.exists(QGIS_PYTHON):
        return f"{QGIS_PYTHON} not found"
    probe = subprocess.run([QGIS_PYTHON, "-c", "import qgis.core"], capture_output=True, text=True, check=False)
    return None if probe.returncode == 0 else "QGIS's Python bindings (Debian python3-qgis) are not installed"


pytestmark = pytest.mark.skipif(_qgis_missing() is not None, reason=str(_qgis_missing()))


@pytest.fixture(scope="module")
def qgis(live, tmp_path_factory) -> dict:
    """What QGIS made of every collection, and of three layers with connection-URL queries."""
    out = tmp_path_factory.mktemp("qgis")
    layers = [{"key": cid, "typename": cid} for cid in COLLECTIONS]
    layers += [{"key": "open-start", "typename": "drillcores", "query": f"/?datetime={OPEN_START}"},
               {"key": "no-data-dates", "typename": "drillcores", "query": "/?datetime=2025-09-01/2025-12-31"},
               {"key": "roxels-of-QA-001", "typename": "roxels", "query": "/?drillcore=QA-001"}]
    spec = {"url": live.url, "layers": layers,
            "render": {"keys": ["drillcore-traces", "plugs"], "png": str(out / "map.png"), "size": 256}}
    (out / "spec.json").write_text(json.dumps(spec))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(QT_QPA_PLATFORM="offscreen", XDG_RUNTIME_DIR=str(out), HOME=str(out))
    result = subprocess.run([QGIS_PYTHON, str(CLIENT), str(out / "spec.json"), str(out / "out.json")],
                            capture_output=True, text=True, timeout=600, env=env, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "out.json").read_text())
    report["png"] = out / "map.png"
    return report


def _same(server, client) -> bool:
    """A server value and QGIS's: equal, times to the millisecond (QDateTime's precision)."""
    if isinstance(server, str) and isinstance(client, str) and "T" in server and server[:4].isdigit():
        try:
            a = dt.datetime.fromisoformat(server.replace("Z", "+00:00"))
            b = dt.datetime.fromisoformat(client.replace("Z", "+00:00"))
        except ValueError:
            return server == client
        return abs(a - b) < dt.timedelta(milliseconds=1)
    return server == client


@pytest.mark.parametrize("cid", COLLECTIONS)
def test_qgis_loses_no_value(qgis, http, cid):
    layer = qgis["layers"][cid]
    assert layer["valid"], cid
    features, _pages = follow(http, f"/collections/{cid}/items", {"limit": 10000})
    assert layer["count"] == len(features) == len(layer["features"]), cid
    # QGIS 3.22 numbers the features it reads 1, 2, ... in the server's order, showing no
    # feature id: features are matched by that order, and each carries its id as a property
    ordered = [layer["features"][k] for k in sorted(layer["features"], key=int)]
    lost = []
    own = OWN_ID.get(cid, "concept_id")
    assert [got[own] for got in ordered] == [f["id"] for f in features], cid  # the server's id, an attribute
    for feature, got in zip(features, ordered, strict=True):
        for name, value in feature["properties"].items():
            if not _same(value, got.get(name)):
                lost.append((feature["id"], name, value, got.get(name)))
    assert lost == [], (cid, len(lost), lost[:5])


@pytest.mark.parametrize("cid", COLLECTIONS)
def test_qgis_types_fields_and_geometry_as_the_schema_says(qgis, http, cid):
    layer = qgis["layers"][cid]
    schema = http.get(f"/collections/{cid}/schema", params={"f": "json"}).json()["properties"]
    if cid in GEOMETRY:
        assert layer["geometry"] == GEOMETRY[cid] and layer["z"] == GEOMETRY[cid].endswith("Z"), cid
    else:
        assert layer["geometry"] == "NoGeometry", cid
    filled = {name for f in layer["features"].values() for name, v in f.items() if v is not None}
    for name, kind in layer["fields"].items():
        if name not in filled:
            continue  # a field with no value on QGIS's first page: QGIS cannot type it
        spec = schema[name]
        expected = ({"Date"} if spec.get("format") == "date" else {"DateTime"} if spec.get("format") == "date-time"
                    else QGIS_TYPES[spec["type"]])
        assert kind in expected, (cid, name, kind, spec)


def test_qgis_passes_connection_url_queries_to_the_server(qgis, api_db):
    layers = qgis["layers"]
    assert [f["name"] for f in layers["open-start"]["features"].values()] == ["QA-001"]
    assert layers["no-data-dates"]["count"] == 0
    expected = count(api_db, "SELECT count(*) FROM pub.roxels WHERE drillcore = 'QA-001'")
    assert expected > 0 and layers["roxels-of-QA-001"]["count"] == expected


def test_qgis_renders_a_map(qgis):
    assert qgis["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert qgis["rendered_pixels"] > 500  # six traces and 36 plugs on a white 256 x 256 map


def test_qgis_is_on_the_package_list():
    from tests.test_setup import debian_packages

    assert {"qgis", "python3-qgis"} <= set(debian_packages())
    assert shutil.which("qgis") or os.path.exists("/usr/bin/qgis")
