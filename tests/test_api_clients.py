"""Real clients against the live server: owslib (modellers), GDAL's OAPIF driver (QGIS
users' tools), schemathesis (the OpenAPI document), and `mis serve` as a process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import httpx
import pytest

from mis.api.config import load_template
from tests.test_api_support import ROXEL_GRID, api_db, count, http, live  # noqa: F401 - fixtures

COLLECTIONS = list(load_template()["resources"])
#: SQL counting what each collection publishes (views of schema pub).
COUNTS = {cid: (f"SELECT count(*) FROM pub.{res['providers'][0]['table']}"
                + (f" WHERE scheme = '{res['providers'][0]['mis']['scheme']}'"
                   if (res["providers"][0].get("mis") or {}).get("scheme") else ""))
          for cid, res in load_template()["resources"].items()}


def test_owslib_reads_every_collection(live, api_db):
    from owslib.ogcapi.features import Features

    api = Features(live.url)
    ids = [c["id"] for c in api.collections()["collections"]]
    assert ids == COLLECTIONS
    for cid in COLLECTIONS:
        assert api.collection(cid)["title"]
        queryables = api.collection_queryables(cid)
        assert queryables["properties"], cid
        items = api.collection_items(cid, limit=10000)
        expected = count(api_db, COUNTS[cid])
        assert items["numberReturned"] == min(expected, 10000), cid
        assert len({f["id"] for f in items["features"]}) == items["numberReturned"]
    roxels = api.collection_items("roxels", limit=5, dominantClass="Ccp")
    assert roxels["features"] and all(f["properties"]["dominantClass"] == "Ccp" for f in roxels["features"])
    filtered = api.collection_items("plugs", filter="depth_m > 300 AND lithology_broader = 'igneous rock'")
    assert all(f["properties"]["depth_m"] > 300 for f in filtered["features"])


def _ogr_fids(url: str, cid: str, page_size: int) -> list[int]:
    out = subprocess.run(["ogrinfo", "-ro", "-q", f"OAPIF:{url}", cid, "-oo", f"PAGE_SIZE={page_size}"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    prefix = f"OGRFeature({cid}):"
    return [int(line[len(prefix):]) for line in out.splitlines() if line.startswith(prefix)]


@pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="GDAL's ogrinfo (Debian gdal-bin) is not installed")
def test_gdal_oapif_pages_every_collection_to_the_end(live, api_db):
    listing = subprocess.run(["ogrinfo", "-ro", "-so", f"OAPIF:{live.url}"], capture_output=True, text=True,
                             timeout=60, check=True).stdout
    for cid in COLLECTIONS:
        assert f": {cid} (" in listing, cid
    for cid in COLLECTIONS:
        expected = count(api_db, COUNTS[cid])
        page = 1000 if cid == "roxels" else 7  # small pages: several next links per collection
        fids = _ogr_fids(live.url, cid, page)
        assert len(fids) == expected == len(set(fids)), (cid, len(fids), expected)
    assert len(_ogr_fids(live.url, "roxels", 1000)) == ROXEL_GRID ** 2
    layer = subprocess.run(["ogrinfo", "-ro", "-so", f"OAPIF:{live.url}", "drillcore-traces"],
                           capture_output=True, text=True, timeout=60, check=True).stdout
    assert "3D Line String" in layer
    where = subprocess.run(["ogrinfo", "-ro", "-q", f"OAPIF:{live.url}", "plugs", "-where", "depth_m > 300"],
                           capture_output=True, text=True, timeout=60, check=True).stdout
    assert where.count("OGRFeature(plugs):") == count(api_db, "SELECT count(*) FROM pub.plugs WHERE depth_m > 300")


def test_schemathesis_finds_no_server_error(live, tmp_path):
    pytest.importorskip("schemathesis")
    exe = shutil.which("schemathesis", path=os.path.dirname(sys.executable)) or shutil.which("schemathesis")
    if exe is None:
        pytest.skip("schemathesis CLI not found")
    result = subprocess.run(
        [exe, "run", f"{live.url}/openapi?f=json", "--checks", "not_a_server_error", "--max-examples", "5",
         "--include-method", "GET", "--seed", "20261121", "--no-color", "--workers", "2",
         # the coverage phase of schemathesis 4.32 fails inside hypothesis on this document
         "--phases", "examples,fuzzing"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)  # its example database goes there
    assert result.returncode == 0, result.stdout[-4000:]


def test_mis_serve_command_serves(api_db, tmp_path):
    """`mis serve` (cli_serve.serve_cmd under typer, in its own process) answers over HTTP."""
    from mis.catalogue.postgres import free_port

    port = free_port()
    env = {**os.environ, "MIS_DATABASE_URL": api_db, "MIS_HOME": str(tmp_path / "home")}
    code = "import typer; from mis.cli_serve import serve_cmd; typer.run(serve_cmd)"
    proc = subprocess.Popen([sys.executable, "-c", code, "--port", str(port), "--log-level", "warning"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/mis/health", timeout=2)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"mis serve did not start: {proc.stdout.read() if proc.stdout else ''}")
            time.sleep(0.2)
        collections = httpx.get(f"http://127.0.0.1:{port}/collections", params={"f": "json"}).json()
        assert len(collections["collections"]) == len(COLLECTIONS)
        assert (tmp_path / "home" / "api" / "openapi.json").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="GDAL's ogrinfo (Debian gdal-bin) is not installed")
def test_gdal_fetches_one_feature_of_every_collection(live, http):
    """``ogrinfo ... -fid N`` asks for ``{items link}/N``: the items link must compose."""
    for cid in COLLECTIONS:
        first = http.get(f"/collections/{cid}/items", params={"limit": 1}).json()["features"][0]
        out = subprocess.run(["ogrinfo", "-ro", f"OAPIF:{live.url}", cid, "-fid", str(first["id"])],
                             capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode == 0 and "ERROR" not in out.stderr, (cid, out.stderr[-500:])
        assert f"OGRFeature({cid}):{first['id']}" in out.stdout, cid
    real = subprocess.run(["ogrinfo", "-ro", "-so", f"OAPIF:{live.url}", "grains"],
                          capture_output=True, text=True, timeout=60, check=True).stdout
    assert "area_um2: Real" in real and "imageRegion: String" in real


@pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="GDAL's ogrinfo (Debian gdal-bin) is not installed")
def test_gdal_where_equality_goes_to_the_server(live, api_db):
    """GDAL 3.6 turns ``-where "x = 'v'"`` on a queryable into ``?x=v`` (the guides say so)."""
    out = subprocess.run(["ogrinfo", "-ro", "-q", f"OAPIF:{live.url}", "roxels", "-where", "dominantClass = 'Ccp'",
                          "-oo", "PAGE_SIZE=1000", "--debug", "on"], capture_output=True, text=True, timeout=120,
                         check=True)
    fetched = [line for line in out.stderr.splitlines() if "Fetch(" in line and "/roxels/items" in line]
    pages = fetched[1:]  # the first reads the layer's fields, unfiltered
    assert pages and all("dominantClass=Ccp" in line and "limit=1000" in line for line in pages)
    assert out.stdout.count("OGRFeature(roxels):") == count(
        api_db, "SELECT count(*) FROM pub.roxels WHERE \"dominantClass\" = 'Ccp'")


@pytest.mark.skipif(shutil.which("ogr2ogr") is None, reason="GDAL's ogr2ogr (Debian gdal-bin) is not installed")
def test_gdal_copies_every_collection_to_a_geopackage(live, api_db, tmp_path):
    """``ogr2ogr`` of the whole server: every collection a layer, every feature there, reals
    stay reals and Z stays."""
    gpkg = tmp_path / "mis.gpkg"
    subprocess.run(["ogr2ogr", "-f", "GPKG", str(gpkg), f"OAPIF:{live.url}", "-oo", "PAGE_SIZE=1000"],
                   capture_output=True, text=True, timeout=300, check=True)
    for cid in COLLECTIONS:
        info = subprocess.run(["ogrinfo", "-ro", "-so", str(gpkg), cid], capture_output=True, text=True,
                              timeout=60, check=True).stdout
        assert f"Feature Count: {count(api_db, COUNTS[cid])}" in info, (cid, info[-500:])
    grains = subprocess.run(["ogrinfo", "-ro", "-so", str(gpkg), "grains"], capture_output=True, text=True,
                            timeout=60, check=True).stdout
    assert "area_um2: Real" in grains and "3D Point" in grains
