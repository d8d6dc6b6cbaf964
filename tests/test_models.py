"""Every database rule refuses bad rows, with the message a user sees."""

from __future__ import annotations

import pytest
from geoalchemy2.shape import from_shape
from shapely.geometry import Point, Polygon
from sqlalchemy import inspect, text
from sqlalchemy.exc import DataError, IntegrityError

from mis.catalogue import models as m
from mis.catalogue.errors import CatalogueError, explain

from tests import factories as f


def refused(session, *objs, flush_only: bool = True) -> CatalogueError:
    """Add ``objs``, flush (or commit), and return the explained refusal."""
    with pytest.raises(IntegrityError) as info:
        session.add_all(objs)
        session.flush() if flush_only else session.commit()
    session.rollback()
    return explain(info.value)


def test_plug_from_must_be_before_to(session):
    hole = f.drillcore(session, f.deposit(session))
    error = refused(session, f.plug_row(hole, "bad", 12, 11))
    assert str(error).startswith("plug: from_m must be less than to_m [ck_plug_from_before_to]")


def test_plug_beyond_end_of_hole_is_refused(session):
    hole = f.drillcore(session, f.deposit(session), length_m=100)
    error = refused(session, f.plug_row(hole, "deep", 99.5, 100.5))
    assert "a plug must lie within 0..length_m of its hole [ck_plug_within_hole]" in str(error)
    assert "to_m 100.5 is beyond the end of hole DH-1 (length_m 100)" in str(error)


def test_negative_depth_is_refused(session):
    hole = f.drillcore(session, f.deposit(session))
    error = refused(session, f.plug_row(hole, "air", -1, 1))
    assert "from_m must be >= 0" in str(error)


def test_survey_beyond_end_of_hole_is_refused(session):
    hole = f.drillcore(session, f.deposit(session), length_m=50)
    error = refused(session, m.SurveyStation(drillcore_id=hole.id, depth_m=60, dip=-60, azimuth=10))
    assert "survey at depth_m 60 is beyond the end of hole DH-1 (length_m 50)" in str(error)


def test_shortening_a_hole_below_its_samples_is_refused(session):
    hole = f.drillcore(session, f.deposit(session), length_m=300)
    f.plug(session, hole, from_m=200, to_m=201)
    hole.length_m = 150
    error = refused(session)
    assert "length_m must cover every plug and survey of the hole" in str(error)
    assert "shorter than its deepest plug or survey (201 m)" in str(error)


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("dip", -91.0, "dip must be within [-90, 90] degrees"),
        ("dip", 90.5, "dip must be within [-90, 90] degrees"),
        ("azimuth", 360.0, "azimuth must be within [0, 360) degrees"),
        ("azimuth", -0.1, "azimuth must be within [0, 360) degrees"),
        ("length_m", 0.0, "length_m must be > 0"),
    ],
)
def test_drillcore_orientation_and_length_ranges(session, field, value, rule):
    hole = f.drillcore(session, f.deposit(session))
    setattr(hole, field, value)
    assert rule in str(refused(session))


@pytest.mark.parametrize(("field", "value"), [("dip", -95.0), ("azimuth", 400.0)])
def test_survey_orientation_ranges(session, field, value):
    hole = f.drillcore(session, f.deposit(session))
    station = m.SurveyStation(drillcore_id=hole.id, depth_m=10, dip=-60, azimuth=10)
    setattr(station, field, value)
    assert f"{field} must be within" in str(refused(session, station))


def test_names_unique_within_parent_not_globally(session):
    dep = f.deposit(session)
    hole = f.drillcore(session, dep, "DH-1")
    other = f.drillcore(session, dep, "DH-2")
    f.plug(session, hole, "P-1")
    f.plug(session, other, "P-1")  # same name, other hole: fine
    error = refused(session, f.plug_row(hole, "P-1", 50, 51))
    assert "plug: names must be unique within their parent [uq_plug_drillcore_id_name]" in str(error)


def test_unknown_concept_uri_is_refused(session):
    hole = f.drillcore(session, f.deposit(session))
    error = refused(session, f.plug_row(hole, "x", 1, 2, lithology_uri="https://example.org/test/granit"))
    assert "the referenced record or vocabulary concept must exist" in str(error)
    assert "granit" in str(error)


def test_constituents_must_sum_to_at_most_one(session):
    hole = f.drillcore(session, f.deposit(session))
    rock = m.Rock(plug_id=f.plug(session, hole).id)
    rock.constituents = [
        m.RockConstituent(mineral_uri=f.MINERALS[0], proportion_area=0.7),
        m.RockConstituent(mineral_uri=f.MINERALS[1], proportion_area=0.4),
    ]
    error = refused(session, rock, flush_only=False)  # deferred: checked at commit
    assert "a rock's constituent proportions must sum to at most 1" in str(error)
    assert "sum to 1.1" in str(error)


def test_constituents_summing_to_one_within_tolerance_are_accepted(session):
    hole = f.drillcore(session, f.deposit(session))
    rock = m.Rock(plug_id=f.plug(session, hole).id)
    rock.constituents = [
        m.RockConstituent(mineral_uri=f.MINERALS[0], proportion_area=0.6000001),
        m.RockConstituent(mineral_uri=f.MINERALS[1], proportion_area=0.4),
    ]
    session.add(rock)
    session.commit()


def test_proportion_out_of_range_is_refused(session):
    hole = f.drillcore(session, f.deposit(session))
    rock = m.Rock(plug_id=f.plug(session, hole).id)
    rock.constituents = [m.RockConstituent(mineral_uri=f.MINERALS[0], proportion_area=1.2)]
    assert "proportion_area must be within [0, 1]" in str(refused(session, rock))


def test_invalid_footprint_is_refused(session):
    f.concepts(session)
    bowtie = Polygon([(0, 0), (1, 1), (1, 0), (0, 1), (0, 0)])
    error = refused(session, m.Deposit(name="bowtie", footprint=from_shape(bowtie, 4326)))
    assert "the footprint must be a valid geometry" in str(error)


def test_geometry_srid_and_type_are_enforced(session):
    dep = f.deposit(session)
    hole = f.drillcore(session, dep)
    hole.collar = from_shape(Point(500000, 7500000, 2500), 32719)  # UTM, not 4326
    with pytest.raises((DataError, IntegrityError), match="SRID"):
        session.flush()
    session.rollback()


def test_magnetic_azimuth_needs_a_declination(session):
    hole = f.drillcore(session, f.deposit(session))
    hole.azimuth_reference = "magnetic"
    assert "needs magnetic_declination_deg" in str(refused(session))


def test_schema_has_spatial_and_foreign_key_indexes(engine):
    insp = inspect(engine)
    for table in m.Base.metadata.sorted_tables:
        indexed = {tuple(ix["column_names"]) for ix in insp.get_indexes(table.name)}
        indexed |= {tuple(c["column_names"]) for c in insp.get_unique_constraints(table.name)}
        indexed.add(tuple(insp.get_pk_constraint(table.name)["constrained_columns"]))
        leading = {cols[0] for cols in indexed if cols}
        for fk in insp.get_foreign_keys(table.name):
            assert fk["constrained_columns"][0] in leading, (table.name, fk["constrained_columns"])
        for column in table.columns:
            if column.type.__class__.__name__ == "Geometry":
                with engine.connect() as conn:
                    method = conn.execute(text(
                        "SELECT am.amname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                        "JOIN pg_am am ON am.oid = c.relam JOIN pg_attribute a "
                        "ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
                        "WHERE i.indrelid = CAST(:t AS regclass) AND a.attname = :c"),
                        {"t": table.name, "c": column.name}).scalar()
                assert method == "gist", (table.name, column.name)


def test_geometry_columns_are_typed(engine):
    with engine.connect() as conn:
        rows = dict(
            ((r.f_table_name, r.f_geometry_column), (r.type, r.srid, r.coord_dimension))
            for r in conn.execute(text("SELECT * FROM geometry_columns"))
        )
    assert rows[("drillcore", "collar")] == ("POINT", 4326, 3)
    assert rows[("drillcore", "trace")] == ("LINESTRING", 4326, 3)
    assert rows[("plug", "position")] == ("POINT", 4326, 3)
    assert rows[("roxel", "position")] == ("POINT", 4326, 3)
    assert rows[("deposit", "footprint")][1:] == (4326, 2)  # type: Polygon|MultiPolygon|Point (CHECK)
    assert rows[("grain", "outline")] == ("POLYGON", 0, 2)
