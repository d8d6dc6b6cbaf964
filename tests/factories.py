"""Small, valid catalogue records for tests; each test changes what it is about."""

from __future__ import annotations

from geoalchemy2.shape import from_shape
from shapely.geometry import LineString, Point, Polygon
from sqlalchemy.orm import Session

from mis.catalogue import models as m

SCHEME = "test"
SAMPLE_TYPE = "https://example.org/test/thin-section"
LITHOLOGY = "https://example.org/test/granite"
MINERALS = ["https://example.org/test/quartz", "https://example.org/test/chalcopyrite"]


def concepts(session: Session) -> None:
    """The handful of concepts the records below point at."""
    if session.get(m.ConceptScheme, SCHEME) is None:
        session.add(m.ConceptScheme(key=SCHEME, uri="https://example.org/test", title="Test terms"))
        session.flush()
    for uri in [SAMPLE_TYPE, LITHOLOGY, *MINERALS]:
        if session.get(m.Concept, uri) is None:
            session.add(m.Concept(uri=uri, scheme=SCHEME, pref_label=uri.rsplit("/", 1)[1]))
    session.flush()


def deposit(session: Session, name: str = "Test Deposit") -> m.Deposit:
    concepts(session)
    dep = m.Deposit(
        name=name,
        footprint=from_shape(Polygon([(-70.1, -22.1), (-70.0, -22.1), (-70.0, -22.0), (-70.1, -22.1)]), 4326),
    )
    session.add(dep)
    session.flush()
    return dep


def drillcore(session: Session, dep: m.Deposit, name: str = "DH-1", length_m: float = 300.0) -> m.DrillCore:
    hole = m.DrillCore(
        deposit_id=dep.id,
        name=name,
        collar=from_shape(Point(-70.05, -22.05, 2500.0), 4326),
        elevation_m=2500.0,
        length_m=length_m,
        dip=-60.0,
        azimuth=90.0,
        trace=from_shape(LineString([(-70.05, -22.05, 2500.0), (-70.04, -22.05, 2240.0)]), 4326),
    )
    session.add(hole)
    session.flush()
    return hole


def plug_row(hole: m.DrillCore, name: str = "P-1", from_m: float = 10.0, to_m: float = 10.2,
             **fields) -> m.Plug:
    """A plug not yet added to any session (for tests that expect a refusal)."""
    return m.Plug(drillcore_id=hole.id, name=name, from_m=from_m, to_m=to_m, sample_type_uri=SAMPLE_TYPE,
                  position=from_shape(Point(-70.05, -22.05, 2500.0 - from_m), 4326), **fields)


def plug(session: Session, hole: m.DrillCore, name: str = "P-1", from_m: float = 10.0, to_m: float = 10.2) -> m.Plug:
    p = plug_row(hole, name, from_m, to_m)
    session.add(p)
    session.flush()
    return p
