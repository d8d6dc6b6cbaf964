"""Benchmark: MIS's OGC API - Features server vs stock pygeoapi (and tipg) on a big roxel table.

Run:  python bench/bench_api.py [--rows 5000000] [--home /tmp/mis-bench] [--tipg-python PATH]

1. A bench catalogue in its own embedded PostGIS (``--home``; kept between runs, the
   table is generated once): migrated schema, vocabularies, one deposit/hole, 50
   plugs/images/runs, and ``--rows`` roxels written with ``generate_series`` straight
   into the table (not through the pipeline): positions spread pseudo-randomly over a
   0.2 x 0.2 degree box (so ids and space are unrelated, the hard case for a bbox page),
   5 classes (chalcopyrite 10 %), the indexes of the real schema (GiST on position,
   B-trees on class + depth and depth), then ANALYZE.
2. Three servers, one after the other, each in its own process, serving the same view
   ``pub.roxels`` (same features, same properties):
   - **ours**: ``mis.api.app.create_app`` (pygeoapi + MIS's provider);
   - **stock**: pygeoapi 0.21's own starlette app with its ``PostgreSQL`` provider;
   - **tipg** (if ``--tipg-python`` names an interpreter with tipg installed; it pins other
     versions of fastapi/starlette than pygeoapi, so it lives in its own venv:
     ``python -m venv /tmp/tipg-venv && /tmp/tipg-venv/bin/pip install tipg uvicorn``).
3. For each: p50/p95 latency of ``limit=1000`` pages (plain; bbox + class filter; the page
   at position 2,000,000: by ``offset`` for stock and tipg, by the ``cursor`` of our next
   links for ours, and by ``offset`` for ours too), paging throughput (following ``next``
   links through 100,000 features) and the size of a page. Ratios are against stock
   pygeoapi measured in the same run (machines are noisy; ratios are the result).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import psycopg
import yaml

from mis.catalogue.postgres import EmbeddedPostgres, free_port

REPO = Path(__file__).resolve().parents[1]
DB = "mis_bench"
PER_RUN = 100_000
CLASSES = [  # (uri, share of roxels in per mille, cumulative)
    ("https://w3id.org/mis/vocab/mineral/chalcopyrite", 100),
    ("https://w3id.org/mis/vocab/mineral/quartz", 400),
    ("https://w3id.org/mis/vocab/mineral/plagioclase", 200),
    ("https://w3id.org/mis/vocab/mineral/orthoclase", 200),
    ("https://w3id.org/mis/vocab/segmentation-class/pore-epoxy", 100),
]
BBOX = "-68.93,-22.97,-68.91,-22.95"  # 1 % of the area; with chalcopyrite: ~0.1 % of the rows
FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
        "shared_buffers": "512MB", "maintenance_work_mem": "512MB", "max_wal_size": "4GB",
        "work_mem": "32MB"}


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


# --------------------------------------------------------------------------- data
def prepare(home: Path, rows: int) -> str:
    """The bench database URL; generates the roxel table unless it already has ``rows``."""
    cluster = EmbeddedPostgres(home=home, settings=FAST)
    state = cluster.start()
    admin = libpq(state.url("postgres"))
    url = state.url(DB)
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB]).fetchone()
    if exists:
        with psycopg.connect(libpq(url)) as conn:
            n = conn.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = 'roxel'::regclass").fetchone()[0]
        if abs(n - rows) <= rows * 0.01:
            from mis.catalogue import migrate

            print(f"reusing {DB}: ~{n:,} roxels", flush=True)
            migrate.upgrade(url)  # a table generated under an older schema gets its new indexes
            return url
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{DB}" WITH (FORCE)')
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{DB}"')
    from mis.catalogue import migrate
    from mis.vocab.load import load_vocabularies

    t0 = time.perf_counter()
    migrate.upgrade(url)
    load_vocabularies(url=url, progress=False)
    runs = max(1, -(-rows // PER_RUN))
    with psycopg.connect(libpq(url)) as conn:
        ids = {uri: conn.execute("SELECT id FROM concept WHERE uri = %s", [uri]).fetchone()[0] for uri, _ in CLASSES}
        conn.execute("""
            INSERT INTO deposit (name, footprint) VALUES ('Bench', ST_GeomFromText('POINT(-68.9 -22.95)', 4326));
            INSERT INTO drillcore (deposit_id, name, collar, trace, elevation_m, length_m)
            SELECT id, 'BENCH-1', ST_GeomFromText('POINT Z(-68.9 -22.95 3800)', 4326),
                   ST_GeomFromText('LINESTRING Z(-68.9 -22.95 3800, -68.9 -22.95 1800)', 4326), 3800, 2000
            FROM deposit;
        """)
        conn.execute(f"""
            INSERT INTO plug (drillcore_id, name, from_m, to_m, sample_type_uri, position)
            SELECT h.id, 'P' || k, k * 10, k * 10 + 1, 'https://w3id.org/mis/vocab/sample-type/plug', h.collar
            FROM drillcore h, generate_series(1, {int(runs)}) k;
            INSERT INTO image (plug_id, name, store_uri, array_paths, shape, chunks, dtype, pixel_size_um,
                               modality_uri, checksum_sha256)
            SELECT id, 'img', 'file:///bench/' || name || '.zarr', '{{0}}', '{{3,4000,6400}}', '{{3,512,512}}', 'uint8',
                   1.0, 'https://w3id.org/mis/vocab/image-modality/reflected-light', md5(name) FROM plug;
            INSERT INTO segmentation_run (image_id, software_version, roxel_size, status)
            SELECT id, 'bench', 16, 'complete' FROM image ORDER BY id;
        """)
        for k, (uri, _share) in enumerate(CLASSES):
            conn.execute("INSERT INTO run_class (run_id, class_index, concept_uri) "
                         "SELECT id, %s, %s FROM segmentation_run", [k, uri])
        indexes = conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'roxel' "
                               "AND indexname NOT IN ('pk_roxel', 'uq_roxel_run_id_row_col')").fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.commit()
        print(f"schema, vocabularies, {runs} runs: {time.perf_counter() - t0:.0f} s; generating {rows:,} roxels",
              flush=True)
        cases, cum = [], 0
        for uri, share in CLASSES:
            cum += share
            cases.append(f"WHEN h < {cum} THEN {ids[uri]}")
        conn.execute("SET session_replication_role = replica")  # bulk load: no FK triggers
        conn.execute(f"""
            INSERT INTO roxel (run_id, row, col, composition, dominant_class_id, dominant_fraction, depth_m, position)
            SELECT (SELECT min(id) FROM segmentation_run) + i / {PER_RUN}, (i % {PER_RUN}) / 400, (i % {PER_RUN}) % 400,
                   ARRAY[a, b, 0.1, 0.05, 0.05]::real[], CASE {' '.join(cases)} END, greatest(a, b),
                   10 + (i / {PER_RUN}) * 10 + ((i % {PER_RUN}) / 400) * 0.004,
                   ST_SetSRID(ST_MakePoint(-69.0 + ((i * 7919) % 1000003) / 1000003.0 * 0.2,
                                           -23.05 + ((i * 104729) % 999983) / 999983.0 * 0.2,
                                           3000 + (i % 1000) * 0.5), 4326)
            FROM generate_series(0::bigint, {rows - 1}) AS i,
                 LATERAL (SELECT (i * 2654435761) % 1000 AS h, ((i * 13) % 50) / 100.0 AS a,
                                 ((i * 17) % 50) / 100.0 AS b) x
        """)
        conn.execute("SET session_replication_role = origin")
        conn.commit()
        print(f"roxels written: {time.perf_counter() - t0:.0f} s; indexing", flush=True)
        conn.autocommit = True
        for _name, definition in indexes:
            conn.execute(definition)
        conn.execute("VACUUM ANALYZE roxel")
        conn.execute("ANALYZE")
    print(f"bench database ready in {time.perf_counter() - t0:.0f} s", flush=True)
    return url


# --------------------------------------------------------------------------- servers
def _wait(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            if httpx.get(url, timeout=5).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"server at {url} did not start")


def start_ours(url: str, port: int, state: Path) -> subprocess.Popen:
    code = ("import sys, uvicorn; from mis.api.app import create_app; "
            f"app = create_app({url!r}, port={port}, state_dir={str(state)!r}); "
            f"uvicorn.run(app, host='127.0.0.1', port={port}, log_level='warning')")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def start_stock(url: str, port: int, state: Path) -> subprocess.Popen:
    from pygeoapi.openapi import get_oas
    from sqlalchemy.engine import make_url

    from mis.api.config import load_template

    template = load_template()
    u = make_url(url)
    config = {
        "server": {**template["server"], "bind": {"host": "127.0.0.1", "port": port},
                   "url": f"http://127.0.0.1:{port}", "ogc_schemas_location": None},
        "logging": {"level": "ERROR"},
        "metadata": template["metadata"],
        "resources": {"roxels": {
            "type": "collection", "title": "Roxels", "description": "bench", "keywords": ["roxel"],
            "extents": {"spatial": {"bbox": [-69.0, -23.05, -68.8, -22.85],
                                    "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}},
            "providers": [{"type": "feature", "name": "PostgreSQL", "table": "roxel", "id_field": "id",
                           "geom_field": "position",
                           "data": {"host": u.host, "port": u.port, "dbname": u.database, "user": u.username,
                                    "password": u.password, "search_path": ["public"]}}]}},
    }
    del config["server"]["ogc_schemas_location"]
    cfg = state / "stock-config.yml"
    cfg.write_text(yaml.safe_dump(config))
    oas = state / "stock-openapi.json"
    oas.write_text(json.dumps(get_oas(config)))
    env = {**os.environ, "PYGEOAPI_CONFIG": str(cfg), "PYGEOAPI_OPENAPI": str(oas)}
    return subprocess.Popen([sys.executable, "-m", "uvicorn", "pygeoapi.starlette_app:APP", "--host", "127.0.0.1",
                             "--port", str(port), "--log-level", "warning"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def start_tipg(url: str, port: int, python: str) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": libpq(url), "TIPG_DB_SCHEMAS": '["public"]',
           "TIPG_MAX_FEATURES_PER_QUERY": "10000",
           "TIPG_DEFAULT_FEATURES_LIMIT": "10"}
    return subprocess.Popen([python, "-m", "uvicorn", "tipg.main:app", "--host", "127.0.0.1", "--port", str(port),
                             "--log-level", "warning"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


# --------------------------------------------------------------------------- measurements
def timed(client: httpx.Client, url: str, params: dict, n: int) -> tuple[list[float], int, dict]:
    client.get(url, params=params)  # warm-up
    times = []
    size, body = 0, {}
    for _ in range(n):
        t = time.perf_counter()
        r = client.get(url, params=params)
        times.append(time.perf_counter() - t)
        assert r.status_code == 200, (url, params, r.status_code, r.text[:300])
        size = len(r.content)
        body = r.json()
    return times, size, body


def paging(client: httpx.Client, url: str, limit: int, total: int) -> tuple[float, int]:
    """Features per second following next links from the first page through ``total`` features.

    The client must read every page to find its next link; it parses with orjson and
    pauses Python's garbage collector meanwhile (the same for every server), so that the
    figure is the servers' rather than ``json.loads`` and the collector's (3-6 ms a page)."""
    got, pages = 0, 0
    gc.collect()
    gc.disable()
    try:
        t = time.perf_counter()
        r = client.get(url, params={"limit": limit})
        while True:
            assert r.status_code == 200, r.text[:300]
            body = orjson.loads(r.content)
            got += len(body["features"])
            pages += 1
            nxt = [link["href"] for link in body.get("links", []) if link.get("rel") == "next"]
            if got >= total or not nxt:
                break
            r = client.get(nxt[0])
        return got / (time.perf_counter() - t), got
    finally:
        gc.enable()


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def measure(name: str, base: str, collection: str, repeat: int, deep: int, total: int, cursor: bool,
            class_filter: dict) -> dict:
    items = f"{base}/collections/{collection}/items"
    out: dict = {"name": name}
    with httpx.Client(timeout=300) as client:
        plain, size, body = timed(client, items, {"limit": 1000}, repeat)
        out["plain"] = plain
        out["bytes"] = size
        out["first_ids"] = [f["id"] for f in body["features"]]
        filtered, _, fbody = timed(client, items, {"limit": 1000, "bbox": BBOX, **class_filter}, repeat)
        out["bbox_class"] = filtered
        out["bbox_class_ids"] = sorted(f["id"] for f in fbody["features"])
        out["deep_offset"], _, dbody = timed(client, items, {"limit": 1000, "offset": deep}, max(3, repeat // 3))
        out["deep_ids"] = [f["id"] for f in dbody["features"]]
        if cursor:
            out["deep_cursor"], _, cbody = timed(client, items, {"limit": 1000, "cursor": deep}, repeat)
            assert [f["id"] for f in cbody["features"]] == out["deep_ids"]
        out["paging"], out["paged"] = paging(client, items, 1000, total)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--home", type=Path, default=Path("/tmp/mis-bench"))
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--deep", type=int, default=2_000_000, help="position of the deep page")
    parser.add_argument("--page-through", type=int, default=100_000)
    parser.add_argument("--tipg-python", default=os.environ.get("MIS_BENCH_TIPG_PYTHON", "/tmp/tipg-venv/bin/python"))
    parser.add_argument("--only-data", action="store_true")
    parser.add_argument("--reuse-results", action="store_true",
                        help="take a server's measurements from the last run when saved (debugging the report)")
    args = parser.parse_args()

    url = prepare(args.home, args.rows)
    if args.only_data:
        return
    state = args.home / "servers"
    state.mkdir(parents=True, exist_ok=True)
    deep = min(args.deep, args.rows - 1000)
    load = os.getloadavg()[0]
    results = []
    with psycopg.connect(libpq(url)) as conn:
        ccp = conn.execute("SELECT id FROM concept WHERE uri = %s", [CLASSES[0][0]]).fetchone()[0]
        partitions = conn.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'roxel'::regclass").fetchone()[0]
    by_id = {"dominant_class_id": str(ccp)}
    servers = [("ours (MIS provider)", "roxels", lambda p: start_ours(url, p, state), True,
                {"dominantClass": "Ccp"}),
               ("stock pygeoapi 0.21", "roxels", lambda p: start_stock(url, p, state), False, by_id)]
    tipg_ok = args.tipg_python and shutil.which(args.tipg_python) and subprocess.run(
        [args.tipg_python, "-c", "import tipg"], capture_output=True).returncode == 0
    if tipg_ok:
        servers.append(("tipg", "public.roxel", lambda p: start_tipg(url, p, args.tipg_python), False, by_id))
    for name, collection, start, cursor, class_filter in servers:
        saved = state / f"result-{name.split()[0]}.json"
        if args.reuse_results and saved.exists():
            results.append(json.loads(saved.read_text()))
            print(f"reusing the measurements of {name} ({saved})", flush=True)
            continue
        port = free_port()
        proc = start(port)
        try:
            _wait(f"http://127.0.0.1:{port}/collections", proc)
            print(f"measuring {name} ...", flush=True)
            results.append(measure(name, f"http://127.0.0.1:{port}", collection, args.repeat, deep,
                                   args.page_through, cursor, class_filter))
            saved.write_text(json.dumps(results[-1]))
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    ours, stock = results[0], results[1]
    agree = []
    for other in results[1:]:  # the same answers, or the comparison means nothing
        same = {k: sorted(other[k]) == sorted(ours[k]) for k in ("bbox_class_ids", "first_ids", "deep_ids")}
        agree.append(f"{other['name']}: " + ", ".join(f"{k} {'same' if v else 'DIFFERENT'}" for k, v in same.items()))
        if other is stock:
            assert all(same.values()), agree[-1]

    import pygeoapi

    lines = [
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"pygeoapi {pygeoapi.__version__}",
        f"load average at start: {load:.2f} (shared machine: ratios, not absolute times, are the result)",
        f"table: {args.rows:,} roxels"
        + (f" in {partitions} partitions (one per run)" if partitions else "")
        + ", GiST(position), GiST(class, position), btree(class, depth), btree(depth); "
        f"{args.repeat} requests per query after a warm-up",
        "ours serves the published view pub.roxels (joins to concept, run, image, plug, drill core and the run's "
        "classes), a page's features with its lean default properties (run_id, plug_id, depth_m, dominantClass, "
        "dominantGrain_id, composition as named non-zero fractions, chunkKey, pixelWindow; the rest with "
        "properties= or per item); stock pygeoapi and tipg serve the table roxel itself",
        f"bbox + class: bbox={BBOX} & dominantClass=Ccp (ours) / dominant_class_id=<id> (table) -> "
        f"{len(ours['bbox_class_ids'])} features on the first page",
        "same answers: " + "; ".join(agree),
        "",
        f"{'limit=1000 page, p50 / p95 ms':<44}" + "".join(f"{r['name']:>26}" for r in results),
    ]

    def row(label: str, key: str, ours_key: str | None = None) -> None:
        cells = []
        for r in results:
            k = ours_key if (ours_key and r is ours) else key
            v = r[k]
            cells.append(f"{pct(v, 50) * 1000:9.1f} / {pct(v, 95) * 1000:7.1f}")
        ratio = pct(stock[key], 50) / pct(ours[ours_key or key], 50)
        lines.append(f"{label:<44}" + "".join(f"{c:>26}" for c in cells) + f"   stock/ours {ratio:6.1f}x")

    row("plain", "plain")
    row("bbox + class filter", "bbox_class")
    row(f"page at {deep:,} (ours: cursor of next link)", "deep_offset", "deep_cursor")
    row(f"page at {deep:,} by offset (all)", "deep_offset")
    lines.append(f"{'paging through ' + format(args.page_through, ',') + ' features, features/s':<44}"
                 + "".join(f"{r['paging']:>26,.0f}" for r in results)
                 + f"   ours/stock {ours['paging'] / stock['paging']:6.1f}x")
    lines.append(f"{'bytes of a limit=1000 page':<44}" + "".join(f"{r['bytes']:>26,}" for r in results))
    tipg = results[2] if tipg_ok else None
    if tipg is None:
        lines.append("tipg: not measured (no interpreter with tipg; see --tipg-python)")
    else:
        lines.append("ours vs tipg (p50): plain {:.1f}x, bbox+class {:.1f}x, deep page {:.1f}x, paging {:.1f}x".format(
            pct(tipg["plain"], 50) / pct(ours["plain"], 50), pct(tipg["bbox_class"], 50) / pct(ours["bbox_class"], 50),
            pct(tipg["deep_offset"], 50) / pct(ours["deep_cursor"], 50), ours["paging"] / tipg["paging"]))
    lines += ["", "targets (issue #5):"]
    lines += targets(ours, stock, tipg, deep)
    print("\n".join(lines))


def targets(ours: dict, stock: dict, tipg: dict | None, deep: int) -> list[str]:
    """One PASS/FAIL line per target of issue #5: every query >= 5x stock pygeoapi (p50) and
    at least as fast as tipg, paging >= 80,000 features/s, a page no larger than stock's."""
    out = []

    def line(ok: bool, text: str) -> None:
        out.append(f"  {'PASS' if ok else 'FAIL'}  {text}")

    for label, key, ours_key in (("plain page", "plain", "plain"), ("bbox + class page", "bbox_class", "bbox_class"),
                                 (f"page at {deep:,} (cursor)", "deep_offset", "deep_cursor")):
        ratio = pct(stock[key], 50) / pct(ours[ours_key], 50)
        text = f"{label}: {ratio:.1f}x stock pygeoapi (>= 5x)"
        ok = ratio >= 5
        if tipg is not None:
            vs = pct(tipg[key], 50) / pct(ours[ours_key], 50)
            text += f", {vs:.1f}x tipg (>= 1x)"
            ok = ok and vs >= 1
        line(ok, text)
    ratio = ours["paging"] / stock["paging"]
    line(ours["paging"] >= 80_000 and ratio >= 5,
         f"paging: {ours['paging']:,.0f} features/s (>= 80,000), {ratio:.1f}x stock pygeoapi (>= 5x)")
    line(ours["bytes"] <= stock["bytes"],
         f"bytes of a limit=1000 page: {ours['bytes']:,} vs stock pygeoapi {stock['bytes']:,} (no larger)")
    return out


if __name__ == "__main__":
    main()
