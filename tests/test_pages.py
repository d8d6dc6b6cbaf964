"""MIS's HTML pages (map, drill core, plug) in a real headless Chromium over real HTTP.

One live server (the real app, :func:`mis.api.app.create_app`, with
:func:`mis.api.pages.page_routes`) on a catalogue holding the sample deposit and the
synthetic segmentation run of ``test_api_support``, made visible: the run's image gets
real pixels (an OME-Zarr of bright grains on dark epoxy) and its 60 grains outlines that
match them; a depth-registered core photo adds 8,192 roxels over 30 m of the same hole so
that the downhole log has a profile.

The browser is Debian's ``chromium`` driven by Playwright (``playwright install`` is never
run: the system browser is used). Every request the pages make is recorded: all must go
to 127.0.0.1 (the pages work offline) and none may fail. Screenshots are written to
``test-artifacts/pages/``.
"""

from __future__ import annotations

import itertools
import math
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import psycopg
import pytest

from tests.test_api_support import N_GRAINS, LiveServer, api_db, libpq  # noqa: F401 - fixtures

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "pages"
PIXEL_UM = 1.5  # the synthetic run's image pixel size
SIZE = 1024

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="needs Debian's chromium (apt-get install chromium)")
sync_api = pytest.importorskip("playwright.sync_api")


# --------------------------------------------------------------------------- data
def _grain_layout(n: int) -> list[tuple[int, int, int]]:
    """(row, col, radius) in pixels of ``n`` non-overlapping discs."""
    rng = np.random.default_rng(11)
    out: list[tuple[int, int, int]] = []
    while len(out) < n:
        r = int(rng.integers(14, 40))
        y, x = (int(v) for v in rng.integers(r + 4, SIZE - r - 4, 2))
        if all(math.hypot(y - yy, x - xx) > r + rr + 6 for yy, xx, rr in out):
            out.append((y, x, r))
    return out


@pytest.fixture(scope="module")
def visible_run(api_db: str, tmp_path_factory: pytest.TempPathFactory) -> dict:  # noqa: F811
    """Give the synthetic run's image real pixels and matching grain outlines; add a
    depth-registered core photo run (roxels only) lower down the same hole."""
    import tifffile

    from mis.imagery.omezarr import import_image

    layout = _grain_layout(N_GRAINS)
    rng = np.random.default_rng(5)
    rgb = np.clip(rng.normal(45, 8, (SIZE, SIZE, 3)), 0, 255)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    with psycopg.connect(libpq(api_db)) as conn:
        grains = conn.execute("SELECT g.id, g.label, c.uri FROM grain g JOIN concept c ON c.id = g.mineral_id "
                              "ORDER BY g.label").fetchall()
        assert len(grains) == N_GRAINS
        for (gid, _label, uri), (y, x, r) in zip(grains, layout, strict=True):
            colour = (225, 190, 40) if uri.endswith("chalcopyrite") else (190, 195, 200)
            disc = (yy - y) ** 2 + (xx - x) ** 2 <= r * r
            rgb[disc] = colour
            # image µm: pixel centres at index * p
            conn.execute("UPDATE grain SET outline = ST_Buffer(ST_MakePoint(%s, %s), %s, 16), centroid_x_um = %s, "
                         "centroid_y_um = %s, area_um2 = %s, ecd_um = %s WHERE id = %s",
                         [x * PIXEL_UM, y * PIXEL_UM, r * PIXEL_UM, x * PIXEL_UM, y * PIXEL_UM,
                          math.pi * (r * PIXEL_UM) ** 2, 2 * r * PIXEL_UM, gid])
        d = tmp_path_factory.mktemp("pages-image")
        tifffile.imwrite(d / "section.tif", rgb.astype(np.uint8), photometric="rgb")
        img = import_image(d / "section.tif", d / "section.ome.zarr", pixel_size_um=PIXEL_UM, progress=False)
        image_id, plug_id, hole_id = conn.execute(
            "UPDATE image i SET store_uri = %s, array_paths = %s, shape = %s, chunks = %s, dtype = %s, "
            "checksum_sha256 = %s FROM plug p WHERE i.name = 'section-1' AND p.id = i.plug_id "
            "RETURNING i.id, i.plug_id, p.drillcore_id",
            [img.store_uri, list(img.array_paths), list(img.shape), list(img.chunks), img.dtype,
             img.checksum_sha256]).fetchone()
        for statement in CORE_PHOTO_RUN + SECOND_CORE_PHOTO_RUN:
            conn.execute(statement, {"hole": hole_id})
        n_plugs = conn.execute("SELECT count(*) FROM plug WHERE drillcore_id = %s", [hole_id]).fetchone()[0]
        n_holes = conn.execute("SELECT count(*) FROM drillcore").fetchone()[0]
    big = max(range(N_GRAINS), key=lambda k: layout[k][2])
    return {"image": image_id, "plug": plug_id, "drillcore": hole_id, "plugs": n_plugs, "holes": n_holes,
            "largest": {"id": grains[big][0], "row": layout[big][0], "col": layout[big][1], "r": layout[big][2]}}


CORE_PHOTO_RUN = ("""
WITH p AS (SELECT id, from_m, position FROM plug WHERE drillcore_id = %(hole)s ORDER BY from_m OFFSET 1 LIMIT 1),
img AS (
  INSERT INTO image (plug_id, name, store_uri, array_paths, shape, chunks, dtype, pixel_size_um, modality_uri,
                     checksum_sha256, depth_axis, depth_top_m, depth_bottom_m)
  SELECT id, 'core-photo', 'file:///nonexistent/core-photo.zarr', '{0}', '{3,256,8192}', '{3,256,256}', 'uint8',
         100, 'https://w3id.org/mis/vocab/image-modality/reflected-light', 'core-photo-1', 'x', from_m, from_m + 30
  FROM p RETURNING id),
run AS (INSERT INTO segmentation_run (image_id, name, software_version, roxel_size, status)
        SELECT id, 'core', 'test', 16, 'complete' FROM img RETURNING id),
cls AS (
  INSERT INTO run_class (run_id, class_index, concept_uri)
  SELECT run.id, k - 1, u FROM run, unnest(ARRAY['https://w3id.org/mis/vocab/mineral/chalcopyrite',
      'https://w3id.org/mis/vocab/mineral/quartz', 'https://w3id.org/mis/vocab/segmentation-class/pore-epoxy'])
      WITH ORDINALITY AS c(u, k)
  RETURNING run_id)
SELECT count(*) FROM cls
""", """
-- a new run's partitions exist once the statement that inserts it is over
WITH p AS (SELECT id, from_m, position FROM plug WHERE drillcore_id = %(hole)s ORDER BY from_m OFFSET 1 LIMIT 1),
run AS (SELECT max(id) AS id FROM segmentation_run)
INSERT INTO roxel (run_id, row, col, composition, dominant_class_id, dominant_fraction, depth_m, position)
SELECT run.id, r, c, ARRAY[f, 0.85 - f, 0.15]::real[],
       (SELECT id FROM concept WHERE uri = CASE WHEN f > 0.425 THEN 'https://w3id.org/mis/vocab/mineral/chalcopyrite'
                                                ELSE 'https://w3id.org/mis/vocab/mineral/quartz' END),
       greatest(f, 0.85 - f), p.from_m + c * 30.0 / 512, p.position
FROM run, p, generate_series(0, 15) r, generate_series(0, 511) c,
     LATERAL (SELECT 0.4 + 0.35 * sin(c / 40.0) AS f) x
""")


#: A second core photo of the same plug over the first 10 m of the first one, with another
#: class list (pyrite, quartz) and a size that is no multiple of the roxel size (edge
#: roxels of 8 px), and a rock for each core photo's run: the plug has two rocks.
SECOND_CORE_PHOTO_RUN = ("""
WITH p AS (SELECT id, from_m FROM plug WHERE drillcore_id = %(hole)s ORDER BY from_m OFFSET 1 LIMIT 1),
img AS (
  INSERT INTO image (plug_id, name, store_uri, array_paths, shape, chunks, dtype, pixel_size_um, modality_uri,
                     checksum_sha256, depth_axis, depth_top_m, depth_bottom_m)
  SELECT id, 'core-photo-2', 'file:///nonexistent/core-photo-2.zarr', '{0}', '{3,40,2600}', '{3,256,256}', 'uint8',
         100, 'https://w3id.org/mis/vocab/image-modality/reflected-light', 'core-photo-2', 'x', from_m, from_m + 10
  FROM p RETURNING id),
run AS (INSERT INTO segmentation_run (image_id, name, software_version, roxel_size, status)
        SELECT id, 'core-2', 'test', 16, 'complete' FROM img RETURNING id),
cls AS (
  INSERT INTO run_class (run_id, class_index, concept_uri)
  SELECT run.id, k - 1, u FROM run, unnest(ARRAY['https://w3id.org/mis/vocab/mineral/pyrite',
      'https://w3id.org/mis/vocab/mineral/quartz']) WITH ORDINALITY AS c(u, k)
  RETURNING run_id)
SELECT count(*) FROM cls
""", """
WITH p AS (SELECT id, from_m, position FROM plug WHERE drillcore_id = %(hole)s ORDER BY from_m OFFSET 1 LIMIT 1),
run AS (SELECT max(id) AS id FROM segmentation_run)
INSERT INTO roxel (run_id, row, col, composition, dominant_class_id, dominant_fraction, depth_m, position)
SELECT run.id, r, c, ARRAY[0.3, 0.7]::real[],
       (SELECT id FROM concept WHERE uri = 'https://w3id.org/mis/vocab/mineral/quartz'), 0.7,
       p.from_m + least(c * 16 + 8, 2599) * 10.0 / 2600, p.position
FROM run, p, generate_series(0, 2) r, generate_series(0, 162) c
""", """
INSERT INTO rock (plug_id, run_id, lithology_source)
SELECT i.plug_id, r.id, 'rule' FROM segmentation_run r JOIN image i ON i.id = r.image_id
WHERE r.name IN ('core', 'core-2')
""", """
INSERT INTO rock_constituent (rock_id, mineral_uri, proportion_area)
SELECT k.id, 'https://w3id.org/mis/vocab/' || m, f
FROM rock k JOIN segmentation_run r ON r.id = k.run_id,
     LATERAL (VALUES ('core', 'mineral/chalcopyrite', 0.3), ('core', 'mineral/quartz', 0.55),
                     ('core', 'segmentation-class/pore-epoxy', 0.15), ('core-2', 'mineral/pyrite', 0.3),
                     ('core-2', 'mineral/quartz', 0.7)) v(run, m, f)
WHERE r.name = v.run
""")


@pytest.fixture(scope="module")
def site(api_db: str, visible_run: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:  # noqa: F811
    from mis.api.pages import page_routes

    server = LiveServer(api_db, tmp_path_factory.mktemp("pages-state"))
    if not any(getattr(r, "path", None) == "/mis/map" for r in server.app.routes):
        server.app.router.routes[0:0] = page_routes(api_db)  # create_app does not add them (yet)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


class Browser:
    """One Chromium page that records every request and response."""

    def __init__(self, page) -> None:
        self.page = page
        self.requests: list[str] = []
        self.failed: list[str] = []
        self.responses: list[tuple[int, str]] = []
        self.errors: list[str] = []
        page.on("request", lambda r: self.requests.append(r.url))
        # ERR_ABORTED is the browser cancelling a request itself (a navigation away from a
        # page still loading its data); real failures show as other codes or 4xx/5xx below.
        page.on("requestfailed", lambda r: None if r.failure == "net::ERR_ABORTED"
                else self.failed.append(f"{r.url} {r.failure}"))
        page.on("response", lambda r: self.responses.append((r.status, r.url)))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)

    def reset(self) -> None:
        self.requests.clear()
        self.failed.clear()
        self.responses.clear()
        self.errors.clear()

    def check_clean(self, known: tuple[str, ...] = ()) -> None:
        """Offline and error-free: every request to 127.0.0.1, none failed, no 4xx/5xx,
        no script error (but the ``known`` messages a vendored library logs itself)."""
        outside = [u for u in self.requests if urlsplit(u).scheme not in ("data", "blob", "about")
                   and urlsplit(u).hostname != "127.0.0.1"]
        assert not outside, f"requests left 127.0.0.1: {outside}"
        assert not self.failed, self.failed
        bad = [(s, u) for s, u in self.responses if s >= 400]
        assert not bad, bad
        errors = [e for e in self.errors if not e.startswith(known)] if known else self.errors
        assert not errors, errors

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture(scope="module")
def browser(site: str) -> Iterator[Browser]:
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        context = chromium.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
        # nothing may leave the machine: anything not for 127.0.0.1 is refused (and recorded)
        context.route(re.compile(r"^(?!http://127\.0\.0\.1[:/]).*", re.I),
                      lambda route: route.abort("internetdisconnected"))
        page = context.new_page()
        page.set_default_timeout(20_000)
        try:
            yield Browser(page)
        finally:
            context.close()
            chromium.close()


# --------------------------------------------------------------------------- pages
def test_map_shows_deposit_collars_and_traces_offline(site, browser, visible_run):
    b = browser
    b.reset()
    b.page.goto(f"{site}/mis/map")
    b.page.wait_for_selector(f"#map[data-loaded='{visible_run['holes']}']")
    assert b.page.locator("path.mis-collar").count() == visible_run["holes"]
    assert b.page.locator("path.mis-trace").count() == visible_run["holes"]
    assert b.page.locator("path.mis-deposit").count() == 1
    assert b.page.locator(".mis-graticule").count() >= 4  # the offline base layer
    assert b.page.locator("img.leaflet-tile").count() == 0  # no tile server asked for
    status = b.page.inner_text("#map-status")
    assert f"{visible_run['holes']} drill core(s)" in status
    # the status box hides nothing the map shows: the deposit, collars and traces are clear of it
    clash = b.page.evaluate("""() => {
        const s = document.getElementById('map-status').getBoundingClientRect();
        return [...document.querySelectorAll('path.mis-deposit, path.mis-collar, path.mis-trace')]
            .map((p) => p.getBoundingClientRect())
            .filter((r) => r.left < s.right && r.right > s.left && r.top < s.bottom && r.bottom > s.top).length;
    }""")
    assert clash == 0
    assert b.page.locator(".mis-collar-label").first.inner_text().startswith("QA-")
    b.shot("map")
    b.check_clean()
    # a collar opens its drill core page
    label = b.page.locator(".mis-collar-label", has_text="QA-001").inner_text()
    assert label == "QA-001"
    index = [t.inner_text() for t in b.page.locator(".mis-collar-label").all()].index("QA-001")
    with b.page.expect_navigation():
        b.page.locator("path.mis-collar").nth(index).click(force=True)
    assert re.search(r"/mis/drillcore/\d+$", b.page.url)
    assert b.page.locator("h1").inner_text() == "Drill core QA-001"


def test_drillcore_page_trace_plugs_and_downhole_log(site, browser, visible_run):
    b = browser
    b.reset()
    b.page.goto(f"{site}/mis/drillcore/{visible_run['drillcore']}")
    b.page.wait_for_function("document.getElementById('log').dataset.bins > 0")
    assert b.page.locator("h1").inner_text().startswith("Drill core QA-")
    assert "m along hole" in b.page.inner_text("#length")
    # plan and section: the trace as a polyline of many vertices, collar, every plug as a dot
    for view in ("plan", "section"):
        points = b.page.locator(f"#{view} polyline.trace").get_attribute("points").split()
        assert len(points) >= 5, view
        assert b.page.locator(f"#{view} circle.collar").count() == 1
        assert b.page.locator(f"#{view} circle.plug").count() == visible_run["plugs"], view
    # plug table with lithology and links to the plug pages
    rows = b.page.locator("#plugs tbody tr")
    assert rows.count() == visible_run["plugs"]
    assert b.page.locator("#plugs a[href*='/mis/plug/']").count() == visible_run["plugs"]
    assert any(word in b.page.inner_text("#plugs") for word in ("andesite", "dacite", "porphyry", "granodiorite"))
    # the log: lithology track, the rock's modal composition, the roxel profile
    assert b.page.locator("#log .track-lithology rect").count() == visible_run["plugs"]
    # the section's rock (Ccp, Qz), the two core photos' rocks of one plug (Ccp, Qz, pore; Py, Qz)
    assert int(b.page.get_attribute("#log", "data-rocks")) == 7
    bins = int(b.page.get_attribute("#log", "data-bins"))
    assert bins >= 10  # 30 m of core photo over a ~400 m hole in 200 bins, plus the section
    assert b.page.locator("#log .track-roxels rect.bin").count() >= 3 * bins - 5
    legend = b.page.inner_text("#log-legend")
    assert "Ccp" in legend and "Qz" in legend
    b.shot("drillcore")
    # zoom the log onto the core photo's 30 m
    top = float(b.page.locator("#plugs tbody tr").nth(1).locator("td").nth(1).inner_text())
    b.page.fill("#log-range input[name=from_m]", str(top))
    b.page.fill("#log-range input[name=to_m]", str(top + 30))
    b.page.click("#log-range button[type=submit]")
    b.page.wait_for_function("document.getElementById('log').dataset.bins >= 150")
    b.shot("drillcore-log-zoomed")
    b.check_clean()


def test_plug_page_viewer_tiles_grains_overlay_and_composition(site, browser, visible_run):
    b = browser
    b.reset()
    b.page.goto(f"{site}/mis/plug/{visible_run['plug']}")
    b.page.wait_for_selector(f"svg.mis-grains[data-loaded='{N_GRAINS}']")
    b.page.wait_for_function("window.misViewer && window.misViewer.world.getItemCount() === 1 && "
                             "window.misViewer.world.getItemAt(0).getFullyLoaded()")
    assert b.page.locator("svg.mis-grains path").count() == N_GRAINS
    tiles = [u for s, u in b.responses if s == 200 and re.search(rf"/iiif/3/{visible_run['image']}/.+\.(jpg|png)", u)]
    assert tiles, b.responses
    assert any(u.endswith("/info.json") for s, u in b.responses if s == 200)
    # the overlay sits on the image: the largest grain's outline is centred where the viewer
    # draws its pixel centre
    g = visible_run["largest"]
    where = b.page.evaluate("""(g) => {
        const v = window.misViewer, item = v.world.getItemAt(0);
        const p = item.imageToViewerElementCoordinates(new OpenSeadragon.Point(g.col + 0.5, g.row + 0.5));
        const box = v.element.getBoundingClientRect();
        const r = document.querySelector(`path[data-grain="${g.id}"]`).getBoundingClientRect();
        const k = item.imageToViewerElementCoordinates(new OpenSeadragon.Point(1000, 0)).x
                - item.imageToViewerElementCoordinates(new OpenSeadragon.Point(0, 0)).x;
        return {x: box.left + p.x, y: box.top + p.y, cx: r.left + r.width / 2, cy: r.top + r.height / 2,
                w: r.width, scale: k / 1000};
    }""", g)
    assert abs(where["cx"] - where["x"]) < 1.5 and abs(where["cy"] - where["y"]) < 1.5, where
    assert where["w"] == pytest.approx(2 * g["r"] * where["scale"], rel=0.05, abs=1.5)
    # composition table from the rock, grain statistics per mineral
    table = b.page.inner_text("table.mis-composition")
    assert "Ccp" in table and "12.0 %" in table and "Qz" in table and "60.0 %" in table
    stats = b.page.inner_text("#grain-stats")
    assert "Ccp" in stats and "Qz" in stats
    assert f"{N_GRAINS} of {N_GRAINS} grains" in b.page.inner_text("#grain-status")
    b.shot("plug")
    # zoomed in on the largest grain
    b.page.evaluate("""(g) => { const v = window.misViewer, item = v.world.getItemAt(0);
        const c = item.imageToViewportCoordinates(new OpenSeadragon.Point(g.col, g.row));
        v.viewport.zoomTo(4, c, true); v.viewport.panTo(c, true); }""", g)
    b.page.wait_for_function("window.misViewer.world.getItemAt(0).getFullyLoaded()")
    b.page.wait_for_timeout(300)
    b.shot("plug-zoomed")
    b.check_clean()
    # links back up
    assert b.page.locator(f"a[href$='/mis/drillcore/{visible_run['drillcore']}']").count() >= 1


def _lab(colour: str) -> tuple[float, float, float]:
    """CIELAB (D65) of ``#rrggbb``."""
    rgb = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    x, y, z = ((0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047, 0.2126 * r + 0.7152 * g + 0.0722 * b,
               (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883)
    f = [v ** (1 / 3) if v > 0.008856 else 7.787 * v + 16 / 116 for v in (x, y, z)]
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


def test_downhole_log_keeps_one_class_order_and_the_rocks_of_a_plug_apart(site, browser, visible_run):
    b = browser
    b.reset()
    b.page.goto(f"{site}/mis/drillcore/{visible_run['drillcore']}")
    b.page.wait_for_function("document.getElementById('log').dataset.bins > 0")
    rows = b.page.evaluate("""() => {
        const rows = {};
        for (const r of document.querySelectorAll('#log .track-roxels rect.bin, #log .track-rocks rect')) {
            const key = (r.dataset.rock ? 'rock' + r.dataset.rock : 'bin') + ':' + r.getAttribute('y');
            (rows[key] = rows[key] || []).push([+r.getAttribute('x'), r.dataset.class]);
        }
        return Object.values(rows).map((row) => row.sort((a, b) => a[0] - b[0]).map((c) => c[1]));
    }""")
    legend = b.page.evaluate("() => [...document.querySelectorAll('#log-legend span')].map((s) => s.textContent)")
    rank = {name: k for k, name in enumerate(legend)}
    assert {"Ccp", "Py", "Qz", "pore-epoxy"} <= set(rank) and len(rows) > 10
    for row in rows:  # left to right, every row follows the legend's order
        assert [rank[n] for n in row] == sorted(rank[n] for n in row), row
    boxes = b.page.evaluate("""() => [...document.querySelectorAll('#log .track-rocks rect')].map((r) => ({
        rock: r.dataset.rock, y: +r.getAttribute('y'), h: +r.getAttribute('height')}))""")
    spans: dict[str, tuple[float, float]] = {}
    for box in boxes:
        lo, hi = spans.get(box["rock"], (box["y"], box["y"] + box["h"]))
        spans[box["rock"]] = (min(lo, box["y"]), max(hi, box["y"] + box["h"]))
    assert len(spans) == 3
    ordered = sorted(spans.values())
    assert all(a[1] <= b_[0] + 1e-6 for a, b_ in itertools.pairwise(ordered)), ordered  # no rock over another
    # distinct colours: the log's classes and the common ore and gangue minerals
    names = sorted(set(legend) | {"Ccp", "Py", "Bn", "Cct", "Cv", "Mol", "Mag", "Hem", "Gn", "Sp", "Au", "Qz",
                                  "Pl", "Kfs", "Bt", "Ms", "Chl", "Ser", "Cal", "Anh", "Ep", "Amp", "pore-epoxy"})
    colours = b.page.evaluate("(names) => names.map((n) => MIS.classColour(n))", names)
    labs = dict(zip(names, map(_lab, colours), strict=True))
    close = [(x, y) for i, x in enumerate(names) for y in names[i + 1:] if math.dist(labs[x], labs[y]) < 15]
    assert close == [], close
    b.check_clean()


def test_plug_viewer_fills_the_window_below_its_header(site, browser, visible_run):
    b = browser
    b.reset()
    b.page.goto(f"{site}/viewer/plug/{visible_run['plug']}")
    b.page.wait_for_selector("#osd .openseadragon-container")
    box = b.page.evaluate("""() => {
        const h = document.querySelector('header').getBoundingClientRect();
        const o = document.getElementById('osd').getBoundingClientRect();
        return {header: h.bottom, top: o.top, bottom: o.bottom, height: innerHeight, left: o.left,
                right: o.right, width: innerWidth, body: getComputedStyle(document.body).backgroundColor};
    }""")
    assert abs(box["top"] - box["header"]) < 0.5 and abs(box["bottom"] - box["height"]) < 0.5, box  # no band
    assert box["left"] == 0 and box["right"] == box["width"] and box["body"] == "rgb(0, 0, 0)", box
    b.check_clean()


PYGEOAPI_PAGES = ["/?f=html", "/collections?f=html", "/collections/plugs?f=html", "/collections/plugs/items?f=html",
                  "/collections/plugs/items/1?f=html", "/collections/drillcore-traces/items?f=html",
                  "/collections/surveys/items?f=html", "/collections/surveys/items/1?f=html",
                  "/collections/vocab-mineral?f=html", "/collections/plugs/queryables?f=html", "/openapi?f=html"]


@pytest.mark.parametrize("path", PYGEOAPI_PAGES)
def test_pygeoapi_pages_work_offline(site, browser, path):
    """pygeoapi's own HTML pages load MIS's copies of Leaflet, Leaflet.markercluster and
    Bootstrap and MIS's plain base tiles: nothing leaves 127.0.0.1, nothing fails."""
    b = browser
    b.reset()
    b.page.goto(f"{site}{path}", wait_until="networkidle")
    if path.startswith("/openapi"):
        b.page.wait_for_selector(".swagger-ui .opblock")  # Swagger UI drew the operations
    else:
        styled = b.page.evaluate(
            "() => [...document.styleSheets].some((s) => (s.href || '').includes('/static/bootstrap/'))")
        assert styled, path
    if b.page.locator(".leaflet-container").count():
        assert b.page.evaluate("() => typeof L === 'object' && L.version.startsWith('1.')")
        tiles = [u for s, u in b.responses if s == 200 and "/mis/tiles/" in u]
        assert tiles, path
    b.check_clean()


#: What Mirador 4.0.0 itself logs as an error on every start (React 19's deprecation notice).
MIRADOR_LOGS = ("Accessing element.ref was removed in React 19.",)


@pytest.fixture(scope="module")
def other_origin(site: str, visible_run: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A page on another origin (127.0.0.1, another port) with MIS's Mirador on a plug's
    manifest: every request to MIS is cross-origin (CORS)."""
    import http.server
    import threading

    from mis.catalogue.postgres import free_port

    root = tmp_path_factory.mktemp("other-origin")
    manifest = f"{site}/iiif/presentation/plug/{visible_run['plug']}/manifest.json"
    (root / "index.html").write_text(f"""<!doctype html><html><head><meta charset="utf-8"><title>elsewhere</title>
<style>html, body {{ margin: 0; height: 100%; }} #m {{ position: absolute; inset: 0; }}</style></head>
<body><div id="m"></div><script src="{site}/static/mirador/mirador.min.js"></script>
<script>window.miradorInstance = Mirador.viewer({{id: "m", windows: [{{manifestId: "{manifest}",
  thumbnailNavigationPosition: "far-bottom"}}], window: {{sideBarOpen: true, defaultSideBarPanel: "info"}}}});
</script></body></html>""")
    port = free_port()
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(root), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/index.html"
    finally:
        server.shutdown()
        server.server_close()


def test_mirador_on_another_origin_renders_a_plug_manifest(site, browser, visible_run, other_origin):
    b = browser
    b.reset()
    b.page.goto(other_origin)
    manifest = f"{site}/iiif/presentation/plug/{visible_run['plug']}/manifest.json"
    b.page.wait_for_function("(id) => { const m = window.miradorInstance.store.getState().manifests[id];"
                             " return m && m.json; }", arg=manifest)
    b.page.wait_for_selector(".openseadragon-canvas canvas")
    b.page.wait_for_function("() => performance.getEntriesByType('resource')"
                             ".some((e) => /\\/iiif\\/3\\/\\d+\\/.+\\/default\\.jpg$/.test(e.name))")
    b.page.wait_for_timeout(500)
    state = b.page.evaluate("(id) => window.miradorInstance.store.getState().manifests[id].json", manifest)
    assert state["navPlace"]["features"][0]["geometry"]["type"] == "Point"  # Mirador holds what it read
    assert state["rights"].startswith("http://creativecommons.org/") and state["requiredStatement"]
    image = visible_run["image"]
    served = [u for s, u in b.responses if s == 200]
    assert any(f"/iiif/3/{image}/info.json" in u for u in served), served
    tiles = [u for u in served if re.search(rf"/iiif/3/{image}/[^/]+/[^/]+/0/default\.jpg$", u)]
    assert tiles, served  # deep-zoom tiles or thumbnails, from MIS, across origins
    # the grains, the canvas's annotations: Mirador fetches their page across origins
    canvas = state["items"][0]["id"]
    b.page.wait_for_function("(c) => { const a = window.miradorInstance.store.getState().annotations[c];"
                             " return a && Object.values(a).some((p) => p.json && p.json.items); }", arg=canvas)
    read = b.page.evaluate("(c) => Object.values(window.miradorInstance.store.getState().annotations[c])"
                           ".map((p) => p.json.items.length)", canvas)
    assert read == [N_GRAINS]
    # the thumbnail strip shows the canvas's thumbnail, from MIS's image service
    b.page.wait_for_selector(f"img[src^='{site}/iiif/3/{image}/']")
    assert "QA-001 / QA-001-P01" in b.page.inner_text("body")  # the manifest's label, in the information panel
    b.shot("mirador-other-origin")
    b.check_clean(MIRADOR_LOGS)


def test_mirador_page_of_a_plug(site, browser, visible_run):
    b = browser
    b.reset()
    b.page.goto(f"{site}/viewer/mirador/plug/{visible_run['plug']}")
    b.page.wait_for_selector(".openseadragon-canvas canvas")
    b.check_clean(MIRADOR_LOGS)


# --------------------------------------------------------------------------- JSON and errors
def test_grains_json_is_in_image_pixels(site, visible_run):
    import httpx

    body = httpx.get(f"{site}/mis/api/image/{visible_run['image']}/grains.json", params={"limit": 5}).json()
    assert body["total"] == N_GRAINS and len(body["grains"]) == 5
    g = visible_run["largest"]
    first = body["grains"][0]
    assert first["id"] == g["id"]  # largest first
    xy = np.array([float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", first["d"])]).reshape(-1, 2)
    assert xy[:, 0].min() == pytest.approx(g["col"] + 0.5 - g["r"], abs=0.2)
    assert xy[:, 0].max() == pytest.approx(g["col"] + 0.5 + g["r"], abs=0.2)
    assert xy[:, 1].min() == pytest.approx(g["row"] + 0.5 - g["r"], abs=0.2)
    assert xy[:, 1].max() == pytest.approx(g["row"] + 0.5 + g["r"], abs=0.2)


def test_log_json_and_error_statuses(site, visible_run):
    import httpx

    with httpx.Client(base_url=site, timeout=30) as http:
        hole = visible_run["drillcore"]
        log = http.get(f"/mis/api/drillcore/{hole}/log.json", params={"bins": 50}).json()
        assert set(log["classes"]) >= {"Ccp", "Qz"}
        # every roxel of a bin counts (weighted by its pixels), a class its image lacks as 0:
        # the fractions of a bin sum to 1 where core photos with other class lists overlap
        sums = [sum(b["fractions"].values()) for b in log["bins"]]
        assert sums and max(abs(v - 1) for v in sums) < 1e-3, sums
        assert sum(1 for b in log["bins"] if b["roxels"]) >= 4
        mixed = [b for b in log["bins"] if {"Py", "Ccp"} <= set(b["fractions"])]
        assert mixed, "the two core photos share bins"
        for b in mixed:  # pyrite only in the second photo: its share of the bin's pixels
            assert 0 < b["fractions"]["Py"] < 0.3
        info = http.get(f"/mis/api/drillcore/{hole}.json").json()
        assert info["trace"]["crs"].startswith("EPSG:") and len(info["trace"]["points"]) >= 5
        depths = [p[3] for p in info["trace"]["points"]]
        assert depths[-1] == pytest.approx(info["drillcore"]["length_m"], rel=0.01)
        assert http.get("/mis", follow_redirects=False).status_code == 303
        for path, status in (("/mis/drillcore/999999", 404), ("/mis/drillcore/abc", 404), ("/mis/plug/0", 404),
                             ("/mis/api/image/999999/grains.json", 404),
                             (f"/mis/api/drillcore/{hole}/log.json?bins=0", 400),
                             (f"/mis/api/drillcore/{hole}/log.json?from_m=x", 400),
                             (f"/mis/api/drillcore/{hole}/log.json?from_m=10&to_m=5", 400)):
            r = http.get(path)
            assert r.status_code == status, (path, r.text)
        page = http.get("/mis/drillcore/999999")
        assert "text/html" in page.headers["content-type"] and "no drill core 999999" in page.text
        assert http.get("/static/leaflet/leaflet.js").status_code == 200
        assert http.get("/static/mis/mis.js").status_code == 200
