"""Per-run partitions of grain and roxel: made with the run, refused and dropped with it,
made bare and attached by the run writer, and safe with concurrent writers."""

from __future__ import annotations

import threading

import numpy as np
import psycopg
import pytest
from sqlalchemy import select, text

from mis.catalogue import migrate
from mis.catalogue import models as m
from mis.catalogue.delete import delete
from mis.catalogue.partitions import ESTIMATED_ROWS, is_partition, partition_name
from mis.ingest.run import ingest
from mis.ingest.writer import libpq_url

from tests.test_ingest import CLASSES, URIS, add_image, make_labels, plug  # noqa: F401  (fixture)


POINT = "'SRID=4326;POINT Z (-70 -22 2400)'"


def partitions_of(session, table: str) -> set[str]:
    return set(session.scalars(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = CAST(:t AS regclass)"), {"t": table}))


def a_run(session, plug) -> int:  # noqa: F811
    image = add_image(session, plug, name=f"img{len(session.scalars(select(m.Image.id)).all())}")
    run = m.SegmentationRun(image_id=image, software_version="test")
    session.add(run)
    session.commit()
    return run.id


def test_names():
    assert partition_name("roxel", 7) == "roxel_run_7" and is_partition("grain_run_12")
    assert not is_partition("roxel") and not is_partition("roxel_run_x")
    with pytest.raises(ValueError):
        partition_name("plug", 1)


def test_a_new_run_gets_partitions_that_take_plain_inserts(session, plug):  # noqa: F811
    run = a_run(session, plug)
    assert partitions_of(session, "roxel") == {f"roxel_run_{run}"}
    assert partitions_of(session, "grain") == {f"grain_run_{run}"}
    quartz = session.scalar(select(m.Concept.id).where(m.Concept.uri.like("%/mineral/quartz")))
    # through the parent and straight into the partition: ids come from the parent's sequence
    session.execute(text(
        "INSERT INTO grain (run_id, label, mineral_id, outline, centroid_x_um, centroid_y_um, area_um2, "
        "perimeter_um, ecd_um, major_axis_um, minor_axis_um, orientation_deg, aspect_ratio, solidity, "
        "form_factor, roundness, feret_max_um, feret_min_um, touches_border, chunk_keys) "
        "VALUES (:r, 1, :q, 'POLYGON((0 0,1 0,1 1,0 0))', 0, 0, 1, 4, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, false, '{}')"),
        {"r": run, "q": quartz})
    grain = session.scalar(select(m.Grain.id).where(m.Grain.run_id == run))
    for table in ("roxel", f"roxel_run_{run}"):
        session.execute(text(
            f"INSERT INTO {table} (run_id, row, col, composition, dominant_class_id, dominant_fraction, "
            f"dominant_grain_id, position) VALUES (:r, 0, :c, '{{1}}', :q, 1, :g, {POINT})"),
            {"r": run, "q": quartz, "g": grain, "c": 0 if table == "roxel" else 1})
    ids = session.scalars(select(m.Roxel.id).order_by(m.Roxel.col)).all()
    assert len(set(ids)) == 2 and None not in ids
    with pytest.raises(Exception, match="fk_roxel_run_.*dominant_grain"):  # a grain of this run only
        with session.begin_nested():
            session.execute(text(
                "INSERT INTO roxel (run_id, row, col, composition, dominant_class_id, dominant_fraction, "
                f"dominant_grain_id, position) VALUES (:r, 1, 0, '{{1}}', :q, 1, :g, {POINT})"), {"r": run, "q": quartz, "g": grain + 999})
    with pytest.raises(Exception, match="no partition"):  # no run 0, no partition for it
        with session.begin_nested():
            session.execute(text(
                "INSERT INTO roxel (run_id, row, col, composition, dominant_class_id, dominant_fraction, position) "
                f"VALUES (0, 1, 0, '{{1}}', :q, 1, {POINT})"), {"q": quartz})
    session.commit()

    # a run with rows cannot be deleted behind the hierarchy's back...
    with pytest.raises(Exception, match=f"segmentation run {run} still has roxels"):
        with session.begin_nested():
            session.execute(text("DELETE FROM segmentation_run WHERE id = :r"), {"r": run})
    # ... but with an explicit cascade its partitions go, counted
    report = delete(session, m.SegmentationRun, run, cascade=True)
    session.commit()
    assert report.counts == {"roxel": 2, "grain": 1, "segmentation_run": 1}
    assert partitions_of(session, "roxel") == set() == partitions_of(session, "grain")


def test_an_empty_run_deletes_plainly_and_takes_its_partitions(session, plug):  # noqa: F811
    run = a_run(session, plug)
    session.execute(text("DELETE FROM segmentation_run WHERE id = :r"), {"r": run})
    session.commit()
    assert partitions_of(session, "roxel") == set()


def test_the_writer_attaches_its_run_and_drops_the_one_it_replaces(db_url, session, plug):  # noqa: F811
    image = add_image(session, plug)
    first = ingest(image, make_labels(3), None, CLASSES, url=db_url, progress=False)
    second = ingest(image, make_labels(4), None, CLASSES, url=db_url, progress=False)
    assert partitions_of(session, "roxel") == {f"roxel_run_{second.run_id}"}
    assert partitions_of(session, "grain") == {f"grain_run_{second.run_id}"}
    assert first.run_id != second.run_id
    with psycopg.connect(libpq_url(db_url)) as conn:
        indexes = {t: conn.execute("SELECT count(*) FROM pg_indexes WHERE tablename = %s",
                                   (partition_name(t, second.run_id),)).fetchone()[0] for t in ("grain", "roxel")}
        parents = {t: conn.execute("SELECT count(*) FROM pg_indexes WHERE tablename = %s", (t,)).fetchone()[0]
                   for t in ("grain", "roxel")}
        fks = conn.execute("SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
                           (partition_name("roxel", second.run_id),)).fetchall()
    assert indexes == parents  # every index of the parents, built at attach time
    # analyzed with the rows: the planner and the API's count estimates see the run at once
    assert session.scalar(text(ESTIMATED_ROWS), {"t": "public.roxel"}) == second.roxels
    assert session.scalar(text(ESTIMATED_ROWS), {"t": "public.grain"}) == second.grains
    assert {f"fk_roxel_run_{second.run_id}_dominant_grain"} <= {r[0] for r in fks}


def test_concurrent_writers_do_not_deadlock(db_url, session, plug):  # noqa: F811
    """Two ingestions in flight: each attaches while the other holds its open transaction."""
    images = [add_image(session, plug, name=f"c{i}") for i in range(2)]
    from mis.grains.rock import load_classes
    from mis.grains.roxels import roxel_dtype
    from mis.ingest.writer import RunWriter

    uris = URIS
    classes = load_classes(session, uris)
    rec = np.zeros(1000, dtype=roxel_dtype(4))
    rec["row"], rec["col"] = np.arange(1000) // 40, np.arange(1000) % 40
    rec["composition"][:, 1], rec["dominant_class"], rec["dominant_fraction"] = 1, 1, 1
    rec["dominant_grain_id"], rec["depth_m"] = -1, 100.1
    rec["lon"], rec["lat"], rec["z"] = -70.05, -22.05, 2400.0
    writers = [RunWriter(db_url, image_id=i, name="default", classes=classes) for i in images]
    for w in writers:  # both open: both hold their run rows' locks
        w.open()
        w.write_roxels(rec)
    errors: list[BaseException] = []

    def finish(w):
        try:
            w.commit()
        except BaseException as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)

    threads = [threading.Thread(target=finish, args=(w,)) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads) and not errors, errors
    assert session.scalar(select(m.SegmentationRun.status).where(m.SegmentationRun.image_id == images[1])) == "complete"
    assert partitions_of(session, "roxel") == {f"roxel_run_{w.run_id}" for w in writers}


def test_migrating_down_and_up_keeps_runs_rows_and_ids(db_url, session, plug):  # noqa: F811
    image = add_image(session, plug)
    run = ingest(image, make_labels(3), None, CLASSES, url=db_url, progress=False)
    session.close()

    def state():
        with psycopg.connect(libpq_url(db_url)) as conn:
            return (conn.execute("SELECT relkind FROM pg_class WHERE relname = 'roxel'").fetchone()[0],
                    conn.execute("SELECT count(*), max(id) FROM roxel").fetchone(),
                    conn.execute("SELECT count(*), sum(area_um2) FROM grain").fetchone())

    kind, roxels, grains = state()
    assert kind == "p" and roxels[0] == run.roxels and grains[0] == run.grains
    migrate.downgrade(db_url, "0004")
    assert state() == ("r", roxels, grains)
    migrate.upgrade(db_url)
    assert state() == ("p", roxels, grains)
    migrate.check(db_url)
    again = ingest(image, make_labels(3), None, CLASSES, url=db_url, progress=False)
    with psycopg.connect(libpq_url(db_url)) as conn:
        assert conn.execute("SELECT min(id) FROM roxel WHERE run_id = %s", (again.run_id,)).fetchone()[0] > roxels[1]
