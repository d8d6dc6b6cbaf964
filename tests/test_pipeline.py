"""The whole pipeline through the CLI, as a user runs it: register, image add, label
import, train, ingest --model (which predicts), evaluate -- on a real PostGIS and real
zarr stores, with a synthetic section whose ground truth is known."""

from __future__ import annotations

import json
import math

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import func, select

from mis.catalogue import models as m
from mis.catalogue.register.service import register
from mis.demo.deposit import write_sample_deposit
from mis.segment.synthetic import MINERALS, synthetic_section

from tests.omezarr_readers import validate_and_read


def test_register_to_roxels_through_the_cli(db_url, session, run_mis, tmp_path):
    assert register(write_sample_deposit(tmp_path / "deposit").all(), url=db_url).ok
    section = synthetic_section((384, 448), n_classes=4, seed=3, scribble_fraction=0.01)
    PILImage.fromarray(section.image.transpose(1, 2, 0)).save(tmp_path / "section.png")
    PILImage.fromarray(section.scribbles.astype(np.uint8)).save(tmp_path / "scribbles.png")
    PILImage.fromarray(section.truth.astype(np.uint8)).save(tmp_path / "truth.png")
    legend = {str(k + 1): MINERALS[k][0] for k in range(4)}
    (tmp_path / "legend.json").write_text(json.dumps(legend))

    added = run_mis("image", "add", "--plug", "QA-001/QA-001-P01", str(tmp_path / "section.png"),
                    "--pixel-size-um", "2", "--modality", "reflected-light", check=True)
    image_id = session.scalars(select(m.Image.id)).one()
    assert f"image {image_id} added" in added.stdout
    run_mis("label", "import", str(image_id), str(tmp_path / "scribbles.png"), "--legend",
            str(tmp_path / "legend.json"), "--name", "scribbles", check=True)
    model = tmp_path / "rf.pt"
    run_mis("train", str(image_id), "--labels", "scribbles", "--out", str(model), check=True)
    run_mis("ingest", str(image_id), "--model", str(model), "--name", "rf", "--quiet", check=True)

    run = session.scalars(select(m.SegmentationRun)).one()
    assert (run.name, run.status) == ("rf", "complete") and len(run.model_sha256) == 64
    assert run.feature_config  # provenance carried over from the prediction
    roxels = session.scalar(select(func.count()).select_from(m.Roxel))
    assert roxels == math.ceil(384 / 16) * math.ceil(448 / 16)
    assert session.scalar(select(func.count()).select_from(m.Grain)) > 10
    rock = session.scalars(select(m.Rock)).one()
    shares = {c.mineral_uri.rsplit("/", 1)[1]: c.proportion_area for c in rock.constituents}
    truth_shares = np.bincount(section.truth.ravel(), minlength=5)[1:] / section.truth.size
    for k in range(4):
        assert abs(shares.get(MINERALS[k][0], 0) - truth_shares[k]) < 0.05
    depth = session.execute(select(func.min(m.Roxel.depth_m), func.max(m.Roxel.depth_m))).one()
    assert depth == (30.15, 30.15)  # a thin section sits at its plug's mid-depth

    metrics = json.loads(run_mis("evaluate", str(image_id), "--truth", str(tmp_path / "truth.png"),
                                 "--legend", str(tmp_path / "legend.json"), "--run", "rf", "--json",
                                 check=True).stdout)
    assert metrics["macro"]["f1"] > 0.8

    # the store, as napari opens it: the image, the scribbles and the classification, named and coloured
    store = session.scalars(select(m.Image.store_uri)).one()
    read = validate_and_read(store)
    assert sorted(read.labels) == ["prediction-rf", "scribbles-v1"]
    scribbles = read.labels["scribbles-v1"]
    by_uri = {p["class"]: (p, scribbles["colors"][v]) for v, p in scribbles["properties"].items()}
    prediction = read.labels["prediction-rf"]
    assert len(prediction["properties"]) == 4
    for value, props in prediction["properties"].items():
        want, colour = by_uri[props["class"]]  # the vocabulary's name, symbol and colour
        assert props == {**{k: want[k] for k in ("class", "name", "symbol") if k in want},
                         "run": "rf", "model_sha256": run.model_sha256}
        assert prediction["colors"][value] == colour
