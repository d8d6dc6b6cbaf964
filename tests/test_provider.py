"""Pages of the run-partitioned collections (roxels, grains), read run by run over HTTP.

The catalogue of ``test_api_support`` gets ten more runs whose ids interleave with the
first's the hard way: a later run (higher ``run_id``) gets lower feature ids, as when
ingestions run at once. Pages must come in ``(run_id, id)`` order, every feature exactly
once, whatever the filter (a page reads a few runs per statement: sparse matches span
several statements), and the cursor of a next link names both keys.
"""

from __future__ import annotations

import psycopg
import pytest

from tests.test_api_support import ROXEL_GRID, api_db, count, follow, http, live, libpq  # noqa: F401 - fixtures

EXTRA = 12  # 12 x 12 roxels and 5 grains per extra run
VERSIONS = [f"extra-{k:02d}" for k in range(10)]

EXTRA_RUNS = """
INSERT INTO segmentation_run (image_id, name, software_version, roxel_size, status)
SELECT id, v, 'test', 16, 'complete' FROM image, unnest(%(versions)s::text[]) v ORDER BY v
"""
EXTRA_CLASSES = """
INSERT INTO run_class (run_id, class_index, concept_uri)
SELECT r.id, c.class_index, c.concept_uri FROM segmentation_run r, run_class c
WHERE r.name = ANY(%(versions)s) AND c.run_id = (SELECT min(id) FROM segmentation_run)
"""

# the later run's features first: its ids are lower than those of the run before it
EXTRA_ROXELS = """
INSERT INTO roxel (run_id, row, col, composition, dominant_class_id, dominant_fraction, depth_m, position)
SELECT r.id, y, x, ARRAY[0.5, 0.4, 0.1]::real[], (SELECT dominant_class_id FROM roxel ORDER BY id LIMIT 1 OFFSET y),
       0.5, 1.0, ST_Translate((SELECT position FROM roxel ORDER BY id LIMIT 1), x * 1e-7, y * 1e-7, 0)
FROM segmentation_run r, generate_series(0, {n} - 1) y, generate_series(0, {n} - 1) x
WHERE r.name = %(version)s
"""
EXTRA_GRAINS = """
INSERT INTO grain (run_id, label, mineral_id, outline, centroid_x_um, centroid_y_um, area_um2, perimeter_um,
                   ecd_um, major_axis_um, minor_axis_um, orientation_deg, aspect_ratio, solidity, form_factor,
                   roundness, feret_max_um, feret_min_um, mean_probability, touches_border, chunk_keys)
SELECT r.id, g, (SELECT mineral_id FROM grain ORDER BY id LIMIT 1), ST_Buffer(ST_MakePoint(g, g), 1), g, g, 10, 20,
       5, 6, 4, 30, 1.5, 0.9, 0.8, 0.7, 7, 4, 0.95, false, ARRAY['c/0/0/0']
FROM segmentation_run r, generate_series(1, 5) g WHERE r.name = %(version)s
"""


@pytest.fixture(scope="module")
def runs(api_db: str) -> list[int]:
    """The ids of the catalogue's runs, the extra ones written last run first."""
    with psycopg.connect(libpq(api_db)) as conn:
        for statement in (EXTRA_RUNS, EXTRA_CLASSES):
            conn.execute(statement, {"versions": VERSIONS})
        for version in reversed(VERSIONS):
            conn.execute(EXTRA_ROXELS.format(n=EXTRA), {"version": version})
            conn.execute(EXTRA_GRAINS, {"version": version})
        conn.execute("ANALYZE roxel, grain")
        return [r for (r,) in conn.execute("SELECT id FROM segmentation_run ORDER BY id")]


def keys(api_db: str, sql: str) -> list[tuple[int, int]]:
    with psycopg.connect(libpq(api_db)) as conn:
        return [tuple(r) for r in conn.execute(sql)]


def test_ids_interleave_across_runs(api_db, runs):
    """The premise: a run with a higher id holds lower feature ids than the run before it."""
    first_of = dict(keys(api_db, "SELECT run_id, min(id) FROM roxel GROUP BY run_id"))
    assert len(runs) == 11 and first_of[runs[2]] < first_of[runs[1]]


@pytest.mark.parametrize("collection, table, limit", [("roxels", "roxel", 97), ("grains", "grain", 13)])
def test_pages_come_run_by_run_every_feature_once(http, api_db, runs, collection, table, limit):
    features, pages = follow(http, f"/collections/{collection}/items", {"limit": limit})
    got = [(f["properties"]["run_id"], f["id"]) for f in features]
    assert got == keys(api_db, f"SELECT run_id, id FROM {table} ORDER BY run_id, id")
    assert pages == -(-len(got) // limit) > 2
    first = http.get(f"/collections/{collection}/items", params={"limit": limit}).json()
    nxt = next(link["href"] for link in first["links"] if link["rel"] == "next")
    assert f"cursor={got[limit - 1][0]}_{got[limit - 1][1]}" in nxt
    # offset pages list the same order
    offset = len(got) - limit - 3
    page = http.get(f"/collections/{collection}/items", params={"limit": limit, "offset": offset}).json()
    assert [f["id"] for f in page["features"]] == [i for _, i in got[offset:offset + limit]]


def test_filtered_pages_across_runs(http, api_db, runs):
    """A bbox and class filter matching rows of every run, paged in small pages: every match
    once, in (run_id, id) order, the last page without a next link."""
    x0, y0, x1, y1 = keys(api_db, "SELECT ST_X(position), ST_Y(position), ST_X(position) + 6e-7, "
                                  "ST_Y(position) + 6e-7 FROM roxel ORDER BY id LIMIT 1")[0]
    bbox = f"{x0},{y0},{x1},{y1}"
    features, _ = follow(http, "/collections/roxels/items", {"limit": 7, "bbox": bbox, "dominantClass": "Qz"})
    expected = keys(api_db, f"""
        SELECT x.run_id, x.id FROM roxel x JOIN concept c ON c.id = x.dominant_class_id
        WHERE c.notation = 'Qz' AND ST_Intersects(x.position, ST_MakeEnvelope({bbox}, 4326))
        ORDER BY x.run_id, x.id""")
    assert {r for r, _ in expected} == set(runs)  # the filter matches rows of every run
    assert [(f["properties"]["run_id"], f["id"]) for f in features] == expected


@pytest.mark.parametrize("limit", [1, 3, 4, 5, 1000])
def test_sparse_matches_page_through_batches_of_runs(http, api_db, runs, limit):
    """One match per run: a page needs several batches of runs, and pages split batches."""
    features, pages = follow(http, "/collections/roxels/items", {"limit": limit, "filter": "row = 0 AND col = 0"})
    expected = keys(api_db, "SELECT run_id, id FROM roxel WHERE row = 0 AND col = 0 ORDER BY run_id, id")
    assert len(expected) == len(runs)
    assert [(f["properties"]["run_id"], f["id"]) for f in features] == expected
    assert pages == -(-len(expected) // limit)


def test_a_cursor_starts_after_its_feature(http, api_db, runs):
    order = keys(api_db, "SELECT run_id, id FROM roxel ORDER BY run_id, id")
    k = ROXEL_GRID ** 2 + 5  # inside the second run
    run, ident = order[k]
    page = http.get("/collections/roxels/items", params={"limit": 20, "cursor": f"{run}_{ident}"}).json()
    assert [(f["properties"]["run_id"], f["id"]) for f in page["features"]] == order[k + 1:k + 21]
    tail = http.get("/collections/roxels/items", params={"limit": 20, "cursor": f"{runs[-1]}_{order[-3][1]}"}).json()
    assert [f["id"] for f in tail["features"]] == [i for _, i in order[-2:]]
    assert not [link for link in tail["links"] if link["rel"] == "next"]


@pytest.mark.parametrize("cursor", ["5", "1_2_3", "a_b", "1_", "_1", "1.5_2", "1 OR 1=1_2",
                                    "1_99999999999999999999"])
def test_a_malformed_cursor_is_a_400_naming_the_form(http, runs, cursor):
    r = http.get("/collections/roxels/items", params={"cursor": cursor})
    assert r.status_code == 400
    assert "<run_id>_<id>" in r.json()["description"]


def test_plain_collections_keep_an_id_cursor(http, runs, api_db):
    first = http.get("/collections/plugs/items", params={"limit": 1}).json()
    nxt = next(link["href"] for link in first["links"] if link["rel"] == "next")
    assert nxt.endswith(f"cursor={first['features'][0]['id']}") or f"cursor={first['features'][0]['id']}&" in nxt
    assert http.get("/collections/plugs/items", params={"cursor": "1_2"}).status_code == 400
    assert count(api_db, "SELECT count(*) FROM plug") > 1
