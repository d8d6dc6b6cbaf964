"""Rules that span tables, enforced in PostgreSQL by constraint triggers.

CHECK constraints see one row; these rules need another table, so they are triggers that
raise ``check_violation`` (SQLSTATE 23514) with a constraint name and a message a data
manager can act on. The migrations install them from here (``install``/``uninstall``), so
the SQL lives once.

Two groups, each installed by the migration that introduced it: :data:`RULES` (depth
within the hole, constituents summing to at most 1) and :data:`RUN_PARTITIONS` (the
lifecycle of the per-run partitions of ``grain`` and ``roxel``, see
:mod:`mis.catalogue.partitions`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

#: Tolerance on "a rock's constituents sum to at most 1".
PROPORTION_TOLERANCE = 1e-6

_RULE_FUNCTIONS = {
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

_RULE_TRIGGERS = {
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



@dataclass(frozen=True)
class Group:
    """Functions and triggers installed and removed together."""

    functions: dict[str, str]
    triggers: dict[str, str]
    tables: dict[str, str]  # trigger -> table
    #: Signatures for DROP FUNCTION (name -> argument types).
    arguments: dict[str, str]


RULES = Group(_RULE_FUNCTIONS, _RULE_TRIGGERS, _TRIGGER_TABLES, {})

_PARTITION_FUNCTIONS = {
    # The partitions of run ``run``, made the way any INSERT needs them: with the parents'
    # indexes and constraints, an id default (PostgreSQL 15 partitions do not inherit the
    # parent's identity) and the grain foreign key of the pair.
    "mis_run_partitions": r"""
CREATE OR REPLACE FUNCTION mis_run_partitions(run bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['grain', 'roxel'] LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES IN (%s)', t || '_run_' || run, t, run);
        EXECUTE format('ALTER TABLE %I ALTER COLUMN id SET DEFAULT nextval(%L::regclass)',
                       t || '_run_' || run, pg_get_serial_sequence(t, 'id'));
    END LOOP;
    PERFORM mis_run_grain_fk(run);
END $$;
""",
    "mis_run_grain_fk": r"""
CREATE OR REPLACE FUNCTION mis_run_grain_fk(run bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I FOREIGN KEY (dominant_grain_id, run_id) '
                   'REFERENCES %I (id, run_id) ON DELETE RESTRICT',
                   'roxel_run_' || run, 'fk_roxel_run_' || run || '_dominant_grain', 'grain_run_' || run);
END $$;
""",
    # INSERT: the run's partitions, unless the transaction makes its own
    # (SET LOCAL mis.run_partitions = 'manual': the run writer). DELETE (before): refuse
    # while the run's grains or roxels are there, like ON DELETE RESTRICT would.
    # DELETE (after): drop the run's (empty) partitions.
    "mis_segmentation_run_partitions": r"""
CREATE OR REPLACE FUNCTION mis_segmentation_run_partitions() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    t text;
    found boolean;
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF coalesce(current_setting('mis.run_partitions', true), '') <> 'manual' THEN
            PERFORM mis_run_partitions(NEW.id);
        END IF;
        RETURN NULL;
    ELSIF TG_WHEN = 'BEFORE' THEN
        FOREACH t IN ARRAY ARRAY['roxel', 'grain'] LOOP
            IF to_regclass(quote_ident(t || '_run_' || OLD.id)) IS NOT NULL THEN
                EXECUTE format('SELECT EXISTS (SELECT FROM %I)', t || '_run_' || OLD.id) INTO found;
                IF found THEN
                    RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
                        CONSTRAINT = 'fk_' || t || '_run_id_segmentation_run',
                        MESSAGE = format('segmentation run %s still has %ss; delete them with the run '
                                         '(mis delete run %s --cascade)', OLD.id, t, OLD.id);
                END IF;
            END IF;
        END LOOP;
        RETURN OLD;
    ELSE
        EXECUTE format('DROP TABLE IF EXISTS %I, %I', 'roxel_run_' || OLD.id, 'grain_run_' || OLD.id);
        RETURN NULL;
    END IF;
END $$;
""",
}

_PARTITION_TRIGGERS = {
        "trg_segmentation_run_partitions": """
CREATE TRIGGER trg_segmentation_run_partitions AFTER INSERT
ON segmentation_run FOR EACH ROW EXECUTE FUNCTION mis_segmentation_run_partitions()""",
        "trg_segmentation_run_restrict": """
CREATE TRIGGER trg_segmentation_run_restrict BEFORE DELETE
ON segmentation_run FOR EACH ROW EXECUTE FUNCTION mis_segmentation_run_partitions()""",
        "trg_segmentation_run_drop_partitions": """
CREATE TRIGGER trg_segmentation_run_drop_partitions AFTER DELETE
ON segmentation_run FOR EACH ROW EXECUTE FUNCTION mis_segmentation_run_partitions()""",
}

RUN_PARTITIONS = Group(
    _PARTITION_FUNCTIONS,
    _PARTITION_TRIGGERS,
    dict.fromkeys(_PARTITION_TRIGGERS, "segmentation_run"),
    {"mis_run_partitions": "bigint", "mis_run_grain_fk": "bigint"},
)


def install(execute: Callable[[str], object], group: Group = RULES) -> None:
    """Create a group's functions and triggers (``execute`` is e.g. ``op.execute``)."""
    for sql in group.functions.values():
        execute(sql)
    for sql in group.triggers.values():
        execute(sql)


def uninstall(execute: Callable[[str], object], group: Group = RULES) -> None:
    for name, table in group.tables.items():
        execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
    for name in group.functions:
        execute(f"DROP FUNCTION IF EXISTS {name}({group.arguments.get(name, '')})")
