"""Shared fixtures of the API tests (no tests here): a catalogue with data, a live server.

``api_db`` is one database per test module: the sample deposit registered through the
real registration service, plus a small synthetic segmentation run (image, run, class
list, 4,096 roxels, 60 grains, a rock) written with SQL, so that every collection has
features. The first 20 grains have whole areas and the others not, as in real data: a
client that types a field from its first page sees an integer there. ``LiveServer`` runs the
real app (:func:`mis.api.app.create_app`) under uvicorn in a thread on a free 127.0.0.1 port:
the tests talk HTTP to it like any client.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from mis.catalogue.postgres import free_port

_counter = itertools.count()

CHALCOPYRITE = "https://w3id.org/mis/vocab/mineral/chalcopyrite"
QUARTZ = "https://w3id.org/mis/vocab/mineral/quartz"
PORE = "https://w3id.org/mis/vocab/segmentation-class/pore-epoxy"
ROXEL_GRID = 64  # 64 x 64 roxels of 16 px: a 1024 x 1024 image
N_GRAINS = 60

SYNTHETIC_RUN = f"""
WITH p AS (SELECT id, position, (from_m + to_m) / 2 AS mid FROM plug ORDER BY id LIMIT 1),
img AS (
  INSERT INTO image (plug_id, name, store_uri, array_paths, shape, chunks, dtype, pixel_size_um,
                     modality_uri, checksum_sha256)
  SELECT id, 'section-1', 'file:///data/images/section-1.zarr', '{{0,1}}', '{{3,1024,1024}}', '{{3,256,256}}',
         'uint8', 1.5, 'https://w3id.org/mis/vocab/image-modality/reflected-light', 'abc123' FROM p
  RETURNING id),
run AS (
  INSERT INTO segmentation_run (image_id, software_version, roxel_size, status)
  SELECT id, 'test', 16, 'complete' FROM img RETURNING id),
cls AS (
  INSERT INTO run_class (run_id, class_index, concept_uri)
  SELECT run.id, k - 1, u FROM run, unnest(ARRAY['{CHALCOPYRITE}', '{QUARTZ}', '{PORE}']) WITH ORDINALITY AS c(u, k)
  RETURNING run_id)
SELECT count(*) FROM cls;

-- a new run's partitions exist once the statement that inserts it is over
WITH p AS (SELECT id, position, (from_m + to_m) / 2 AS mid FROM plug ORDER BY id LIMIT 1),
run AS (SELECT max(id) AS id FROM segmentation_run)
INSERT INTO roxel (run_id, row, col, composition, dominant_class_id, dominant_fraction, depth_m, position)
SELECT run.id, r, c,
       ARRAY[f, 0.9 - f, 0.1]::real[],
       (SELECT id FROM concept WHERE uri = CASE WHEN f > 0.45 THEN '{CHALCOPYRITE}' ELSE '{QUARTZ}' END),
       greatest(f, 0.9 - f), p.mid + r * 0.0001,
       ST_Translate(p.position, c * 1e-7, r * 1e-7, 0)
FROM run, p, generate_series(0, {ROXEL_GRID - 1}) r, generate_series(0, {ROXEL_GRID - 1}) c,
     LATERAL (SELECT ((r * 7 + c * 13) % 90) / 100.0 AS f) x;

INSERT INTO grain (run_id, label, mineral_id, outline, centroid_x_um, centroid_y_um, area_um2, perimeter_um,
                   ecd_um, major_axis_um, minor_axis_um, orientation_deg, aspect_ratio, solidity, form_factor,
                   roundness, feret_max_um, feret_min_um, mean_probability, touches_border, chunk_keys)
SELECT (SELECT id FROM segmentation_run), g,
       (SELECT id FROM concept WHERE uri = CASE WHEN g % 3 = 0 THEN '{CHALCOPYRITE}' ELSE '{QUARTZ}' END),
       ST_Buffer(ST_MakePoint(g * 10, g * 10), 3), g * 10, g * 10,
       CASE WHEN g <= 20 THEN g * 5.0 ELSE g * 5.0 + 0.25 END, 20, 5, 6, 4, 30, 1.5, 0.9,
       0.8, 0.7, 7, 4, 0.95, false, ARRAY['c/0/0/0']
FROM generate_series(1, {N_GRAINS}) g;

INSERT INTO rock (plug_id, run_id, lithology_uri, lithology_source)
SELECT i.plug_id, r.id, 'http://resource.geosciml.org/classifier/cgi/lithology/porphyry', 'rule'
FROM segmentation_run r JOIN image i ON i.id = r.image_id;
INSERT INTO rock_constituent (rock_id, mineral_uri, proportion_area, proportion_wt)
SELECT id, '{CHALCOPYRITE}', 0.12, 0.2 FROM rock UNION ALL SELECT id, '{QUARTZ}', 0.6, 0.5 FROM rock;
ANALYZE;
"""


def libpq(url: str, database: str | None = None) -> str:
    u = make_url(url)
    if database:
        u = u.set(database=database)
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def api_db(server_url: str, template_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A catalogue for one test module: sample deposit + a synthetic segmentation run."""
    from mis.catalogue.engines import dispose_engines
    from mis.catalogue.register import register
    from mis.demo.deposit import write_sample_deposit

    name = f"mis_api_{os.getpid()}_{next(_counter)}"
    admin = libpq(server_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "mis_test_template"')
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    files = write_sample_deposit(tmp_path_factory.mktemp("sample"))
    report = register(files.all(), url=url)
    assert report.ok, report.render()
    with psycopg.connect(libpq(url)) as conn:
        conn.execute(SYNTHETIC_RUN)
    try:
        yield url
    finally:
        from mis.api.provider import dispose_engines

        dispose_engines()
        dispose_engines()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class LiveServer:
    """The MIS app under uvicorn in a background thread, on a free 127.0.0.1 port."""

    def __init__(self, url: str, state: Path) -> None:
        import uvicorn

        from mis.api.app import create_app, server_config

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token_file = state / "tokens.json"
        self.app = create_app(url, port=self.port, state_dir=state, token_file=self.token_file)
        config = server_config(self.app, host="127.0.0.1", port=self.port, log_level="error", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the API server did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

    def token(self, name: str = "tester") -> str:
        from mis.api.auth import create_token

        return create_token(name, self.token_file)


@pytest.fixture(scope="module")
def live(api_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(api_db, tmp_path_factory.mktemp("api-state")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def http(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=60) as client:
        yield client


def count(url: str, sql: str) -> int:
    with psycopg.connect(libpq(url)) as conn:
        return conn.execute(sql).fetchone()[0]


def follow(
    client: httpx.Client, path: str, params: dict | None = None, max_pages: int = 1000
) -> tuple[list[dict], int]:
    """Every feature of a listing, following ``next`` links; returns (features, pages)."""
    features: list[dict] = []
    response = client.get(path, params=params or {})
    pages = 0
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        pages += 1
        features += body["features"]
        nxt = [link["href"] for link in body.get("links", []) if link.get("rel") == "next"]
        if not nxt or pages >= max_pages:
            return features, pages
        response = client.get(nxt[0])
