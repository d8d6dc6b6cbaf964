"""The README's main command: `mis demo --small` runs end to end, the printed URLs answer,
and a second run reuses everything."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import httpx
from sqlalchemy import func, select

from mis.catalogue import models as m
from mis.catalogue.postgres import free_port
from tests.omezarr_readers import validate_and_read


def test_demo_end_to_end_serves_and_is_idempotent(mis_env, session, run_mis):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mis", "demo", "--small", "--port", str(port)],
                            env=mis_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "".join(lines)
            lines.append(line)
            if line.startswith("  its IIIF") or line.startswith("  IIIF image information"):
                if "IIIF image information" in line:
                    break
        out = "".join(lines)
        assert "Serving on" in out, out
        urls = re.findall(r"http://127\.0\.0\.1:\d+\S*", out.split("Serving on", 1)[1])
        assert len(urls) >= 7
        for _ in range(100):  # the server comes up after the listing
            try:
                httpx.get(urls[0], timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        for url in urls[1:]:
            assert httpx.get(url, timeout=30).status_code == 200, url
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    f1 = float(re.search(r"mean F1 against the ground truth: ([0-9.]+)", out).group(1))
    assert f1 > 0.8
    counts = {model.__tablename__: session.scalar(select(func.count()).select_from(model))
              for model in (m.DrillCore, m.Plug, m.Image, m.SegmentationRun, m.Rock)}
    assert counts == {"drillcore": 6, "plug": 36, "image": 4, "segmentation_run": 4, "rock": 4}
    assert session.scalar(select(func.count()).select_from(m.Roxel)) > 500
    core_photo = session.scalars(select(m.Image).where(m.Image.depth_axis == "x")).one()
    depths = session.execute(select(func.min(m.Roxel.depth_m), func.max(m.Roxel.depth_m))
                             .join(m.SegmentationRun, m.SegmentationRun.id == m.Roxel.run_id)
                             .where(m.SegmentationRun.image_id == core_photo.id)).one()
    assert core_photo.depth_top_m <= depths[0] < depths[1] <= core_photo.depth_bottom_m  # a downhole log
    for image in session.scalars(select(m.Image)):  # every store as napari opens it
        run = session.scalars(select(m.SegmentationRun.name).where(m.SegmentationRun.image_id == image.id)).one()
        found = validate_and_read(image.store_uri).labels
        assert {"scribbles-v1", f"prediction-{run}"} <= set(found), (image.store_uri, sorted(found))
        assert found[f"prediction-{run}"]["colors"] and found[f"prediction-{run}"]["properties"]

    again = run_mis("demo", "--small", "--no-serve", check=True).stdout
    assert "sample deposit: 0 record(s) changed" in again
    assert "0 imported as OME-Zarr, 4 already there" in again
    assert "4 runs already ingested" in again
