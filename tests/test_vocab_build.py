"""The SKOS ontology build (no database): ontology/*.ttl, the mineral list, the reader."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rdflib import Graph, URIRef
from rdflib.compare import isomorphic
from rdflib.namespace import SKOS

from mis.vocab import build as vocab_build
from mis.vocab import minerals as mineral_data
from mis.vocab.skos import Concept, OntologyError, ontology_dir, read_ontology

REPO = Path(__file__).resolve().parents[1]
ONTOLOGY = REPO / "ontology"
SOURCES = vocab_build.default_sources()
LITH = "http://resource.geosciml.org/classifier/cgi/lithology/"
MINERAL = "https://w3id.org/mis/vocab/mineral/"

needs_sources = pytest.mark.skipif(
    not (SOURCES / "cgi-2016" / "simplelithology.rdf").is_file(),
    reason=f"source vocabularies not found at {SOURCES} (set MIS_VOCAB_SOURCES)",
)


@pytest.fixture(scope="module")
def ontology() -> tuple[dict, dict[str, Concept]]:
    schemes, concepts = read_ontology(ONTOLOGY)
    return {s.key: s for s in schemes}, {c.uri: c for c in concepts}


@pytest.fixture(scope="module")
def fresh() -> vocab_build.BuildResult:
    if not (SOURCES / "cgi-2016" / "simplelithology.rdf").is_file():
        pytest.skip(f"source vocabularies not found at {SOURCES} (set MIS_VOCAB_SOURCES)")
    return vocab_build.build(SOURCES)


@pytest.fixture(scope="module")
def warr() -> dict[str, mineral_data.WarrEntry]:
    if not (SOURCES / mineral_data.WARR_XLSX).is_file():
        pytest.skip(f"Warr (2021) table not found under {SOURCES} (set MIS_VOCAB_SOURCES)")
    return mineral_data.read_warr(SOURCES / mineral_data.WARR_XLSX)


def _scheme(concepts: dict[str, Concept], key: str) -> list[Concept]:
    return [c for c in concepts.values() if c.scheme_key == key]


# ----------------------------------------------------------------------------- rebuild
@needs_sources
def test_rebuild_is_byte_identical_to_committed_ontology(fresh, tmp_path):
    committed = {p.name: p.read_text(encoding="utf-8") for p in ONTOLOGY.glob("*.ttl")}
    assert set(committed) == set(fresh.files)
    stale = sorted(name for name, text in fresh.files.items() if committed[name] != text)
    assert not stale, f"ontology/ is out of date, run `mis vocab build`: {stale}"
    # writing then checking a fresh directory round-trips too
    vocab_build.write(fresh, tmp_path)
    assert vocab_build.check(fresh, tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(fresh.files)


@needs_sources
def test_turtle_parses_back_to_the_built_graphs(fresh):
    for key, graph in fresh.graphs.items():
        parsed = Graph().parse(data=fresh.files[f"{key}.ttl"], format="turtle")
        assert isomorphic(parsed, graph), key
    Graph().parse(data=fresh.files["mis-def.ttl"], format="turtle")


@needs_sources
def test_check_reports_an_edited_file(fresh, tmp_path):
    vocab_build.write(fresh, tmp_path)
    path = tmp_path / "proportion-term.ttl"
    path.write_text(path.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
    assert vocab_build.check(fresh, tmp_path) == ["proportion-term.ttl"]


@needs_sources
def test_mis_vocab_build_checks_writes_and_fails_on_a_stale_file(tmp_path):
    """The command line (``mis vocab build``, also spelled ``python -m mis.vocab.build`` as
    the generated headers say): --check passes on the committed ontology, a build writes a
    fresh folder, and --check then fails (exit 1) once a file there is edited."""
    def mis(*args: str, module: tuple[str, ...] = ("-m", "mis", "vocab", "build")) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *module, *args, "--sources", str(SOURCES)],
                              capture_output=True, text=True, timeout=300)

    assert mis("--check").returncode == 0
    wrote = mis("--out", str(tmp_path))
    assert wrote.returncode == 0 and "wrote 12 files" in wrote.stdout, wrote.stdout + wrote.stderr
    (tmp_path / "sample-type.ttl").write_text("# edited\n", encoding="utf-8")
    stale = mis("--check", "--out", str(tmp_path), module=("-m", "mis.vocab.build"))
    assert stale.returncode == 1 and "sample-type.ttl" in stale.stderr, stale.stdout + stale.stderr


def test_scheme_data_files_name_only_known_fields(monkeypatch):
    """A typo in a data file's key is an error naming the file, not a silently dropped value."""
    monkeypatch.setattr(vocab_build, "_data", lambda name: [{"slug": "x", "labl": "x", "definition": "x"}])
    with pytest.raises(vocab_build.BuildError, match=r"mis-schemes.yml, entry 1: .*labl"):
        vocab_build._records("mis-schemes.yml", vocab_build.Term)
    monkeypatch.undo()
    assert [s.key for s in vocab_build.MIS_SCHEMES] == ["sample-type", "image-modality", "deposit-model",
                                                        "segmentation-class"]
    assert vocab_build.FIELD_ALT_LABELS["drilling-method"]["diamond_core"][:2] == ("DD", "DDH")


# ----------------------------------------------------------------------------- schemes
def test_every_scheme_has_metadata_and_english_labels(ontology):
    schemes, concepts = ontology
    assert set(schemes) == set(vocab_build.SCHEME_KEYS)
    for s in schemes.values():
        assert s.title and s.source and s.licence, s
    cgi = [k for k in schemes if k not in {"mineral", "sample-type", "image-modality",
                                           "deposit-model", "segmentation-class"}]
    for key in cgi + ["mineral"]:
        assert schemes[key].licence == "https://creativecommons.org/licenses/by/4.0/"
    for c in concepts.values():
        assert c.labels.get("en"), c.uri
        assert c.pref_label == c.labels["en"]
        for b in c.broader:
            assert concepts[b].scheme_key == c.scheme_key, (c.uri, b)


def test_lithology_keeps_all_265_cgi_concepts_and_labels(ontology):
    _, concepts = ontology
    lith = _scheme(concepts, "lithology")
    assert len(lith) == 265
    assert all(c.uri.startswith(LITH) for c in lith)
    assert all(c.definition for c in lith)
    langs = sorted(lang for c in lith for lang in c.labels if lang != "en")
    assert langs.count("de") == 5 and langs.count("es") == 1


def test_basalt_keeps_both_broader_concepts(ontology):
    _, concepts = ontology
    basalt = concepts[LITH + "basalt"]
    assert basalt.broader == [LITH + "basic_igneous_rock", LITH + "fine_grained_igneous_rock"]


@needs_sources
def test_basalt_broader_matches_the_cgi_source():
    src = Graph().parse(SOURCES / "cgi-2016" / "simplelithology.rdf", format="xml")
    published = sorted(str(o) for o in src.objects(URIRef(LITH + "basalt"), SKOS.broader))
    _, concepts = read_ontology(ONTOLOGY)
    basalt = next(c for c in concepts if c.uri == LITH + "basalt")
    assert basalt.broader == published


def test_lithology_hierarchy_includes_every_published_broader(ontology):
    _, concepts = ontology
    # polyhierarchy: many concepts have more than one broader concept
    assert sum(len(c.broader) > 1 for c in _scheme(concepts, "lithology")) > 30
    assert concepts[LITH + "compound_material"].broader == []


def test_commodity_notations(ontology):
    _, concepts = ontology
    commodity = _scheme(concepts, "commodity")
    assert len(commodity) == 293
    assert all(c.notation for c in commodity)
    copper = {c.notation: c for c in commodity}["Cu"]
    assert copper.pref_label == "copper"
    assert copper.properties["hierarchyKey"] == "02.01.01.01"


def test_small_cgi_and_erml_schemes(ontology):
    _, concepts = ontology
    sizes = {k: len(_scheme(concepts, k)) for k in
             ("drilling-method", "occurrence-type", "constituent-role", "proportion-term")}
    assert sizes == {"drilling-method": 30, "occurrence-type": 7, "constituent-role": 35,
                     "proportion-term": 10}
    diamond = next(c for c in _scheme(concepts, "drilling-method")
                   if c.uri.endswith("/diamond_core"))
    assert diamond.pref_label and diamond.properties["hierarchyKey"]


def test_mis_schemes(ontology):
    _, concepts = ontology
    modality = {c.notation for c in _scheme(concepts, "image-modality")}
    assert {"reflected-light", "ppl", "xpl", "bse", "eds-map", "micro-ct", "multispectral",
            "core-photo"} <= modality
    samples = {c.pref_label for c in _scheme(concepts, "sample-type")}
    assert {"plug", "thin section", "polished thin section", "polished block", "core photo",
            "core scan", "grain mount", "hand specimen"} <= samples
    models = {c.notation for c in _scheme(concepts, "deposit-model")}
    assert {"porphyry-cu", "porphyry-cu-mo", "porphyry-cu-au", "epithermal-high-sulfidation",
            "epithermal-low-sulfidation", "vms", "sedex", "iocg", "skarn", "orogenic-gold",
            "carlin-type-gold", "mvt", "magmatic-ni-cu-pge", "sediment-hosted-cu",
            "pegmatite"} <= models
    seg = {c.notation: c for c in _scheme(concepts, "segmentation-class")}
    assert set(seg) == {"background", "pore-epoxy", "unclassified"}
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c.properties["colour"]) for c in seg.values())
    for c in _scheme(concepts, "sample-type") + _scheme(concepts, "deposit-model"):
        assert c.uri.startswith("https://w3id.org/mis/vocab/")


# ----------------------------------------------------------------------------- minerals
def test_minerals_have_symbol_formula_density_colour(ontology):
    _, concepts = ontology
    minerals = _scheme(concepts, "mineral")
    species = [m for m in minerals if not m.properties["isGroup"]]
    assert len(species) >= 150
    for m in minerals:
        assert m.uri.startswith(MINERAL), m.uri
        assert m.notation, m.uri
        assert m.properties["formula"], m.uri
        assert 0.5 < m.properties["density_g_cm3"] < 25, m.uri
        assert re.fullmatch(r"#[0-9a-f]{6}", m.properties["colour"]), m.uri
        if not m.properties["isGroup"]:
            assert m.properties["crystalSystem"] in mineral_data.CRYSTAL_SYSTEMS, m.uri
    assert len({m.notation.casefold() for m in minerals}) == len(minerals)
    assert len({m.properties["colour"] for m in minerals}) == len(minerals)


def test_ore_and_rock_forming_minerals_with_ima_symbols(ontology):
    _, concepts = ontology
    by_label = {c.pref_label: c for c in _scheme(concepts, "mineral")}
    expected = {
        "chalcopyrite": "Ccp", "pyrite": "Py", "bornite": "Bn", "chalcocite": "Cc",
        "covellite": "Cv", "molybdenite": "Mol", "sphalerite": "Sp", "galena": "Gn",
        "magnetite": "Mag", "hematite": "Hem", "quartz": "Qz", "orthoclase": "Or",
        "microcline": "Mcc", "sanidine": "Sa", "albite": "Ab", "anorthite": "An",
        "muscovite": "Ms", "calcite": "Cal", "dolomite": "Dol", "anhydrite": "Anh",
        "gypsum": "Gp", "zircon": "Zrn", "rutile": "Rt", "titanite": "Ttn", "gold": "Au",
        "fluorapatite": "Fap", "kaolinite": "Kln", "clinochlore": "Clc", "forsterite": "Fo",
    }
    assert {k: by_label[k].notation for k in expected} == expected
    ccp = by_label["chalcopyrite"]
    assert ccp.uri == MINERAL + "chalcopyrite"
    assert ccp.properties["formula"] == "CuFeS2"
    assert ccp.properties["crystalSystem"] == "tetragonal"
    assert ccp.properties["symbolSource"] == "Warr 2021"
    assert ccp.properties["exactMatch"] == ["https://www.mindat.org/min-955.html"]


def test_mineral_groups_link_their_members(ontology):
    _, concepts = ontology
    minerals = _scheme(concepts, "mineral")
    by_label = {c.pref_label: c for c in minerals}
    members: dict[str, set[str]] = {}
    for m in minerals:
        for b in m.broader:
            members.setdefault(b, set()).add(m.pref_label)
    groups = [m for m in minerals if m.properties["isGroup"]]
    assert all(members.get(g.uri) for g in groups), [g.pref_label for g in groups
                                                     if not members.get(g.uri)]
    for name in ("biotite", "garnet", "amphibole", "pyroxene", "plagioclase", "K-feldspar",
                 "chlorite", "mica", "feldspar", "olivine", "spinel group", "tourmaline",
                 "epidote group", "serpentine", "clay minerals", "apatite"):
        assert by_label[name].properties["isGroup"] is True, name
    assert {"albite", "oligoclase", "andesine", "labradorite", "bytownite", "anorthite"} == \
        members[by_label["plagioclase"].uri]
    assert {"orthoclase", "microcline", "sanidine"} == members[by_label["K-feldspar"].uri]
    assert {"almandine", "pyrope", "grossular", "andradite", "spessartine", "uvarovite"} == \
        members[by_label["garnet"].uri]
    assert members[by_label["feldspar"].uri] == {"alkali feldspar", "plagioclase"}
    assert by_label["biotite"].notation == "Bt"
    assert by_label["oligoclase"].properties["symbolSource"] == "MIS"


def test_every_ima_symbol_comes_from_the_table(warr):
    minerals, missing = mineral_data.load_minerals(warr)
    for m in minerals:
        entry = warr.get(mineral_data.join_key(m.name))
        assert (entry is None) == (m.name in missing)
        if entry is not None:
            assert m.symbol == entry.symbol and m.symbol_source == "Warr 2021"
    assert set(missing) == {m.name for m in minerals if m.symbol_source == "MIS"}


def test_bad_curated_row_names_line_and_field(warr, tmp_path):
    good = mineral_data.MINERALS_CSV.read_text(encoding="utf-8").splitlines()
    lines = [line.replace("4.19,tetragonal", "heavy,tetragonal") if line.startswith(
        "chalcopyrite,") else line for line in good]
    bad = tmp_path / "minerals.csv"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    lineno = next(i for i, line in enumerate(lines, start=1) if line.startswith("chalcopyrite,"))
    with pytest.raises(mineral_data.MineralDataError,
                       match=rf"minerals.csv, line {lineno}, field density_g_cm3"):
        mineral_data.load_minerals(warr, bad)


def test_slugs_and_join_keys():
    assert mineral_data.slugify("tetrahedrite-(Fe)") == "tetrahedrite-fe"
    assert mineral_data.slugify("halloysite-7Å") == "halloysite-7a"
    assert mineral_data.join_key("Gold (aurum)") == "gold"
    assert mineral_data.join_key("Kaolin ") == "kaolin"
    assert mineral_data.join_key("Antimony (stibium)*") == "antimony"
    assert mineral_data.join_key("Tetrahedrite-(Fe)") == "tetrahedrite-(fe)"
    assert mineral_data.clean_formula("Ca5(PO4)3(Cl/F/OH) (4)") == "Ca5(PO4)3(Cl/F/OH)"


# ----------------------------------------------------------------------------- reader
def test_ontology_dir_default_and_env(monkeypatch, tmp_path):
    monkeypatch.delenv("MIS_ONTOLOGY_DIR", raising=False)
    assert ontology_dir() == ONTOLOGY
    shutil.copy(ONTOLOGY / "proportion-term.ttl", tmp_path)
    monkeypatch.setenv("MIS_ONTOLOGY_DIR", str(tmp_path))
    assert ontology_dir() == tmp_path
    schemes, concepts = read_ontology()
    assert [s.key for s in schemes] == ["proportion-term"] and len(concepts) == 10
    monkeypatch.setenv("MIS_ONTOLOGY_DIR", os.fspath(tmp_path / "missing"))
    with pytest.raises(OntologyError, match="MIS_ONTOLOGY_DIR"):
        ontology_dir()
