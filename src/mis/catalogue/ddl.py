"""Rules that span tables, enforced in PostgreSQL by constraint triggers.

CHECK constraints see one row; these rules need another table, so they are triggers that
raise ``check_violation`` (SQLSTATE 23514) with a constraint name and a message a data
manager can act on. The migrations install them from here (``install``/``uninstall``), so
the SQL lives once.
"""

from __future__ import annotations

from collections.abc import Callable

#: Tolerance on "a rock's constituents sum to at most 1".
PROPORTION_TOLERANCE = 1e-6

FUNCTIONS = {
    "mis_depth_within_hole": r"""
CREATE OR REPLACE FUNCTION mis_depth_within_hole() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    hole_length double precision;
    hole_name text;
    deepest double precision;
BEGIN
    IF TG_TABLE_NAME <> 'drillcore' THEN
        SELECT length_m, name INTO hole_length, hole_name FROM drillcore WHERE id = NEW.drillcore_id;
    END IF;
    IF TG_TABLE_NAME = 'plug' THEN
        IF NEW.to_m > hole_length THEN
            RAISE EXCEPTION USING ERRCODE = 'check_violation', CONSTRAINT = 'ck_plug_within_hole',
                MESSAGE = format('plug %s: to_m %s is beyond the end of hole %s (length_m %s)',
                                 NEW.name, NEW.to_m, hole_name, hole_length);
        END IF;
    ELSIF TG_TABLE_NAME = 'survey_station' THEN
        IF NEW.depth_m > hole_length THEN
            RAISE EXCEPTION USING ERRCODE = 'check_violation',
                CONSTRAINT = 'ck_survey_station_within_hole',
                MESSAGE = format('survey at depth_m %s is beyond the end of hole %s (length_m %s)',
                                 NEW.depth_m, hole_name, hole_length);
        END IF;
    ELSE
        SELECT greatest(
                   (SELECT max(to_m) FROM plug WHERE drillcore_id = NEW.id),
                   (SELECT max(depth_m) FROM survey_station WHERE drillcore_id = NEW.id))
          INTO deepest;
        IF deepest > NEW.length_m THEN
            RAISE EXCEPTION USING ERRCODE = 'check_violation',
                CONSTRAINT = 'ck_drillcore_length_covers_samples',
                MESSAGE = format('hole %s: length_m %s is shorter than its deepest plug or survey (%s m)',
                                 NEW.name, NEW.length_m, deepest);
        END IF;
    END IF;
    RETURN NEW;
END $$;
""",
    "mis_constituents_sum": rf"""
CREATE OR REPLACE FUNCTION mis_constituents_sum() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    area_sum double precision;
    wt_sum double precision;
BEGIN
    SELECT coalesce(sum(proportion_area), 0), coalesce(sum(proportion_wt), 0)
      INTO area_sum, wt_sum FROM rock_constituent WHERE rock_id = NEW.rock_id;
    IF area_sum > 1 + {PROPORTION_TOLERANCE} OR wt_sum > 1 + {PROPORTION_TOLERANCE} THEN
        RAISE EXCEPTION USING ERRCODE = 'check_violation',
            CONSTRAINT = 'ck_rock_constituents_sum',
            MESSAGE = format('rock %s: constituent proportions sum to %s (area) and %s (wt); each must be <= 1',
                             NEW.rock_id, round(area_sum::numeric, 6), round(wt_sum::numeric, 6));
    END IF;
    RETURN NULL;
END $$;
""",
}

TRIGGERS = {
    "trg_plug_within_hole": """
CREATE TRIGGER trg_plug_within_hole BEFORE INSERT OR UPDATE OF from_m, to_m, drillcore_id
ON plug FOR EACH ROW EXECUTE FUNCTION mis_depth_within_hole()""",
    "trg_survey_station_within_hole": """
CREATE TRIGGER trg_survey_station_within_hole BEFORE INSERT OR UPDATE OF depth_m, drillcore_id
ON survey_station FOR EACH ROW EXECUTE FUNCTION mis_depth_within_hole()""",
    "trg_drillcore_length_covers_samples": """
CREATE TRIGGER trg_drillcore_length_covers_samples BEFORE UPDATE OF length_m
ON drillcore FOR EACH ROW EXECUTE FUNCTION mis_depth_within_hole()""",
    "trg_rock_constituents_sum": """
CREATE CONSTRAINT TRIGGER trg_rock_constituents_sum AFTER INSERT OR UPDATE
ON rock_constituent DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW EXECUTE FUNCTION mis_constituents_sum()""",
}

_TRIGGER_TABLES = {
    "trg_plug_within_hole": "plug",
    "trg_survey_station_within_hole": "survey_station",
    "trg_drillcore_length_covers_samples": "drillcore",
    "trg_rock_constituents_sum": "rock_constituent",
}


def install(execute: Callable[[str], object]) -> None:
    """Create the functions and triggers (``execute`` is e.g. ``op.execute``)."""
    for sql in FUNCTIONS.values():
        execute(sql)
    for sql in TRIGGERS.values():
        execute(sql)


def uninstall(execute: Callable[[str], object]) -> None:
    for name, table in _TRIGGER_TABLES.items():
        execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
    for name in FUNCTIONS:
        execute(f"DROP FUNCTION IF EXISTS {name}()")
