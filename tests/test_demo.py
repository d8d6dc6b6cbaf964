"""The README's main command: `mis demo` runs end to end, and a second run changes nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from mis.catalogue import models as m


def test_demo_end_to_end_and_idempotent(run_mis, session):
    first = run_mis("demo", check=True)
    assert "sample deposit: 49 record(s) changed" in first.stdout
    counts = {model.__tablename__: session.scalar(select(func.count()).select_from(model))
              for model in (m.Deposit, m.DrillCore, m.SurveyStation, m.Plug)}
    assert counts == {"deposit": 1, "drillcore": 6, "survey_station": 70, "plug": 36}
    lengths = session.execute(select(m.DrillCore.length_m, func.ST_NPoints(m.DrillCore.trace))).all()
    assert all(points >= 9 for _, points in lengths)  # curved traces, one vertex per survey
    second = run_mis("demo", check=True)
    assert "sample deposit: 0 record(s) changed" in second.stdout
