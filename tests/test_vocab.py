"""The vocabulary in the catalogue: loaded, looked up, and guarded by foreign keys."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import rdflib
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from mis.catalogue import models as m
from mis.vocab.load import VocabularyError, load_vocabularies
from mis.vocab.lookup import TermIndex, UnknownTermError, broader, narrower, resolve
from mis.vocab.skos import ontology_dir

from tests import factories as f

LITH = "http://resource.geosciml.org/classifier/cgi/lithology/"


def counts(session) -> dict[str, int]:
    return dict(session.execute(select(m.Concept.scheme, func.count()).group_by(m.Concept.scheme)).all())


def test_every_scheme_is_loaded(session):
    n = counts(session)
    assert n["lithology"] == 265
    assert n["mineral"] >= 150
    for scheme in ("commodity", "drilling-method", "occurrence-type", "constituent-role",
                   "proportion-term", "sample-type", "image-modality", "deposit-model"):
        assert n.get(scheme, 0) > 0, scheme


def test_polyhierarchy_is_preserved(session):
    assert len(broader(session, LITH + "basalt")) == 2


def test_narrower_walks_the_hierarchy(session):
    igneous = narrower(session, LITH + "igneous_rock")
    assert LITH + "basalt" in igneous and LITH + "granodiorite" in igneous
    assert LITH + "sandstone" not in igneous


@pytest.mark.parametrize("typed", ["Ccp", "chalcopyrite", "CHALCOPYRITE", " Chalcopyrite "])
def test_symbol_label_and_case_resolve_to_one_uri(session, typed):
    assert resolve(session, typed, "mineral").pref_label == "chalcopyrite"


def test_commodity_notation_resolves(session):
    assert resolve(session, "Cu", "commodity").notation == "Cu"


def test_typo_suggests_the_closest_term(session):
    with pytest.raises(UnknownTermError, match=r"unknown term 'chalcopyrit' in scheme 'mineral'; did you mean 'chalcopyrite'"):
        resolve(session, "chalcopyrit", "mineral")


def test_search_finds_partial_names(session):
    index = TermIndex.from_session(session)
    assert any(t.pref_label == "granodiorite" for t in index.search("granodior"))


def test_unknown_uri_is_refused_by_the_database(session):
    hole = f.drillcore(session, f.deposit(session))
    hole.drilling_method_uri = "http://resource.geosciml.org/classifier/cgi/boreholedrillingmethod/teleportation"
    with pytest.raises(IntegrityError, match="fk_drillcore_drilling_method_uri_concept"):
        session.flush()


def test_reload_is_idempotent_and_keeps_ids(db_url, session):
    before = dict(session.execute(select(m.Concept.uri, m.Concept.id)).all())
    report = load_vocabularies(url=db_url, progress=False)
    assert (report.added, report.updated, report.removed) == (0, 0, 0)
    session.expire_all()
    assert dict(session.execute(select(m.Concept.uri, m.Concept.id)).all()) == before


def _ontology_copy(tmp_path: Path) -> Path:
    target = tmp_path / "ontology"
    shutil.copytree(ontology_dir(), target)
    return target


def test_a_changed_label_updates_in_place(db_url, session, tmp_path):
    onto = _ontology_copy(tmp_path)
    ttl = onto / "lithology.ttl"
    ttl.write_text(ttl.read_text().replace('"granodiorite"@en', '"granodiorite (revised)"@en'))
    report = load_vocabularies(onto, url=db_url, schemes=["lithology"], progress=False)
    assert report.updated == 1 and report.added == 0
    assert session.get(m.Concept, LITH + "granodiorite").pref_label == "granodiorite (revised)"


def test_a_used_concept_cannot_be_removed(db_url, session, tmp_path):
    hole = f.drillcore(session, f.deposit(session))
    hole.drilling_method_uri = resolve(session, "cable tool drilling", "drilling-method").uri
    session.commit()
    onto = _ontology_copy(tmp_path)
    ttl = onto / "drilling-method.ttl"
    graph = rdflib.Graph().parse(ttl)
    gone = rdflib.URIRef(hole.drilling_method_uri)
    graph.remove((gone, None, None))
    graph.remove((None, None, gone))
    graph.serialize(ttl, format="turtle")
    with pytest.raises(VocabularyError, match=r"(?s)still in use.*cable_tool_drilling: used by drillcore.drilling_method_uri \(1 row\)"):
        load_vocabularies(onto, url=db_url, schemes=["drilling-method"], progress=False)
    session.expire_all()
    assert session.get(m.Concept, hole.drilling_method_uri) is not None


def test_cli_search(run_mis):
    out = run_mis("vocab", "search", "CCP", "--scheme", "mineral", check=True).stdout
    assert out.splitlines()[0].startswith("chalcopyrite\tCcp\tmineral\t")
