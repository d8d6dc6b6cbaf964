"""Registration: every validation rule (the exact message, and nothing written), dry run,
idempotence, update in place with recomputed traces and positions, deposit formats, CLI.

Each test gets a fresh database whose vocabulary is replaced by the small, fixed one
below, so that messages (suggestions included) do not depend on the ontology files.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from sqlalchemy.engine import make_url

from mis.catalogue.register import register
from mis.drillholes.desurvey import Collar, desurvey

DATA = Path(__file__).parent / "data" / "register"
BASE_FILES = ["deposits.yaml", "collars.csv", "surveys.csv", "samples.csv"]
DEPOSIT = "Cerro Verde Test"

#: scheme -> (pref label, notation): the whole vocabulary of these tests.
VOCABULARY = {
    "lithology": [("granite", None), ("granodiorite", None), ("basalt", None), ("andesite", None)],
    "sample-type": [("thin section", None), ("plug", None), ("polished block", None), ("core photo", None)],
    "drilling-method": [("diamond core", "DD"), ("reverse circulation drilling", "RC")],
    "commodity": [("copper", "Cu"), ("gold", "Au"), ("molybdenum", "Mo")],
    "occurrence-type": [("deposit", None), ("prospect", None), ("occurrence", None)],
    "deposit-model": [("porphyry copper", None)],
}
TABLES = ("deposit", "deposit_commodity", "drillcore", "survey_station", "plug")


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def install_vocabulary(url: str) -> None:
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute("DELETE FROM concept_broader")
        conn.execute("DELETE FROM concept")
        conn.execute("DELETE FROM concept_scheme")
        for scheme, terms in VOCABULARY.items():
            conn.execute("INSERT INTO concept_scheme (key, uri, title) VALUES (%s, %s, %s)",
                         (scheme, f"https://example.org/{scheme}", scheme))
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO concept (uri, scheme, pref_label, notation) VALUES (%s, %s, %s, %s)",
                    [(uri(scheme, label), scheme, label, notation) for label, notation in terms])


def uri(scheme: str, label: str) -> str:
    return f"https://example.org/{scheme}/{label.replace(' ', '-')}"


def snapshot(url: str) -> dict[str, list[tuple]]:
    """Every catalogue row the registration may touch (geometries as EWKT)."""
    out = {}
    with psycopg.connect(libpq(url)) as conn:
        for table in TABLES:
            cols = [r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
                [table])]
            cols = [f"ST_AsEWKT({c})" if c in ("footprint", "collar", "trace", "position") else c for c in cols]
            out[table] = conn.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY 1, 2").fetchall()
    return out


def query(url: str, sql: str, *params):
    with psycopg.connect(libpq(url)) as conn:
        return conn.execute(sql, params).fetchall()


def _admin(server_url: str) -> str:
    return libpq(make_url(server_url).set(database="postgres").render_as_string(hide_password=False))


def _clone(server_url: str, template: str, name: str) -> str:
    """A new database copied from ``template`` (which must have no open connections)."""
    from mis.catalogue.engines import dispose_engines

    dispose_engines()  # engines of earlier tests hold pooled connections
    with psycopg.connect(_admin(server_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def _drop(server_url: str, name: str) -> None:
    from mis.catalogue.engines import dispose_engines

    dispose_engines()
    with psycopg.connect(_admin(server_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _dispose(url: str) -> None:
    from mis.catalogue.engines import dispose_engines
    from mis.catalogue.session import get_engine

    get_engine(url).dispose()
    dispose_engines()


_names = itertools.count()


@pytest.fixture(scope="module")
def templates(server_url: str, template_url: str) -> Iterator[tuple[str, str]]:
    """Two templates for this module: the test vocabulary only, and that + the base files."""
    vocab, base = f"mis_reg_vocab_{os.getpid()}", f"mis_reg_base_{os.getpid()}"
    _dispose(template_url)  # the vocabulary load may leave a pooled connection to the template
    url = _clone(server_url, make_url(template_url).database, vocab)
    install_vocabulary(url)
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute("VACUUM FULL")  # the deleted ontology would otherwise be copied per test
    base_url = _clone(server_url, vocab, base)
    report = register([DATA / f for f in BASE_FILES], url=base_url)
    assert report.ok and report.written, report.render()
    _dispose(base_url)
    yield vocab, base
    _drop(server_url, vocab)
    _drop(server_url, base)


@pytest.fixture
def url(server_url: str, templates: tuple[str, str]) -> Iterator[str]:
    """A fresh, empty catalogue with the test vocabulary."""
    name = f"mis_reg_{os.getpid()}_{next(_names)}"
    yield _clone(server_url, templates[0], name)
    _drop(server_url, name)


@pytest.fixture
def base(server_url: str, templates: tuple[str, str], work: Path) -> Iterator[str]:
    """A fresh catalogue with the base files registered."""
    name = f"mis_reg_{os.getpid()}_{next(_names)}"
    yield _clone(server_url, templates[1], name)
    _drop(server_url, name)


@pytest.fixture(scope="module")
def shared_base(server_url: str, templates: tuple[str, str]) -> Iterator[str]:
    """One catalogue with the base files for the tests that must write nothing (each
    checks that it did not)."""
    name = f"mis_reg_{os.getpid()}_shared"
    yield _clone(server_url, templates[1], name)
    _drop(server_url, name)


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding copies of the base files (messages name them relatively)."""
    for name in BASE_FILES:
        shutil.copy(DATA / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path: Path, text: str | bytes) -> str:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path.name


def messages(report) -> list[str]:
    return [str(f) for f in report.findings]


# --------------------------------------------------------------------------- happy path
def test_register_base_files(url: str, work: Path) -> None:
    report = register(BASE_FILES, url=url)
    assert report.ok and report.written and not report.findings
    assert (report.deposits.added, report.holes.added, report.samples.added) == (2, 3, 5)
    assert (report.survey_sets, report.survey_stations, report.traces, report.positions) == (2, 8, 3, 5)

    dep = query(url, "SELECT occurrence_type_uri, deposit_model_uri, deposit_model_note, country, "
                     "GeometryType(footprint) FROM deposit ORDER BY name")
    assert dep == [(uri("occurrence-type", "deposit"), uri("deposit-model", "porphyry copper"), None, "Peru",
                    "POLYGON"),
                   (uri("occurrence-type", "prospect"), None, "epithermal vein, low sulphidation", "Chile", "POINT")]
    assert query(url, "SELECT c.commodity_uri, c.rank FROM deposit_commodity c JOIN deposit d ON d.id = c.deposit_id "
                      "WHERE d.name = %s ORDER BY rank", DEPOSIT) == [
        (uri("commodity", "copper"), 1), (uri("commodity", "molybdenum"), 2)]

    holes = query(url, "SELECT name, collar_x, collar_y, collar_epsg, ST_X(collar), ST_Y(collar), ST_Z(collar), "
                       "local_epsg, drilling_method_uri, ST_NPoints(trace) FROM drillcore ORDER BY name")
    assert holes[0] == ("CV-001", -71.58, -16.53, 4326, -71.58, -16.53, 2650.5, 32719,
                        uri("drilling-method", "diamond core"), 5)
    name, x, y, epsg, lon, lat, z, local, method, npoints = holes[1]
    assert (x, y, epsg, z, local, npoints) == (225000.0, 8169000.0, 32719, 2640.0, 32719, 3)  # stored as given
    assert lon == pytest.approx(-71.5767, abs=1e-3) and lat == pytest.approx(-16.5451, abs=1e-3)
    assert holes[2][-2:] == (uri("drilling-method", "reverse circulation drilling"), 2)

    # sample positions: mid-depth on the minimum-curvature trace
    surveys = np.array([[0, -60, 90], [50, -59, 91], [100, -58, 92.5], [200, -57, 94], [300, -56, 95]])
    trace = desurvey(Collar(-71.58, -16.53, 2650.5, length=300.0), *surveys.T)
    expected = trace.position_at([10.1, 55.6, 120.15])
    got = np.array(query(url, "SELECT ST_X(position), ST_Y(position), ST_Z(position) FROM plug p "
                              "JOIN drillcore h ON h.id = p.drillcore_id WHERE h.name = 'CV-001' ORDER BY from_m"))
    np.testing.assert_allclose(got[:, 0], expected.lon, atol=1e-9)
    np.testing.assert_allclose(got[:, 1], expected.lat, atol=1e-9)
    np.testing.assert_allclose(got[:, 2], expected.z, atol=1e-6)
    assert query(url, "SELECT sample_type_uri, lithology_uri, preparation, description FROM plug WHERE name = %s",
                 "CV-001-TS1") == [(uri("sample-type", "thin section"), uri("lithology", "granodiorite"),
                                    "polished thin section 30 µm", "fresh, unaltered")]


def test_reregistering_is_a_no_op(base: str) -> None:
    before = snapshot(base)
    report = register(BASE_FILES, url=base)
    assert report.ok and report.changed == 0
    assert "0 record(s) changed" in report.summary()
    assert (report.deposits.unchanged, report.holes.unchanged, report.samples.unchanged) == (2, 3, 5)
    assert snapshot(base) == before  # not even updated_at moved


def test_dry_run_writes_nothing(url: str, work: Path) -> None:
    before = snapshot(url)
    report = register(BASE_FILES, url=url, dry_run=True)
    assert report.ok and not report.written
    assert report.holes.added == 3 and report.changed == 12
    assert report.summary().startswith("dry run, nothing written")
    assert snapshot(url) == before


def test_update_in_place_recomputes_trace_and_positions(base: str, work: Path) -> None:
    ids = dict(query(base, "SELECT name, id FROM plug"))
    other = query(base, "SELECT ST_AsEWKT(trace), updated_at FROM drillcore WHERE name = 'CV-002'")
    old_trace = query(base, "SELECT ST_AsEWKT(trace) FROM drillcore WHERE name = 'CV-001'")
    write(work / "surveys.csv", "HOLE_ID,DEPTH,DIP,AZIMUTH\nCV-001,0,-60,90\nCV-001,150,-50,100\n")
    report = register(["surveys.csv"], url=base)
    assert report.ok and report.written, report.render()
    assert (report.survey_sets, report.traces, report.positions, report.samples.changed) == (1, 1, 3, 0)
    assert query(base, "SELECT depth_m, s.dip, s.azimuth FROM survey_station s "
                       "JOIN drillcore h ON h.id = s.drillcore_id "
                       "WHERE h.name = 'CV-001' ORDER BY depth_m") == [(0.0, -60.0, 90.0), (150.0, -50.0, 100.0)]
    assert query(base, "SELECT ST_AsEWKT(trace) FROM drillcore WHERE name = 'CV-001'") != old_trace
    assert query(base, "SELECT ST_AsEWKT(trace), updated_at FROM drillcore WHERE name = 'CV-002'") == other
    assert dict(query(base, "SELECT name, id FROM plug")) == ids  # updated in place, same ids
    trace = desurvey(Collar(-71.58, -16.53, 2650.5, length=300.0), [0, 150], [-60, -50], [90, 100])
    expected = trace.position_at([10.1, 55.6, 120.15])
    got = np.array(query(base, "SELECT ST_X(position), ST_Y(position), ST_Z(position) FROM plug p "
                               "JOIN drillcore h ON h.id = p.drillcore_id WHERE h.name = 'CV-001' ORDER BY from_m"))
    np.testing.assert_allclose(got, np.column_stack([expected.lon, expected.lat, expected.z]), atol=1e-6)


def test_shorter_hole_with_moved_sample_updates_in_one_go(base: str, work: Path) -> None:
    collars = (DATA / "collars.csv").read_text().replace(",300,-60,90,", ",150,-60,90,")
    write(work / "collars.csv", collars)
    write(work / "surveys.csv", "HOLE_ID,DEPTH,DIP,AZIMUTH\nCV-001,0,-60,90\nCV-001,150,-58,92\n")
    write(work / "samples.csv", "HOLE_ID,SAMPLE_ID,FROM,TO,SAMPLE_TYPE\nCV-001,CV-001-P1,140,140.3,plug\n")
    report = register(["collars.csv", "surveys.csv", "samples.csv"], url=base)
    assert report.ok and report.written, report.render()
    assert (report.holes.changed, report.holes.unchanged, report.samples.changed) == (1, 2, 1)
    assert query(base, "SELECT length_m, ST_Length(trace::geography) > 0 FROM drillcore WHERE name = 'CV-001'") == [
        (150.0, True)]
    assert query(base, "SELECT from_m, to_m, lithology_uri FROM plug WHERE name = 'CV-001-P1'") == [
        (140.0, 140.3, None)]


def test_columns_a_file_lacks_keep_registered_values(base: str, work: Path) -> None:
    before = query(base, "SELECT dip, azimuth, drilling_method_uri, start_date, core_custodian, ST_AsEWKT(trace) "
                         "FROM drillcore WHERE name = 'CV-001'")
    write(work / "c.csv", "HOLE_ID,LON,LAT,Z,EOH,OPERATOR,PURPOSE\nCV-001,-71.58,-16.53,2650.5,300,New Owner SA,\n")
    report = register(["c.csv"], url=base, deposit=DEPOSIT)
    assert report.ok and (report.holes.changed, report.traces) == (1, 0), report.render()
    assert query(base, "SELECT operator, purpose FROM drillcore WHERE name = 'CV-001'") == [("New Owner SA", None)]
    assert query(base, "SELECT dip, azimuth, drilling_method_uri, start_date, core_custodian, ST_AsEWKT(trace) "
                       "FROM drillcore WHERE name = 'CV-001'") == before


def test_parsed_records_with_a_source_label(base: str) -> None:
    report = register([{"samples": [{"hole id": "CV-003", "sample": "CV-003-TS9", "from": 30, "to": 30.2,
                                     "type": "thin section", "lith": "basalt"},
                                    {"hole id": "CV-003", "sample": "CV-003-TS10", "from": "40", "to": "39",
                                     "type": "thin section"}]}], url=base, source="POST /collections/plugs")
    assert messages(report) == [
        "error: POST /collections/plugs:2: to: from must be less than to (value 39; from 40)"]
    assert not report.written


def test_with_the_real_vocabulary(db_url: str, work: Path) -> None:
    """The base files with the project's ontology (as loaded by the test template)."""
    if not query(db_url, "SELECT 1 FROM concept WHERE scheme = 'lithology' LIMIT 1"):
        pytest.skip("the ontology is not loaded in the test template")
    collars = (DATA / "collars.csv").read_text().replace(",DD,", ",diamond core,").replace(
        ",RC,", ",reverse circulation drilling,")
    write(work / "collars.csv", collars)
    report = register(BASE_FILES, url=db_url)
    assert report.ok and report.written and not report.findings, report.render()
    assert query(db_url, "SELECT count(*) FROM plug WHERE lithology_uri IS NOT NULL") == [(4,)]
    write(work / "p.csv", SAMPLE_HEAD + "CV-003,S-1,1,2,thin section,granit\n")
    report = register(["p.csv"], url=db_url, dry_run=True)
    assert len(report.errors) == 1 and report.errors[0].rule == "unknown lithology term"
    assert "did you mean 'granite'" in report.errors[0].detail


def test_geojson_deposits_and_inclination_convention(url: str, work: Path) -> None:
    write(work / "deposits.geojson", """{"type": "FeatureCollection", "features": [
      {"type": "Feature", "properties": {"name": "Geo Deposit", "type": "deposit", "commodities": "Cu, Au",
        "model": "porphyry copper", "country": "Chile"},
       "geometry": {"type": "Polygon", "coordinates": [[[-69.1, -24.3], [-69.0, -24.3], [-69.0, -24.2],
                                                       [-69.1, -24.3]]]}},
      {"type": "Feature", "properties": {"name": "Geo Point"},
       "geometry": {"type": "Point", "coordinates": [-69.5, -24.5, 1200]}}]}""")
    write(work / "holes.csv", "BHID;LONGITUDE;LATITUDE;RL;TOTAL_DEPTH;INC;AZ\nG-1;-69,04;-24,27;3100;200;30;45\n")
    write(work / "dh_surveys.csv", "HOLEID\tMD\tINCLINATION\tAZIMUTH\nG-1\t0\t30\t45\nG-1\t100\t35\t47\n")
    report = register(["deposits.geojson", ("collars", "holes.csv"), "dh_surveys.csv"], url=url,
                      deposit="Geo Deposit")
    assert report.ok and report.written, report.render()
    assert query(url, "SELECT name, GeometryType(footprint), deposit_model_uri IS NOT NULL "
                      "FROM deposit ORDER BY name") == [
        ("Geo Deposit", "POLYGON", True), ("Geo Point", "POINT", False)]
    assert query(url, "SELECT collar_x, dip, azimuth, length_m FROM drillcore") == [(-69.04, -60.0, 45.0, 200.0)]
    assert query(url, "SELECT depth_m, dip FROM survey_station ORDER BY depth_m") == [(0.0, -60.0), (100.0, -55.0)]


def test_deposit_yaml_single_mapping_and_json(url: str, work: Path) -> None:
    write(work / "one.yml", "name: Solo\nfootprint: POLYGON ((10 50, 11 50, 11 51, 10 50))\ncommodities: Au\n")
    write(work / "two.json", '[{"name": "Duo", "lon": 12.5, "lat": 47.25, "occurrence_type": "occurrence"}]')
    report = register(["one.yml", "two.json"], url=url)
    assert report.ok and report.deposits.added == 2, report.render()
    assert query(url, "SELECT name, ST_AsText(footprint) FROM deposit ORDER BY name") == [
        ("Duo", "POINT(12.5 47.25)"), ("Solo", "POLYGON((10 50,11 50,11 51,10 50))")]


def test_options_epsg_inclination_and_azimuth_360(url: str, work: Path) -> None:
    write(work / "c.csv", "HOLE_ID,EASTING,NORTHING,Z,EOH,DIP,AZIMUTH\nDH-1,225000,8169000,2640,100,30,360\n")
    write(work / "s.csv", "HOLE_ID,DEPTH,DIP,AZIMUTH\nDH-1,0,30,360\nDH-1,50,20,10\n")
    report = register(["deposits.yaml", "c.csv", "s.csv"], url=url, deposit=DEPOSIT, epsg=32719,
                      convention="inclination")
    assert report.ok and report.written, report.render()
    assert query(url, "SELECT collar_x, collar_y, collar_epsg, dip, azimuth FROM drillcore") == [
        (225000.0, 8169000.0, 32719, -60.0, 0.0)]
    assert query(url, "SELECT depth_m, dip, azimuth FROM survey_station ORDER BY 1") == [
        (0.0, -60.0, 0.0), (50.0, -70.0, 10.0)]


def test_lon_lat_with_a_projected_crs_is_an_error(url: str, work: Path) -> None:
    name = write(work / "c.csv", "HOLE_ID,LON,LAT,EPSG,Z,EOH\nDH-1,-71.58,-16.53,32719,2640,100\n")
    report = register(["deposits.yaml", name], url=url, deposit=DEPOSIT)
    assert messages(report) == ["error: c.csv:2: EPSG: LON/LAT need a geographic CRS (e.g. EPSG:4326) (value 32719)"]


# --------------------------------------------------------------------------- rules -> errors
COLLAR_HEAD = "HOLE_ID,X,Y,EPSG,Z,EOH,DIP,AZIMUTH\n"
OK_COLLAR = "-71.58,-16.53,4326,2650,100,-60,90"
SAMPLE_HEAD = "HOLE_ID,SAMPLE_ID,FROM,TO,SAMPLE_TYPE,LITHOLOGY\n"
SURVEY_HEAD = "HOLE_ID,DEPTH,DIP,AZIMUTH\n"

ERROR_CASES = {
    "duplicate hole id": (
        "collars.csv", COLLAR_HEAD + f"DH-1,{OK_COLLAR}\nDH-1,{OK_COLLAR}\n",
        ["error: collars.csv:3: HOLE_ID: duplicate hole id (value 'DH-1'; first at collars.csv:2)"]),
    "missing collar coordinates": (
        "collars.csv", COLLAR_HEAD + "DH-1,,-16.53,4326,2650,100,-60,90\n",
        ["error: collars.csv:2: X: collar coordinate missing"]),
    "missing length": (
        "collars.csv", COLLAR_HEAD + "DH-1,-71.58,-16.53,4326,2650,,-60,90\n",
        ["error: collars.csv:2: EOH: hole length missing"]),
    "negative length": (
        "collars.csv", COLLAR_HEAD + "DH-1,-71.58,-16.53,4326,2650,-5,-60,90\n",
        ["error: collars.csv:2: EOH: hole length must be > 0 (value -5)"]),
    "zero length": (
        "collars.csv", COLLAR_HEAD + "DH-1,-71.58,-16.53,4326,2650,0,-60,90\n",
        ["error: collars.csv:2: EOH: hole length must be > 0 (value 0)"]),
    "collar dip and azimuth out of range": (
        "collars.csv", COLLAR_HEAD + "DH-1,-71.58,-16.53,4326,2650,100,-95,360.5\n",
        ["error: collars.csv:2: AZIMUTH: azimuth out of range 0..360 (value 360.5)",
         "error: collars.csv:2: DIP: dip out of range -90..90 (value -95)"]),
    "survey beyond end of hole": (
        "surveys.csv", SURVEY_HEAD + "CV-003,0,-90,0\nCV-003,130,-89,0\n",
        ["error: surveys.csv:3: DEPTH: survey depth beyond the end of hole (value 130; hole CV-003 is 120 m long)"]),
    "survey depths not increasing": (
        "surveys.csv", SURVEY_HEAD + "CV-003,0,-90,0\nCV-003,50,-89,0\nCV-003,50,-88,0\n",
        ["error: surveys.csv:4: DEPTH: survey depths must increase down the hole (value 50; after 50 m at line 3)"]),
    "survey dip and azimuth out of range": (
        "surveys.csv", SURVEY_HEAD + "CV-003,0,-95,0\nCV-003,10,-89,-1\n",
        ["error: surveys.csv:2: DIP: dip out of range -90..90 (value -95)",
         "error: surveys.csv:3: AZIMUTH: azimuth out of range 0..360 (value -1)"]),
    "inclination out of range": (
        "surveys.csv", "HOLE_ID,DEPTH,INCLINATION,AZIMUTH\nCV-003,0,190,0\n",
        ["error: surveys.csv:2: INCLINATION: inclination out of range 0..180 (value 190)"]),
    "survey for an unknown hole": (
        "surveys.csv", SURVEY_HEAD + "XX-9,0,-90,0\n",
        ["error: surveys.csv:2: HOLE_ID: unknown hole (value 'XX-9'; not in the collar files nor in deposit "
         "'Cerro Verde Test' in the database)"]),
    "from >= to": (
        "samples.csv", SAMPLE_HEAD + "CV-001,S-1,12,12,thin section,\n",
        ["error: samples.csv:2: TO: from must be less than to (value 12; from 12)"]),
    "overlapping intervals in the file": (
        "samples.csv", SAMPLE_HEAD + "CV-002,S-1,30,31,thin section,\nCV-002,S-2,30.5,31.5,thin section,\n",
        ["error: samples.csv:3: FROM: interval overlaps sample 'S-1' (value 30.5; S-1 is 30-31 m, at samples.csv:2)"]),
    "interval overlapping a registered sample": (
        "samples.csv", SAMPLE_HEAD + "CV-001,S-7,10.1,10.3,thin section,\n",
        ["error: samples.csv:2: FROM: interval overlaps sample 'CV-001-TS1' "
         "(value 10.1; CV-001-TS1 is 10-10.2 m, registered in the database)"]),
    "interval beyond end of hole": (
        "samples.csv", SAMPLE_HEAD + "CV-003,S-1,119,121,plug,\n",
        ["error: samples.csv:2: TO: interval beyond the end of hole (value 121; hole CV-003 is 120 m long)"]),
    "unknown vocabulary term": (
        "samples.csv", SAMPLE_HEAD + "CV-001,S-1,1,2,thin sektion,granit\n",
        ["error: samples.csv:2: LITHOLOGY: unknown lithology term (value 'granit'; did you mean 'granite', "
         "'granodiorite'?)",
         "error: samples.csv:2: SAMPLE_TYPE: unknown sample type term (value 'thin sektion'; did you mean "
         "'thin section'?)"]),
    "sample for an unknown hole": (
        "samples.csv", SAMPLE_HEAD + "XX-1,S-1,1,2,plug,\n",
        ["error: samples.csv:2: HOLE_ID: unknown hole (value 'XX-1'; not in the collar files nor in deposit "
         "'Cerro Verde Test' in the database)"]),
    "duplicate sample id": (
        "samples.csv", SAMPLE_HEAD + "CV-003,S-1,1,2,plug,\nCV-003,S-1,3,4,plug,\n",
        ["error: samples.csv:3: SAMPLE_ID: duplicate sample id in hole CV-003 (value 'S-1'; first at samples.csv:2)"]),
    "sample type missing": (
        "samples.csv", "HOLE_ID,SAMPLE_ID,FROM,TO\nCV-003,S-1,1,2\n",
        ["error: samples.csv:2: SAMPLE_TYPE: sample type missing: give a SAMPLE_TYPE or --sample-type"]),
    "non-UTF-8": (
        "samples.csv", (SAMPLE_HEAD + "CV-003,S-1,1,2,plug,\nCV-003,S-2,3,4,plug,Gr\xe4nit\n").encode("latin-1"),
        ["error: samples.csv:3: not valid UTF-8 (byte 0xe4 at position 23; save the file as UTF-8)",
         "error: samples.csv:3: LITHOLOGY: unknown lithology term (value 'Gr\ufffdnit'; did you mean 'granite'?)"]),
    "malformed CSV": (
        "samples.csv", SAMPLE_HEAD + 'CV-003,S-1,1,2,plug,\nCV-003,"S-2,3,4,plug,\n',
        ["error: samples.csv:3: malformed CSV: unexpected end of data"]),
    "ragged row": (
        "samples.csv", SAMPLE_HEAD + "CV-003,S-1,1,2,plug\n",
        ["error: samples.csv:2: ragged row (5 fields, the header has 6)"]),
    "not a number": (
        "samples.csv", SAMPLE_HEAD + "CV-003,S-1,1.5m,2,plug,\n",
        ["error: samples.csv:2: FROM: not a number (value '1.5m')"]),
    "not a date, end before start": (
        "collars.csv", "HOLE_ID,X,Y,EPSG,Z,EOH,DIP,AZIMUTH,START_DATE,END_DATE\n"
        f"DH-1,{OK_COLLAR},2021-13-01,\nDH-2,{OK_COLLAR},2021-05-02,2021-05-01\n",
        ["error: collars.csv:2: START_DATE: not a date (use YYYY-MM-DD) (value '2021-13-01')",
         "error: collars.csv:3: END_DATE: end date before start date (value 2021-05-01; start 2021-05-02)"]),
    "unknown CRS and missing CRS": (
        "collars.csv", "HOLE_ID,EASTING,NORTHING,CRS,Z,EOH\nDH-1,225000,8169000,EPSG:99999,2650,100\n"
        "DH-2,225000,8169000,,2650,100\n",
        ["error: collars.csv:2: CRS: unknown CRS: not an EPSG code PROJ knows (value 'EPSG:99999')",
         "error: collars.csv:3: CRS: CRS missing: EASTING/NORTHING need an EPSG column or --epsg"]),
    "magnetic azimuths without declination": (
        "collars.csv", COLLAR_HEAD.strip() + ",AZIMUTH_REFERENCE\n" + f"DH-1,{OK_COLLAR},magnetic\n",
        ["error: collars.csv:2: DECLINATION: magnetic azimuths need a declination (AZIMUTH_REFERENCE 'magnetic')"]),
    "unknown deposit": (
        "collars.csv", "HOLE_ID,DEPOSIT,X,Y,EPSG,Z,EOH\nDH-1,Nowhere,-71.58,-16.53,4326,2650,100\n",
        ["error: collars.csv:2: DEPOSIT: unknown deposit "
         "(value 'Nowhere'; not in the deposit files nor the database)"]),
    "hole shorter than what is registered": (
        "collars.csv", COLLAR_HEAD + "CV-001,-71.58,-16.53,4326,2650.5,100,-60,90\n",
        ["error: collars.csv:2: EOH: hole length shorter than a registered survey (value 100; survey at 300 m)",
         "error: collars.csv:2: EOH: hole length shorter than registered sample 'CV-001-P1' "
         "(value 100; CV-001-P1 ends at 120.3 m)"]),
    "unrecognised table": (
        "data.csv", "A,B,C\n1,2,3\n",
        ["error: data.csv:1: cannot tell which table this is from its columns; name it with --collars, "
         "--surveys, --samples or --deposits (value 'A', 'B', 'C')"]),
    "required column missing": (
        "surveys.csv", "HOLE_ID,DEPTH,AZIMUTH,DIP_DIRECTION\nCV-003,0,0,0\n",
        ["error: surveys.csv:1: DIP or INCLINATION: required column missing",
         "warning: surveys.csv:1: DIP_DIRECTION: unknown column, ignored"]),
    "deposit without footprint, invalid footprint, unknown commodity": (
        "deposits.yaml", "- name: No Shape\n  commodities: [Cu]\n"
        "- name: Bow Tie\n  commodities: [Cu, Cuu]\n"
        "  footprint: POLYGON ((0 0, 1 1, 1 0, 0 1, 0 0))\n",
        ["error: deposits.yaml:1: footprint: footprint missing: give a GeoJSON geometry, WKT, or lon and lat",
         "error: deposits.yaml:4: commodities: unknown commodity term (value 'Cuu'; did you mean 'copper'?)",
         "error: deposits.yaml:5: footprint: footprint is not a valid geometry (Self-intersection[0.5 0.5])"]),
    "names that are paths or hold control characters": (
        "samples.csv", SAMPLE_HEAD + "CV-003,..,1,2,plug,\nCV-003,a/b,3,4,plug,\nCV-003,a\\b,5,6,plug,\n"
        "CV-003,\"x\x00y\",7,8,plug,\nCV-003,\"tab\there\",9,10,plug,\n" + f"CV-003,{'n' * 201},11,12,plug,\n",
        ["error: samples.csv:2: SAMPLE_ID: a name cannot be '.' or '..' (value '..')",
         "error: samples.csv:3: SAMPLE_ID: a name cannot contain / or \\ (value 'a/b')",
         "error: samples.csv:4: SAMPLE_ID: a name cannot contain / or \\ (value 'a\\\\b')",
         "error: samples.csv:5: SAMPLE_ID: contains a NUL character (value 'x\\x00y')",
         "error: samples.csv:6: SAMPLE_ID: a name cannot contain control characters or line breaks "
         "(value 'tab\\there')",
         f"error: samples.csv:7: SAMPLE_ID: longer than 200 characters (value '{'n' * 80}' ... (201 characters))"]),
    "a deposit named ..": (
        "deposits.yaml", "- name: '..'\n  lon: -71.5\n  lat: -16.5\n",
        ["error: deposits.yaml:1: name: a name cannot be '.' or '..' (value '..')"]),
    "YAML aliases": (
        "deposits.yaml", "- name: &n Alias Deposit\n  description: *n\n  lon: -71.5\n  lat: -16.5\n",
        ["error: deposits.yaml:2: YAML aliases (*name) are not accepted: write each value out (alias *n)"]),
    "non-scalar text fields": (
        "deposits.yaml", "- name: Nested\n  country: {code: CL}\n  description: [a, b]\n"
        "  commodities: [[Cu]]\n  lon: -71.5\n  lat: -16.5\n",
        ["error: deposits.yaml:2: country: expected a single value, not a mapping",
         "error: deposits.yaml:3: description: expected a single value, not a list (value ['a', 'b'])",
         "error: deposits.yaml:4: commodities: expected a list of names, not nested lists or mappings "
         "(value [['Cu']])"]),
}

#: 345 bytes that a YAML loader expands to 9^9 strings (the issue's 427-byte file took 56 s, 5.6 GB).
ALIAS_BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{k}: &{k} [{', '.join(['*' + p] * 9)}]\n" for p, k in zip("abcdefg", "bcdefgh", strict=True)) + \
    f"name: [{', '.join(['*h'] * 9)}]\n"


def test_yaml_alias_bomb_and_deep_nesting_are_refused_at_once(url: str, work: Path) -> None:
    """Refused from the parser's events, before anything is built: the bomb's 9^9 strings
    (5.6 GB) are never allocated (Python's allocations are counted, not timed)."""
    import tracemalloc

    for text, expected in [(ALIAS_BOMB, "deposits.yaml:2: YAML aliases"),
                           ("[" * 100_000 + "]" * 100_000, "nested deeper than 32 levels"),
                           ("- " * 50 + "x\n", "deposits.yaml:1: nested deeper than 32 levels")]:
        tracemalloc.start()
        try:
            report = register([write(work / "deposits.yaml", text)], url=url)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MiB allocated to refuse {expected!r}"
        assert not report.written and expected in report.render(), report.render()


@pytest.mark.parametrize("case", list(ERROR_CASES), ids=list(ERROR_CASES))
def test_rule_reports_exact_message_and_writes_nothing(case: str, shared_base: str, work: Path) -> None:
    name, content, expected = ERROR_CASES[case]
    before = snapshot(shared_base)
    report = register([write(work / name, content)], url=shared_base, deposit=DEPOSIT)
    assert messages(report) == expected
    assert not report.ok and not report.written
    assert report.summary().endswith("nothing written")
    assert snapshot(shared_base) == before


def test_all_findings_of_all_files_at_once(shared_base: str, work: Path) -> None:
    base = shared_base
    before = snapshot(base)
    files = [write(work / "c.csv", COLLAR_HEAD + "DH-1,-71.58,-16.53,4326,2650,-1,-60,90\n"),
             write(work / "s.csv", SURVEY_HEAD + "CV-003,0,-90,0\nCV-003,200,-90,0\n"),
             write(work / "p.csv", SAMPLE_HEAD + "CV-003,S-1,5,4,plug,\n")]
    report = register(files, url=base, deposit=DEPOSIT)
    assert messages(report) == [
        "error: c.csv:2: EOH: hole length must be > 0 (value -1)",
        "error: s.csv:3: DEPTH: survey depth beyond the end of hole (value 200; hole CV-003 is 120 m long)",
        "error: p.csv:2: TO: from must be less than to (value 4; from 5)"]  # in the order of the inputs
    assert snapshot(base) == before


def test_no_deposit_given(url: str, work: Path) -> None:
    report = register([write(work / "c.csv", COLLAR_HEAD + f"DH-1,{OK_COLLAR}\n")], url=url)
    assert messages(report) == ["error: c.csv:2: DEPOSIT: no deposit: add a DEPOSIT column or use --deposit "
                                "(value 'DH-1')"]


# --------------------------------------------------------------------------- rules -> warnings
def test_missing_collar_survey_uses_collar_orientation(base: str, work: Path) -> None:
    write(work / "c.csv", COLLAR_HEAD + "DH-5,-71.58,-16.53,4326,2650,100,-60,90\n")
    write(work / "s.csv", SURVEY_HEAD + "DH-5,30,-50,100\nDH-5,60,-49,101\n")
    report = register(["c.csv", "s.csv"], url=base, deposit=DEPOSIT)
    assert messages(report) == [
        "warning: s.csv:2: DEPTH: no survey at the collar (value 30; from 0 m to 30 m the collar orientation "
        "is used: dip -60, azimuth 90)"]
    assert report.written
    assert query(base, "SELECT depth_m FROM survey_station s JOIN drillcore h ON h.id = s.drillcore_id "
                       "WHERE h.name = 'DH-5' ORDER BY 1") == [(30.0,), (60.0,)]  # stored as given
    trace = desurvey(Collar(-71.58, -16.53, 2650.0, length=100.0), [0, 30, 60], [-60, -50, -49], [90, 100, 101])
    got = query(base, "SELECT ST_X(ST_PointN(trace, 2)), ST_Z(ST_PointN(trace, 2)) FROM drillcore WHERE name = 'DH-5'")
    lon, _lat, z = trace.lonlat()
    assert got[0] == pytest.approx((lon[1], z[1]), abs=1e-9)


def test_missing_collar_survey_uses_first_survey_when_collar_has_none(base: str, work: Path) -> None:
    write(work / "c.csv", "HOLE_ID,X,Y,EPSG,Z,EOH\nDH-6,-71.58,-16.53,4326,2650,100\nDH-7,-71.57,-16.53,4326,2650,50\n")
    write(work / "s.csv", SURVEY_HEAD + "DH-6,30,-50,100\n")
    report = register(["c.csv", "s.csv"], url=base, deposit=DEPOSIT)
    assert messages(report) == [
        "warning: c.csv:3: DIP: no collar dip and no survey: the hole is taken as vertical (dip -90)",
        "warning: s.csv:2: DEPTH: no survey at the collar (value 30; the collar has no dip/azimuth: the first "
        "survey's orientation is used from 0 m: dip -50, azimuth 100)"]
    assert query(base, "SELECT name, dip, azimuth FROM drillcore WHERE name IN ('DH-6', 'DH-7') ORDER BY name") == [
        ("DH-6", -50.0, 100.0), ("DH-7", -90.0, 0.0)]


def test_unrealistic_dogleg_warns_with_configurable_limit(base: str, work: Path) -> None:
    name = write(work / "s.csv", SURVEY_HEAD + "CV-003,0,-90,0\nCV-003,30,-82,0\nCV-003,60,-70,0\n")
    report = register([name], url=base, dry_run=True)
    assert messages(report) == ["warning: s.csv:4: DEPTH: unrealistic dogleg (12.0°/30 m between 30 m and 60 m; "
                                "the limit is 10°/30 m)"]
    report = register([name], url=base, dogleg_limit=5)
    assert messages(report) == [
        "warning: s.csv:3: DEPTH: unrealistic dogleg (8.0°/30 m between 0 m and 30 m; the limit is 5°/30 m)",
        "warning: s.csv:4: DEPTH: unrealistic dogleg (12.0°/30 m between 30 m and 60 m; the limit is 5°/30 m)"]
    assert report.written and report.survey_sets == 1


def test_collar_near_the_footprint_warns_far_from_it_is_refused(base: str, work: Path) -> None:
    report = register([write(work / "c.csv", COLLAR_HEAD + "DH-8,-71.515,-16.53,4326,2650,100,-60,90\n")],
                      url=base, deposit=DEPOSIT)
    assert messages(report) == ["warning: c.csv:2: X/Y: collar outside the footprint of deposit "
                                "'Cerro Verde Test' (value -71.515, -16.53; 534 m outside; "
                                "within the 1000 m tolerance)"]
    assert report.written
    report = register([write(work / "c.csv", COLLAR_HEAD + "DH-9,-70.0,-16.53,4326,2650,100,-60,90\n"
                                                           "DH-10,-16.53,-71.58,4326,2650,100,-60,90\n")],
                      url=base, deposit=DEPOSIT)
    assert messages(report) == [
        "error: c.csv:2: X/Y: collar 162.3 km from the footprint of deposit 'Cerro Verde Test' "
        "(value -70, -16.53; at most 1000 m outside it is accepted)",
        "error: c.csv:3: X/Y: collar 7,075.9 km from the footprint of deposit 'Cerro Verde Test'; lon/lat swapped? "
        "(value -16.53, -71.58; at most 1000 m outside it is accepted)"]
    assert not report.written


def test_footprints_rings_lengths_and_elevations_are_checked(base: str, work: Path) -> None:
    """A footprint with lon/lat swapped leaves the deposit's registered collars far
    outside; an unclosed ring is not closed silently; lengths and elevations are bounded."""
    swapped = (DATA / "deposits.yaml").read_text().replace(
        "[[[-71.62, -16.56], [-71.52, -16.56], [-71.52, -16.50], [-71.62, -16.50], [-71.62, -16.56]]]",
        "[[[-16.56, -71.62], [-16.56, -71.52], [-16.50, -71.52], [-16.50, -71.62], [-16.56, -71.62]]]")
    report = register([write(work / "deposits.yaml", swapped)], url=base)
    assert messages(report) == [
        "error: deposits.yaml:9: footprint: footprint leaves 3 registered collar(s) of the deposit more than "
        "1000 m outside: lon/lat swapped? (CV-003 is 7,076.9 km from it)"]
    report = register([write(work / "d.yaml", "- name: Open Ring\n  footprint:\n    type: Polygon\n"
                                              "    coordinates: [[[-70, -20], [-69, -20], [-69, -21]]]\n"
                                              "- name: Polar\n  lon: -60\n  lat: -85\n")], url=base)
    assert messages(report) == [
        "error: d.yaml:2: footprint: polygon ring not closed: its last point must repeat the first (ring 1)",
        "error: d.yaml:5: footprint: footprint beyond the UTM range (80S..84N): lon/lat swapped? "
        "(bounds -60, -85, -60, -85)"]
    report = register([write(work / "c.csv", COLLAR_HEAD + "DH-11,-71.55,-16.53,4326,2650,1e12,-60,90\n"
                                                           "DH-12,-71.55,-16.53,4326,1e6,100,-60,90\n")],
                      url=base, deposit=DEPOSIT)
    assert messages(report) == [
        "error: c.csv:2: EOH: hole length beyond 15,000 m (value 1000000000000)",
        "error: c.csv:3: Z: collar elevation outside -11,500..9,000 m (value 1000000)"]


# --------------------------------------------------------------------------- CLI
def test_cli_exit_codes(base: str, work: Path, run_mis, mis_env) -> None:
    mis_env["MIS_DATABASE_URL"] = base
    help_ = run_mis("register", "--help")
    if help_.returncode != 0:
        pytest.skip("`mis register` is not attached to the main app yet (cli.py)")
    bad = write(work / "bad.csv", SAMPLE_HEAD + "CV-003,S-1,5,4,plug,\n")
    result = run_mis("register", str(work / bad))
    assert result.returncode == 1
    assert "TO: from must be less than to (value 4; from 5)" in result.stderr
    ok = run_mis("register", *[str(work / f) for f in BASE_FILES])
    assert ok.returncode == 0, ok.stderr
    assert "0 record(s) changed" in ok.stdout


def test_cli_commands_in_process(base: str, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import typer
    from typer.testing import CliRunner

    from mis.cli_register import export_cmd, register_cmd

    app = typer.Typer()
    app.command("register")(register_cmd)
    app.command("export")(export_cmd)
    monkeypatch.setenv("MIS_DATABASE_URL", base)
    runner = CliRunner()
    write(work / "p.csv", SAMPLE_HEAD + "CV-003,S-1,5,6,plug,\n")
    result = runner.invoke(app, ["register", "--samples", "p.csv", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "dry run, nothing written" in result.output
    result = runner.invoke(app, ["register", "--surveys", "p.csv"])
    assert result.exit_code == 1
    assert "required column missing" in result.output
    result = runner.invoke(app, ["register"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["export", "--out", "out", DEPOSIT])
    assert result.exit_code == 0, result.output
    assert (work / "out" / "collars.csv").read_text().count("\n") == 4


# --------------------------------------------------------------------------- concurrency
def test_concurrent_registrations_of_one_hole_lose_no_update(base: str, work: Path) -> None:
    """One registration changes CV-001's collar, another its surveys, at the same time.

    The test holds CV-001's row locked while both start, so that without serialisation both
    plan on the old state and the one committing second silently undoes the other (its
    stale collar, or a trace from the old surveys). Serialised, the second plans on what
    the first wrote and both changes stay."""
    import threading
    import time

    write(work / "c.csv", "HOLE_ID,LON,LAT,Z,EOH,DIP,AZIMUTH\nCV-001,-71.58,-16.53,2999.5,300,-60,90\n")
    write(work / "s.csv", "HOLE_ID,DEPTH,DIP,AZIMUTH\nCV-001,0,-60,90\nCV-001,100,-50,100\nCV-001,150,-45,105\n"
                          "CV-001,200,-40,110\nCV-001,250,-35,115\nCV-001,300,-30,120\n")
    reports = {}
    with psycopg.connect(libpq(base)) as holder:
        holder.execute("SELECT 1 FROM drillcore WHERE name = 'CV-001' FOR UPDATE")
        threads = [threading.Thread(target=lambda f=f: reports.setdefault(f, register([f], url=base, deposit=DEPOSIT)))
                   for f in ("c.csv", "s.csv")]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while query(base, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                          "AND datname = current_database()")[0][0] < 2:
            assert time.monotonic() < deadline, "the registrations did not both reach the hole"
            time.sleep(0.05)
        holder.rollback()
    for t in threads:
        t.join(60)
    assert all(r.ok and r.written for r in reports.values()), [r.render() for r in reports.values()]
    elevation, start_z, end = query(base, "SELECT elevation_m, ST_Z(ST_StartPoint(trace)), "
                                           "ARRAY[ST_X(ST_EndPoint(trace)), ST_Y(ST_EndPoint(trace)), "
                                           "ST_Z(ST_EndPoint(trace))] FROM drillcore WHERE name = 'CV-001'")[0]
    assert elevation == 2999.5 and start_z == 2999.5  # the collar change stands ...
    assert query(base, "SELECT count(*) FROM survey_station s JOIN drillcore h ON h.id = s.drillcore_id "
                       "WHERE h.name = 'CV-001'")[0][0] == 6  # ... and so do the surveys
    again = register(["c.csv", "s.csv"], url=base, deposit=DEPOSIT, dry_run=True)
    assert again.changed == 0, again.render()  # what is stored is what both registered
    # the trace is the one of the new collar and the new surveys together
    trace = desurvey(Collar(-71.58, -16.53, 2999.5, length=300.0), [0, 100, 150, 200, 250, 300],
                     [-60, -50, -45, -40, -35, -30], [90, 100, 105, 110, 115, 120])
    bottom = trace.position_at([300.0])
    np.testing.assert_allclose(end, [bottom.lon[0], bottom.lat[0], bottom.z[0]], atol=1e-6)
