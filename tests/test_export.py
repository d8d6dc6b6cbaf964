"""Export to the registration layout, and the lossless round trip.

export -> register into an empty catalogue -> export gives identical files; registering
an export into the catalogue it came from changes nothing.
"""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest

from mis.catalogue.register import export, register
from tests.test_register import (  # noqa: F401 - fixtures
    DEPOSIT,
    base,
    query,
    snapshot,
    templates,
    url,
    work,
    write,
)

#: Holes that use every collar field: magnetic and grid azimuths, a projected CRS,
#: text that needs CSV quoting, an elevation reference.
EXTRA_COLLARS = (
    "HOLE_ID,DEPOSIT,EASTING,NORTHING,EPSG,Z,EOH,DIP,AZIMUTH,AZ_REF,MAG_DEC,ELEV_REF,METHOD,START_DATE,END_DATE,"
    "COMPANY,CORE_STORE,PURPOSE\n"
    f'CV-010,{DEPOSIT},226000.25,8170000.125,32719,2655.75,180.5,-55.5,45.25,magnetic,-3.2,collar,RC,'
    '2022-01-31,2022-02-02,"Test Mining ""Sur"" SA","Shed 2, bay 4",\n'
    f"CV-011,{DEPOSIT},226100,8170100,32719,2650,90,-70,300,grid,,ground surface,DD,,,,,infill\n"
)
EXTRA_SURVEYS = "HOLE_ID,DEPTH,DIP,AZIMUTH\nCV-010,0,-55.5,45.25\nCV-010,90.1,-54.9,47.7\nCV-011,45,-69,301\n"
EXTRA_SAMPLES = ("HOLE_ID,SAMPLE_ID,FROM,TO,SAMPLE_TYPE,LITHOLOGY,DESCRIPTION\n"
                 'CV-010,CV-010-A,100.125,100.375,core photo,basalt,"two lines:\nvein, 2 cm"\n'
                 "CV-011,CV-011-A,1,1.1,polished block,granite,\n")


@pytest.fixture
def rich(base: str, work: Path) -> str:
    files = [write(work / "c.csv", EXTRA_COLLARS), write(work / "s.csv", EXTRA_SURVEYS),
             write(work / "p.csv", EXTRA_SAMPLES)]
    report = register(files, url=base)
    assert report.ok and report.written, report.render()
    return base


def test_export_layout(rich: str, work: Path) -> None:
    result = export(work / "out", url=rich)
    assert [f.name for f in result.files] == ["deposits.yaml", "collars.csv", "surveys.csv", "samples.csv"]
    assert (result.deposits, result.holes, result.surveys, result.samples) == (2, 5, 11, 7)
    collars = (work / "out" / "collars.csv").read_text().splitlines()
    assert collars[0] == ("HOLE_ID,DEPOSIT,X,Y,EPSG,Z,LENGTH,DIP,AZIMUTH,AZIMUTH_REFERENCE,DECLINATION,"
                          "ELEVATION_REFERENCE,DRILLING_METHOD,START_DATE,END_DATE,OPERATOR,CUSTODIAN,PURPOSE")
    assert collars[4] == ('CV-010,Cerro Verde Test,226000.25,8170000.125,32719,2655.75,180.5,-55.5,45.25,magnetic,'
                          '-3.2,collar,reverse circulation drilling,2022-01-31,2022-02-02,"Test Mining ""Sur"" SA",'
                          '"Shed 2, bay 4",')
    deposits = (work / "out" / "deposits.yaml").read_text()
    assert "commodities: [Cu, Mo]" in deposits  # commodities by notation
    assert "deposit_model: epithermal vein, low sulphidation" in deposits  # free text kept


def test_round_trip_is_lossless(rich: str, url: str, work: Path) -> None:
    first = export(work / "a", url=rich)
    report = register(first.files, url=url)
    assert report.ok and report.written, report.render()
    assert [f.rule for f in report.findings] == ["no survey at the collar"]  # CV-011, as when first registered
    second = export(work / "b", url=url)
    for a, b in zip(first.files, second.files, strict=True):
        assert filecmp.cmp(a, b, shallow=False), f"{a.name} differs after the round trip"
    # the same traces and positions were computed from the exported data
    sql = ("SELECT h.name, ST_AsText(h.collar), h.local_epsg, ST_NPoints(h.trace) FROM drillcore h ORDER BY 1")
    assert query(url, sql) == query(rich, sql)
    sql = "SELECT p.name, ST_X(position), ST_Y(position), ST_Z(position) FROM plug p ORDER BY 1"
    for (n1, *a), (n2, *b) in zip(query(url, sql), query(rich, sql), strict=True):
        assert n1 == n2 and a == pytest.approx(b, abs=1e-9)


def test_registering_an_export_again_is_a_no_op(rich: str, work: Path) -> None:
    files = export(work / "a", url=rich).files
    before = snapshot(rich)
    report = register(files, url=rich)
    assert report.ok and report.changed == 0, report.render()
    assert snapshot(rich) == before


def test_export_one_deposit_and_unknown_deposit(base: str, work: Path) -> None:
    result = export(work / "one", ["Point Prospect"], url=base)
    assert (result.deposits, result.holes) == (1, 0)
    assert (work / "one" / "collars.csv").read_text().count("\n") == 1  # the header only
    with pytest.raises(ValueError, match="unknown deposit.s.: Nowhere"):
        export(work / "none", ["Nowhere"], url=base)
