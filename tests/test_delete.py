"""Nothing disappears silently: deletes with children need an explicit cascade."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from mis.catalogue import models as m
from mis.catalogue.delete import delete
from mis.catalogue.errors import CatalogueError

from tests import factories as f


def _tree(session):
    dep = f.deposit(session)
    hole = f.drillcore(session, dep)
    session.add(m.SurveyStation(drillcore_id=hole.id, depth_m=0, dip=-60, azimuth=90))
    f.plug(session, hole, "P-1")
    f.plug(session, hole, "P-2", 20, 21)
    session.commit()
    return dep, hole


def test_delete_with_children_is_refused_and_nothing_goes(session):
    dep, hole = _tree(session)
    with pytest.raises(CatalogueError, match=r"drillcore \d+ still has 2 plug; nothing was deleted"):
        delete(session, m.DrillCore, hole.id)
    session.rollback()
    assert session.scalar(select(func.count()).select_from(m.Plug)) == 2


def test_database_itself_refuses_a_silent_cascade(session):
    dep, hole = _tree(session)
    with pytest.raises(IntegrityError, match="fk_plug_drillcore_id_drillcore"):
        session.execute(m.DrillCore.__table__.delete().where(m.DrillCore.id == hole.id))
    session.rollback()


def test_explicit_cascade_deletes_the_subtree_and_reports_it(session):
    dep, hole = _tree(session)
    report = delete(session, m.Deposit, dep.id, cascade=True)
    session.commit()
    assert report.counts == {"plug": 2, "drillcore": 1, "deposit": 1}
    assert session.scalar(select(func.count()).select_from(m.SurveyStation)) == 0


def test_cli_delete_refuses_then_cascades(session, run_mis):
    dep, hole = _tree(session)
    refused = run_mis("delete", "drillcore", str(hole.id))
    assert refused.returncode == 1
    assert "still has 2 plug" in refused.stderr
    done = run_mis("delete", "drillcore", str(hole.id), "--cascade", check=True)
    assert "deleted: 2 plug, 1 drillcore" in done.stdout
