"""Ingestion into PostGIS: whole runs, atomic replacement, killed writers, CLI, reports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import psycopg
import pytest
import shapely
import typer
import zarr
from sqlalchemy import func, select
from typer.testing import CliRunner

from mis.catalogue import models as m
from mis.cli_ingest import ingest_cmd, log_cmd, report_cmd
from mis.grains.cleaning import GrainRules, clean_image
from mis.grains.labelling import label_image
from mis.grains.roxels import HolePositioner, load_positioner
from mis.ingest.run import IngestError, ingest
from mis.ingest.writer import Provenance, libpq_url

from tests import factories as f
from tests.test_labelling import blobs

CLASSES = ["background", "quartz", "chalcopyrite", "pyrite"]
URIS = [f"https://w3id.org/mis/vocab/{'segmentation-class' if c == 'background' else 'mineral'}/{c}" for c in CLASSES]
H, W = 200, 330  # 4 x 6 chunks of 64 px
P = 0.5


def make_labels(seed: int = 3, noise: float = 0.03) -> np.ndarray:
    a = blobs((H, W), 4, seed=seed, sigma=3.5, noise=noise)
    a[a == 0] = 0
    # a chalcopyrite U whose arms meet two chunk rows below their tops (roxels wait for it);
    # arms 4 px wide, a grain to any cleaning
    a[70:190, 98:102] = 2
    a[70:190, 108:112] = 2
    a[186:190, 98:112] = 2
    return a


def add_image(session, plug, name="img", shape=(H, W), **depth) -> int:
    modality = session.scalar(select(m.Concept.uri).where(m.Concept.scheme == "image-modality").limit(1))
    img = m.Image(plug_id=plug.id, name=name, store_uri=f"/nonexistent/{name}.ome.zarr", array_paths=["0"],
                  shape=[3, *shape], chunks=[3, 64, 64], dtype="uint8", pixel_size_um=P, modality_uri=modality,
                  checksum_sha256=f"sha-{name}", **depth)
    session.add(img)
    session.commit()
    return img.id


@pytest.fixture
def plug(session):
    hole = f.drillcore(session, f.deposit(session), length_m=300)
    p = f.plug(session, hole, "P-1", 100.0, 100.2)
    session.commit()
    return p


@pytest.fixture
def image(session, plug) -> int:
    return add_image(session, plug)


def count(session, model, **where) -> int:
    q = select(func.count()).select_from(model)
    for k, v in where.items():
        q = q.where(getattr(model, k) == v)
    return session.scalar(q)


def test_a_run_matches_the_whole_image_labelling(db_url, session, image, plug):
    labels = make_labels()
    # confident, but for the specks: a classifier is unsure where it errs
    prob = np.random.default_rng(0).uniform(0.6, 1.0, labels.shape).astype(np.float16)
    prob[labels != make_labels(noise=0.0)] = 0.3
    prov = Provenance(model_path="/models/rf.joblib", model_sha256="ab" * 32, feature_config={"sigmas": [1, 2]})
    s = ingest(image, labels, prob, CLASSES, url=db_url, progress=False, provenance=prov)
    # the run's grains are those of the cleaned map (default rules), cut pixels in no grain
    cleaned, cut = clean_image(labels, [False, True, True, True], GrainRules(), P, prob)
    assert 0.01 < (cleaned != labels).mean() < 0.5 and cut.any()
    ref = label_image(np.where(cut, 0, cleaned), ignore=[0])
    n = int(ref.max())
    assert s.grains == n and s.roxels == 13 * 21

    with psycopg.connect(libpq_url(db_url)) as conn:
        run = conn.execute("SELECT id, status, finished_at >= started_at, model_sha256, feature_config, "
                           "input_checksum, roxel_size FROM segmentation_run").fetchall()
        (params,), = conn.execute("SELECT parameters FROM segmentation_run").fetchall()
        (published,), = conn.execute('SELECT "grainSize" FROM pub.rocks').fetchall()
        assert run == [(s.run_id, "complete", True, "ab" * 32, {"sigmas": [1, 2]}, "sha-img", 16)]
        classes = conn.execute("SELECT concept_uri FROM run_class WHERE run_id = %s ORDER BY class_index",
                               (s.run_id,)).fetchall()
        assert [c[0].rsplit("/", 1)[1] for c in classes] == CLASSES
        grains = conn.execute(
            "SELECT g.id, g.label, c.uri, g.area_um2, g.chunk_keys, ST_IsValid(g.outline), ST_SRID(g.outline), "
            "GeometryType(g.outline), ST_AsBinary(g.outline), g.mean_probability, g.touches_border "
            "FROM grain g JOIN concept c ON c.id = g.mineral_id WHERE g.run_id = %s ORDER BY g.label",
            (s.run_id,)).fetchall()
        roxels = conn.execute(
            "SELECT row, col, composition, dominant_class_id, dominant_fraction, dominant_grain_id, depth_m, "
            "ST_X(position), ST_Y(position), ST_Z(position) FROM roxel WHERE run_id = %s ORDER BY row, col",
            (s.run_id,)).fetchall()
        constituents = conn.execute("SELECT mineral_uri, proportion_area, proportion_wt FROM rock_constituent").fetchall()
        rock = conn.execute("SELECT plug_id, run_id, grain_size, association, liberation, surface_area FROM rock").fetchall()

    # grains: one per whole-image component, keyed by its first pixel, every outline valid
    flat = ref.ravel()
    firsts = np.array([np.flatnonzero(flat == i)[0] for i in range(1, n + 1)])
    assert [g[1] for g in grains] == sorted(firsts.tolist())
    areas = np.bincount(flat)[1:][np.argsort(firsts)]
    np.testing.assert_allclose([g[3] for g in grains], areas * P * P, rtol=1e-6)
    assert all(g[5] and g[6] == 0 and g[7] == "POLYGON" for g in grains)
    by_label = {g[1]: g for g in grains}
    rank_of_label = {int(lab): i + 1 for i, lab in enumerate(np.sort(firsts))}
    u_first = int(firsts[ref[120, 99] - 1])  # the U spans three chunk rows and is one grain
    assert ref[120, 99] == ref[120, 109] == ref[188, 104] > 0
    u = by_label[u_first]
    assert u[2].endswith("/chalcopyrite") and len(u[4]) >= 2 and all(k.startswith("c/0/") for k in u[4])
    assert shapely.from_wkb(u[8]).is_valid
    mask = ref == rank_of_label[u_first]
    assert u[9] == pytest.approx(prob[mask].astype(np.float64).mean(), rel=1e-3)
    assert any(g[10] for g in grains) and not all(g[10] for g in grains)

    # roxels: composition, dominant class and the dominant grain counted over whole grains
    concept_id = dict(session.execute(select(m.Concept.uri, m.Concept.id)).all())
    uris = URIS
    id_of_label = {g[1]: g[0] for g in grains}
    sorted_first = np.sort(firsts)
    pos = load_positioner(session, plug.drillcore_id).positions(np.array([100.1]))
    for row, col, comp, dom, frac, grain_id, depth, x, y, z in roxels:
        win_c = cleaned[row * 16 : row * 16 + 16, col * 16 : col * 16 + 16]
        expect = np.bincount(win_c.ravel(), minlength=4) / win_c.size
        np.testing.assert_allclose(comp, expect, atol=1e-6)
        assert dom == concept_id[uris[int(np.argmax(expect))]]
        win = ref[row * 16 : row * 16 + 16, col * 16 : col * 16 + 16].ravel()
        win = win[win > 0]
        if win.size == 0:
            assert grain_id is None
        else:
            c = np.bincount(win)
            best = int(np.flatnonzero(c == c.max())[0])
            assert grain_id == id_of_label[int(sorted_first[best - 1])], (row, col)
        assert depth == pytest.approx(100.1)
        assert (x, y, z) == pytest.approx((pos[0][0], pos[1][0], pos[2][0]))

    # rock: modal mineralogy over minerals, sums to 1, grain sizes, association, liberation
    assert sum(c[1] for c in constituents) == pytest.approx(1.0)
    assert sum(c[2] for c in constituents) == pytest.approx(1.0)
    px = np.bincount(cleaned.ravel(), minlength=4)[1:]
    assert {c[0].rsplit("/", 1)[1]: c[1] for c in constituents} == pytest.approx(
        dict(zip(CLASSES[1:], px / px.sum())))
    (plug_id, run_id, grain_size, association, liberation, surface) = rock[0]
    assert (plug_id, run_id) == (plug.id, s.run_id)
    assert set(grain_size) == {*uris[1:], "rules"}
    assert grain_size["rules"] == params["grains"] == GrainRules().parameters(P) == published["rules"]
    assert grain_size["rules"]["min_grain_area_um2"] == 16 * P * P and grain_size["rules"]["split"]
    border = {g[2]: 0 for g in grains}
    for g in grains:
        border[g[2]] += g[10]
    for uri in uris[1:]:  # sizes over the grains not touching the image border
        n = sum(1 for g in grains if g[2] == uri)
        assert (grain_size[uri]["n"], grain_size[uri]["n_sized"]) == (n, n - border.get(uri, 0))
    assert min(g[3] for g in grains) >= 16 * P * P
    assert grain_size[uris[2]]["d10_um"] <= grain_size[uris[2]]["d50_um"] <= grain_size[uris[2]]["d90_um"]
    assert sum(association["boundary_share"][uris[1]].values()) == pytest.approx(1.0)
    assert set(liberation["minerals"]) == {uris[2], uris[3]}  # the sulfides, by default
    assert surface[uris[1]]["sv_per_um"] > 0
    assert "quartz" in s.render() and "time per stage" in s.render()


def test_rerunning_a_run_replaces_it_and_other_runs_stay(db_url, session, image):
    first = ingest(image, make_labels(3), None, CLASSES, url=db_url, progress=False)
    other = ingest(image, make_labels(4), None, CLASSES, url=db_url, progress=False, name="other")
    second = ingest(image, make_labels(5), None, CLASSES, url=db_url, progress=False)
    assert second.replaced_run_id == first.run_id and second.run_id != first.run_id
    assert count(session, m.SegmentationRun) == 2
    assert count(session, m.Grain, run_id=first.run_id) == 0
    assert count(session, m.Grain, run_id=second.run_id) == second.grains
    assert count(session, m.Roxel, run_id=second.run_id) == second.roxels
    assert count(session, m.Grain, run_id=other.run_id) == other.grains
    assert count(session, m.Rock) == 2


def snapshot(db_url):
    with psycopg.connect(libpq_url(db_url)) as conn:
        return conn.execute(
            "SELECT sr.id, sr.status, (SELECT count(*) FROM grain g WHERE g.run_id = sr.id), "
            "(SELECT sum(area_um2 * id) FROM grain g WHERE g.run_id = sr.id), "
            "(SELECT count(*) FROM roxel x WHERE x.run_id = sr.id), "
            "(SELECT count(*) FROM rock r WHERE r.run_id = sr.id) FROM segmentation_run sr ORDER BY sr.id").fetchall()


KILL_SCRIPT = """
import sys, numpy as np
from mis.grains.roxels import roxel_dtype
from mis.grains.rock import load_classes
from mis.catalogue.session import transaction
from mis.ingest.writer import RunWriter
url, image = sys.argv[1], int(sys.argv[2])
with transaction(url) as s:
    classes = load_classes(s, {uris!r})
rec = np.zeros(50_000, dtype=roxel_dtype(4))
rec["row"] = np.arange(rec.size) // 1000
rec["col"] = np.arange(rec.size) % 1000
rec["composition"][:, 0] = 1
rec["dominant_fraction"] = 1
rec["dominant_grain_id"] = -1
rec["depth_m"] = 100.1
rec["lon"], rec["lat"], rec["z"] = -70.05, -22.05, 2400.0
w = RunWriter(url, image_id=image, name="default", classes=classes)
w.open()
w.write_roxels(rec)
w.flush()
print("MID", w.rows["roxel"], flush=True)
sys.stdin.read()
"""


def test_killing_the_writer_mid_write_leaves_the_previous_run_intact(db_url, session, image, tmp_path):
    ingest(image, make_labels(3), None, CLASSES, url=db_url, progress=False)
    before = snapshot(db_url)
    uris = URIS
    script = tmp_path / "kill.py"
    script.write_text(textwrap.dedent(KILL_SCRIPT.format(uris=uris)))
    proc = subprocess.Popen([sys.executable, str(script), db_url, str(image)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("MID 50000"), line
        os.kill(proc.pid, signal.SIGKILL)  # mid-transaction: new run's bare tables hold 50k roxels
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    deadline = time.time() + 20
    while time.time() < deadline:  # the server notices the dropped connection and rolls back
        with psycopg.connect(libpq_url(db_url)) as conn:
            if not conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0]:
                break
        time.sleep(0.1)
    assert snapshot(db_url) == before
    # and the run can be written again
    again = ingest(image, make_labels(3), None, CLASSES, url=db_url, progress=False)
    after = snapshot(db_url)
    assert again.replaced_run_id == before[0][0] and after[0][0] == again.run_id
    assert (after[0][1], after[0][2], after[0][4], after[0][5]) == (before[0][1], before[0][2], before[0][4], 1)


def test_killing_an_ingestion_at_a_random_moment_leaves_old_or_new_never_a_mix(db_url, session, image, tmp_path):
    np.save(tmp_path / "new.npy", make_labels(8))
    first = ingest(image, make_labels(3), None, CLASSES, url=db_url, progress=False)
    before = snapshot(db_url)
    code = ("import sys, numpy as np; from mis.ingest.run import ingest; "
            f"ingest({image}, np.load(sys.argv[2]), None, {CLASSES!r}, url=sys.argv[1], progress=False)")
    rng = np.random.default_rng()
    delay = float(rng.uniform(0.5, 4.0))
    proc = subprocess.Popen([sys.executable, "-c", code, db_url, str(tmp_path / "new.npy")])
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    time.sleep(0.5)
    after = snapshot(db_url)
    assert len(after) == 1 and after[0][1] == "complete"
    if after == before:
        return
    cleaned, cut = clean_image(make_labels(8), [False, True, True, True], GrainRules(), P)
    new_grains = int(label_image(np.where(cut, 0, cleaned), ignore=[0]).max())
    assert after[0][0] != first.run_id and after[0][2] == new_grains and after[0][4] == first.roxels
    assert after[0][5] == 1


def test_bad_input_is_refused_and_nothing_changes(db_url, session, image):
    ingest(image, make_labels(3), None, CLASSES, url=db_url, progress=False)
    before = snapshot(db_url)
    with pytest.raises(IngestError, match=r"the label array is \(10, 10\) but image \d+ is 200 x 330"):
        ingest(image, np.zeros((10, 10), np.uint8), None, CLASSES, url=db_url, progress=False)
    bad = make_labels(3)
    bad[150, 300] = 7
    with pytest.raises(IngestError, match=r"chunk \(2, 4\) .*: class value 7 is outside the class list \(0..3\)"):
        ingest(image, bad, None, CLASSES, url=db_url, progress=False)
    with pytest.raises(IngestError, match="roxel size 12 must divide"):
        ingest(image, make_labels(3), None, CLASSES, url=db_url, progress=False, roxel_size=12)
    with pytest.raises(IngestError, match="unknown term 'quartzz'"):
        ingest(image, make_labels(3), None, ["background", "quartzz"], url=db_url, progress=False)
    with pytest.raises(IngestError, match="image 999: no such image"):
        ingest(999, make_labels(3), None, CLASSES, url=db_url, progress=False)
    assert snapshot(db_url) == before


def test_core_image_roxels_follow_the_depth_axis(db_url, session, plug):
    core = add_image(session, plug, "core", shape=(64, 320), depth_axis="x", depth_top_m=100.0, depth_bottom_m=100.2)
    labels = blobs((64, 320), 4, seed=1, sigma=4)
    ingest(core, labels, None, CLASSES, url=db_url, progress=False, roxel_size=32)
    rows = session.execute(select(m.Roxel.col, m.Roxel.depth_m, func.ST_Z(m.Roxel.position))
                           .order_by(m.Roxel.row, m.Roxel.col)).all()
    assert len(rows) == 2 * 10
    depths = [r[1] for r in rows[:10]]
    assert depths[0] == pytest.approx(100.0 + 15.5 * 0.2 / 319)
    assert np.all(np.diff(depths) > 0)
    z = [r[2] for r in rows[:10]]
    assert np.all(np.diff(z) < 0)  # deeper along a dipping hole is lower


def test_cli_ingest_report_and_log(db_url, session, image, plug, tmp_path, monkeypatch):
    monkeypatch.setenv("MIS_DATABASE_URL", db_url)
    store = tmp_path / "pred.zarr"
    arr = zarr.create_array(str(store), shape=(H, W), chunks=(64, 64), dtype="uint8")
    arr[:] = make_labels(3)
    core = add_image(session, plug, "core", shape=(64, 192), depth_axis="x", depth_top_m=100.0, depth_bottom_m=100.2)
    core_store = tmp_path / "core.zarr"
    carr = zarr.create_array(str(core_store), shape=(64, 192), chunks=(64, 64), dtype="uint8")
    carr[:] = blobs((64, 192), 4, seed=2)
    app = typer.Typer()
    app.command("ingest")(ingest_cmd)
    app.command("report")(report_cmd)
    app.command("log")(log_cmd)
    runner = CliRunner()
    classes = [a for c in ["background", "Qz", "Ccp", "Py"] for a in ("--class", c)]
    res = runner.invoke(app, ["ingest", str(image), "--labels", str(store), *classes, "--quiet",
                              "--liberation", "Ccp", "--lithology", "granite"])
    assert res.exit_code == 0, res.output
    assert "modal mineralogy" in res.output and "lithology (user): granite" in res.output
    res = runner.invoke(app, ["ingest", str(core), "--labels", str(core_store), *classes, "--quiet",
                              "--min-grain-area", "2", "--no-split"])
    assert res.exit_code == 0, res.output
    assert "minimum grain area 2 µm² (8 px, set by the user)" in res.output
    rules = session.scalar(select(m.SegmentationRun.parameters).where(m.SegmentationRun.image_id == core))["grains"]
    assert (rules["min_grain_area_um2"], rules["min_grain_px"], rules["split"]) == (2.0, 8, False)
    res = runner.invoke(app, ["ingest", str(core), "--labels", str(core_store), *classes, "--quiet",
                              "--min-grain-area", "-1"])
    assert res.exit_code == 1 and "minimum grain area must be" in res.output
    res = runner.invoke(app, ["ingest", str(image), "--labels", str(store), "--class", "background", "--quiet"])
    assert res.exit_code == 1 and "class value" in res.output
    res = runner.invoke(app, ["report", "DH-1/P-1", "-o", str(tmp_path / "rep" / "p1")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "rep" / "p1.png").stat().st_size > 10_000
    page = (tmp_path / "rep" / "p1.html").read_text()
    assert "chalcopyrite" in page and "data:image/png;base64," in page and "liberation" in page
    assert "minimum grain area 4 µm² (16 px, default)" in page and "not touching the image border" in page
    res = runner.invoke(app, ["log", "DH-1", "-o", str(tmp_path / "log.png"), "--step", "0.02"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "log.png").stat().st_size > 10_000
    res = runner.invoke(app, ["report", "DH-1/P-9"])
    assert res.exit_code == 1 and "no such plug" in res.output
    for cmd in (ingest_cmd, report_cmd, log_cmd):
        assert "Example:" in cmd.__doc__


def test_positioner_of_a_catalogue_hole(session, plug):
    pos = load_positioner(session, plug.drillcore_id)
    assert isinstance(pos, HolePositioner) and pos.method == "desurvey"
    lon, lat, z = pos.positions(np.array([0.0]))
    assert (lon[0], lat[0], z[0]) == pytest.approx((-70.05, -22.05, 2500.0))


def test_the_writer_refuses_dangling_references(db_url, session, image):
    from mis.grains.rock import load_classes
    from mis.grains.roxels import roxel_dtype
    from mis.ingest.writer import RunWriter, RunWriterError

    ingest(image, make_labels(3), None, CLASSES, url=db_url, progress=False)
    before = snapshot(db_url)
    uris = URIS
    classes = load_classes(session, uris)
    rec = np.zeros(3, dtype=roxel_dtype(4))
    rec["col"] = [0, 1, 2]
    rec["composition"][:, 1] = 1
    rec["dominant_class"], rec["dominant_fraction"] = 1, 1
    rec["dominant_grain_id"] = [-1, -1, 10**12]  # no such grain
    rec["depth_m"], rec["lon"], rec["lat"], rec["z"] = 100.1, -70.05, -22.05, 2400.0
    with pytest.raises(RunWriterError, match="dominant_grain"):
        with RunWriter(db_url, image_id=image, name="default", classes=classes) as w:
            w.write_roxels(rec)
            w.commit()
    assert snapshot(db_url) == before


def grain_rows(db_url, run_id):
    with psycopg.connect(libpq_url(db_url)) as conn:
        return conn.execute("SELECT label, mineral_id, area_um2, perimeter_um, feret_max_um, chunk_keys, "
                            "ST_AsText(outline) FROM grain WHERE run_id = %s ORDER BY label", (run_id,)).fetchall()


def test_threads_and_inline_give_the_same_run(db_url, session, image):
    labels = make_labels(6)
    a = ingest(image, labels, None, CLASSES, url=db_url, progress=False, name="threads")
    b = ingest(image, labels, None, CLASSES, url=db_url, progress=False, name="sync", scheduler="sync")
    assert grain_rows(db_url, a.run_id) == grain_rows(db_url, b.run_id)
    assert a.rock.area_fraction == b.rock.area_fraction and a.rock.association == b.rock.association


def test_an_image_of_background_only_writes_roxels_and_an_empty_rock(db_url, session, image):
    s = ingest(image, np.zeros((H, W), np.uint8), None, CLASSES, url=db_url, progress=False)
    assert (s.grains, s.roxels) == (0, 13 * 21)
    assert s.rock.area_fraction == {} and s.rock.lithology_uri is None
    assert count(session, m.Rock) == 1 and count(session, m.RockConstituent) == 0
    assert session.scalar(select(func.count()).select_from(m.Roxel).where(m.Roxel.dominant_grain_id.is_not(None))) == 0
