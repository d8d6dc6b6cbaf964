"""Benchmark: ingestion writer throughput vs raw COPY and the SQLAlchemy ORM; peak memory
of ingesting a 4x larger image; time per stage end to end.

    .venv/bin/python bench/bench_ingest.py                      # [1] + [2] (defaults)
    .venv/bin/python bench/bench_ingest.py --e2e 20000          # + [3] a 20,000^2 image
    .venv/bin/python bench/bench_ingest.py --roxels 200000 --grains 20000 --rss 1024  # smaller
    .venv/bin/python bench/bench_ingest.py --skip-writer --rss 0 --predict 8192         # [4] only
    .venv/bin/python bench/bench_ingest.py --quick   # every part on tiny data (~1 min), writes nothing

[1] Writing one run of --grains grains and --roxels roxels (6 classes) into an embedded
    PostGIS (the project's own cluster, started in --workdir), in the same process:
    (a) the limit: a raw ``COPY ... FROM '<file>' (FORMAT BINARY)`` of the same rows,
        prepared beforehand in files the server reads itself (no client work at all);
        also timed: the same files streamed by the client (``COPY FROM STDIN``, as
        ``psql \\copy`` does), and the server-side COPY into the run's bare partitions
        attached afterwards, as the writer does (:mod:`mis.catalogue.partitions`; the
        limit of the writer's own method);
    (b) ``mis.ingest.writer.RunWriter``: from the pipeline's numpy arrays (grain metric
        table with shapely outlines, roxel records) to committed rows: id reservation,
        encoding, COPY, commit;
    (c) SQLAlchemy ORM bulk insert (``session.execute(insert(Model), [dicts])``, 2.0
        style, batches of 20,000 dicts, geometries as WKB elements, one transaction) of
        the same rows, once (it takes minutes). --orm-grains / --orm-roxels limit it to
        a subset for a quick look; the writer is then also timed on that subset, so the
        ratio always compares equal work.
    Every measurement starts from empty grain/roxel tables (no run partitions left) and is
    one transaction; best of --reps, alternating. Targets: writer >= 0.7 x raw COPY and
    >= 20 x ORM (rows/s).
[2] Peak RSS of ``mis.ingest.run.ingest`` on an --rss square image and on one with 4x the
    pixels (2x each side), each in its own subprocess (its ``VmHWM``; ``ru_maxrss`` would
    count the parent's RSS at fork), labels read from a zarr store on disk (512 px
    chunks). Target: growth < 25 %.
[3] (optional) End to end on an --e2e square image: time per stage.
[4] (optional) Prediction stage vs grain stage on a --predict square RGB image, in the same
    run: the synthetic class map coloured (one colour per class, sensor noise), imported as
    OME-Zarr, a random forest (8 trees, the fast features) trained on 0.2 % of its pixels,
    ``mis predict`` over the store (the prediction stage), then ``ingest()`` of that
    prediction with its probability (default grain rules: cleaning, boundary cuts; the grain
    stage = ``ingest()``'s own wall time less its database writes). Target: grain stage <=
    prediction stage.

Labels are synthetic "thin sections": 6 smooth random fields (bilinear from a coarse grid
of 8 px), argmax per pixel: class 0 background, 5 minerals, grains of ~60 px on average.
The machine is shared and noisy: compare the ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
from machine import describe, versions

HERE = Path(__file__).resolve().parent
CLASSES = ["background", "quartz", "k-feldspar", "plagioclase", "chalcopyrite", "pyrite"]
CHUNK = 512


# ------------------------------------------------------------------ synthetic labels
def label_chunk(seed: int, shape: tuple[int, int], y0: int, x0: int, h: int, w: int, scale: int = 8) -> np.ndarray:
    """A window of the synthetic class map (continuous across windows: bilinear on a
    global coarse grid whose values come from a hash of their grid position)."""
    gy0, gx0 = y0 // scale, x0 // scale
    gy1, gx1 = (y0 + h) // scale + 2, (x0 + w) // scale + 2
    gy, gx = np.mgrid[gy0:gy1, gx0:gx1].astype(np.uint64)
    fields = []
    for k in range(len(CLASSES)):
        v = (gy * np.uint64(73856093)) ^ (gx * np.uint64(19349663)) ^ np.uint64((seed * 31 + k) * 83492791)
        v = (v * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)
        grid = v.astype(np.float64) / float(1 << 24)
        yy = (np.arange(y0, y0 + h) / scale - gy0)[:, None]
        xx = (np.arange(x0, x0 + w) / scale - gx0)[None, :]
        iy, ix = np.floor(yy).astype(int), np.floor(xx).astype(int)
        fy, fx = yy - iy, xx - ix
        f = (grid[iy, ix] * (1 - fy) * (1 - fx) + grid[iy + 1, ix] * fy * (1 - fx)
             + grid[iy, ix + 1] * (1 - fy) * fx + grid[iy + 1, ix + 1] * fy * fx)
        fields.append(f)
    return np.argmax(np.stack(fields), axis=0).astype(np.uint8)


def make_store(path: Path, n: int, seed: int = 1) -> None:
    """A zarr (y, x) uint8 class map of n x n in 512 chunks (cached)."""
    import zarr

    if (path / "zarr.json").exists():
        return
    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    arr = zarr.create_array(str(tmp), shape=(n, n), chunks=(CHUNK, CHUNK), dtype="uint8")
    for y0 in range(0, n, CHUNK):
        h = min(CHUNK, n - y0)
        for x0 in range(0, n, 8 * CHUNK):
            w = min(8 * CHUNK, n - x0)
            arr[y0 : y0 + h, x0 : x0 + w] = label_chunk(seed, (n, n), y0, x0, h, w)
    os.rename(tmp, path)


# ------------------------------------------------------------------ database
def start_db(workdir: Path) -> str:
    from mis.catalogue import migrate
    from mis.catalogue.postgres import EmbeddedPostgres
    from mis.vocab.load import load_vocabularies

    state = EmbeddedPostgres(home=workdir / "pg").start()
    url = state.url()
    migrate.upgrade(url)
    load_vocabularies(url=url, progress=False)
    return url


def make_image(url: str, n: int, name: str) -> int:
    """Deposit, hole (curved survey), plug and an image row of n x n (chunks 512)."""
    import psycopg

    from mis.ingest.writer import libpq_url

    with psycopg.connect(libpq_url(url)) as conn:
        row = conn.execute("SELECT id FROM image WHERE name = %s", (name,)).fetchone()
        if row:
            return int(row[0])
        dep = conn.execute("INSERT INTO deposit (name, footprint) VALUES ('bench', "
                           "ST_GeomFromEWKT('SRID=4326;POINT (-70.05 -22.05)')) ON CONFLICT (name) DO UPDATE SET "
                           "name = EXCLUDED.name RETURNING id").fetchone()[0]
        hole = conn.execute(
            "INSERT INTO drillcore (deposit_id, name, collar, collar_x, collar_y, collar_epsg, elevation_m, length_m, "
            "dip, azimuth, trace) VALUES (%s, 'B-1', ST_GeomFromEWKT('SRID=4326;POINT Z (-70.05 -22.05 2500)'), "
            "-70.05, -22.05, 4326, 2500, 500, -60, 90, "
            "ST_GeomFromEWKT('SRID=4326;LINESTRING Z (-70.05 -22.05 2500, -70.047 -22.05 2040)')) "
            "ON CONFLICT (deposit_id, name) DO UPDATE SET name = EXCLUDED.name RETURNING id", (dep,)).fetchone()[0]
        conn.execute("INSERT INTO survey_station (drillcore_id, depth_m, dip, azimuth) VALUES (%s, 0, -60, 90), "
                     "(%s, 250, -70, 100), (%s, 500, -75, 110) ON CONFLICT DO NOTHING", (hole, hole, hole))
        st = conn.execute("SELECT uri FROM concept WHERE scheme = 'sample-type' LIMIT 1").fetchone()[0]
        plug = conn.execute(
            "INSERT INTO plug (drillcore_id, name, from_m, to_m, sample_type_uri, position) VALUES "
            "(%s, %s, 120, 120.3, %s, ST_GeomFromEWKT('SRID=4326;POINT Z (-70.049 -22.05 2396)')) RETURNING id",
            (hole, name, st)).fetchone()[0]
        modality = conn.execute("SELECT uri FROM concept WHERE scheme = 'image-modality' LIMIT 1").fetchone()[0]
        image = conn.execute(
            "INSERT INTO image (plug_id, name, store_uri, array_paths, shape, chunks, dtype, pixel_size_um, "
            "modality_uri, checksum_sha256) VALUES (%s, %s, '/bench', '{0}', %s, %s, 'uint8', 1.0, %s, %s) "
            "RETURNING id", (plug, name, [3, n, n], [3, CHUNK, CHUNK], modality, f"bench-{name}")).fetchone()[0]
        conn.commit()
        return int(image)


# ------------------------------------------------------------------ [1] writer
def grain_table(n_grains: int, seed: int = 0):
    """A realistic grain table: real grains of a synthetic 2048^2 map, repeated with
    offsets to reach n_grains."""
    import shapely

    from mis.grains.metrics import measure_grains

    side = 2048 if n_grains > 20_000 else 512  # (a small one for --quick)
    base = measure_grains(label_chunk(seed, (side, side), 0, 0, side, side), (CHUNK, CHUNK), 1.0, ignore=[0])
    reps = -(-n_grains // len(base))
    idx = np.arange(n_grains) % len(base)
    rep = np.arange(n_grains) // len(base)
    label = base.label[idx] + rep * side * side
    outline = np.concatenate([shapely.transform(base.outline, lambda xy, o=r * float(side): xy + (o, 0))
                              for r in range(reps)])[:n_grains]
    return dataclasses.replace(base.take(idx), label=label, outline=outline,
                               mean_probability=np.random.default_rng(seed).uniform(0.5, 1.0, n_grains))


def roxel_records(n_roxels: int, n_grains: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Roxel records as the pipeline emits them and, per roxel, the index of its dominant
    grain (-1: none): a core scan (depth along x) of side sqrt(n) roxels, written chunk by
    chunk (32 x 32 roxels of 16 px per 512 px chunk), dominant grains among those the
    same chunk completed (grain ids grow with the chunk order)."""
    from mis.grains.roxels import roxel_dtype

    rng = np.random.default_rng(seed)
    k = len(CLASSES)
    side = int(np.ceil(np.sqrt(n_roxels)))
    per = CHUNK // 16
    n_cx = -(-side // per)
    # roxel (row, col) in chunk order: chunk-major, then row-major inside a chunk
    i = np.arange(n_cx * n_cx * per * per)
    chunk, inner = np.divmod(i, per * per)
    cy, cx = np.divmod(chunk, n_cx)
    ry, rx = np.divmod(inner, per)
    row, col = cy * per + ry, cx * per + rx
    keep = (row < side) & (col < side)
    row, col, chunk = row[keep][:n_roxels], col[keep][:n_roxels], chunk[keep][:n_roxels]
    rec = np.zeros(row.size, dtype=roxel_dtype(k))
    rec["row"], rec["col"] = row, col
    comp = rng.dirichlet(np.ones(k) * 0.5, row.size).astype(np.float32)
    rec["composition"] = comp
    rec["dominant_class"] = np.argmax(comp, axis=1)
    rec["dominant_fraction"] = comp.max(axis=1)
    depth = 120.0 + col * (30.0 / side)  # 16 px roxels of a 30 m scan
    rec["depth_m"] = depth
    rec["lon"] = -70.049 + depth * 1e-6
    rec["lat"] = -22.05 - depth * 1e-7
    rec["z"] = 2500.0 - depth * 0.87
    n_chunks = int(chunk.max()) + 1
    per_chunk = n_grains / n_chunks
    grain = np.minimum((chunk * per_chunk + rng.uniform(0, per_chunk, row.size)).astype(np.int64), n_grains - 1)
    grain[rng.random(row.size) < 0.15] = -1  # roxels of background only
    return rec, grain


def truncate(url: str) -> None:
    import psycopg

    from mis.catalogue import partitions
    from mis.ingest.writer import libpq_url

    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        runs = [r[0] for r in conn.execute("SELECT id FROM segmentation_run")]
        partitions.drop(conn.execute, runs)
        conn.execute("TRUNCATE rock_constituent, rock, run_class, segmentation_run")
        conn.execute("CHECKPOINT")


def bench_writer(url: str, image: int, args, workdir: Path) -> dict:
    import psycopg
    from geoalchemy2.shape import from_shape
    from shapely.geometry import Point
    from sqlalchemy import create_engine, insert
    from sqlalchemy.orm import Session

    from mis.catalogue import models as m
    from mis.catalogue import partitions
    from mis.catalogue.session import transaction
    from mis.grains.rock import load_classes
    from mis.ingest.writer import (
        COPY_SIGNATURE,
        COPY_TRAILER,
        GRAIN_COLUMNS,
        ROXEL_COLUMNS,
        RunWriter,
        encode_grains,
        encode_roxels,
        libpq_url,
    )

    t0 = time.perf_counter()
    table = grain_table(args.grains)
    rec, grain_of = roxel_records(args.roxels, args.grains)
    with transaction(url) as s:
        vocab = "https://w3id.org/mis/vocab"
        classes = load_classes(s, [f"{vocab}/{'segmentation-class' if c == 'background' else 'mineral'}/{c}"
                                   for c in CLASSES])
    concept = np.array([c.concept_id for c in classes])
    keys = [f"c/0/{iy}/{ix}" for iy in range(64) for ix in range(64)]
    print(f"  data: {len(table):,} grains ({np.mean([len(o.exterior.coords) for o in table.outline[:2000]]):.0f} "
          f"vertices on average), {rec.shape[0]:,} roxels, {len(CLASSES)} classes; prepared in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    n_rows = len(table) + rec.shape[0]
    files = workdir / "copyfiles"
    files.mkdir(exist_ok=True)
    os.chmod(workdir, 0o755)
    os.chmod(files, 0o755)

    def new_run(conn) -> int:
        return conn.execute(
            "INSERT INTO segmentation_run (image_id, name, software_version, status) VALUES (%s, 'bench', 'bench', "
            "'complete') RETURNING id", (image,)).fetchone()[0]

    def reserve(conn, n):
        return np.array([r[0] for r in conn.execute(
            "SELECT nextval(pg_get_serial_sequence('grain', 'id')) FROM generate_series(1, %s)", (n,))], dtype=np.int64)

    def raw(server_side: bool, bare: bool = False) -> float:
        truncate(url)
        with psycopg.connect(libpq_url(url)) as conn:
            if bare:
                conn.execute(partitions.MANUAL)
            run = new_run(conn)
            ids = reserve(conn, len(table))
            conn.commit()
            rx = rec.copy()
            rx["dominant_grain_id"] = np.where(grain_of >= 0, ids[np.maximum(grain_of, 0)], -1)
            gfile, rfile = files / "grain.copy", files / "roxel.copy"
            gfile.write_bytes(COPY_SIGNATURE + encode_grains(table, ids, run, concept, keys) + COPY_TRAILER)
            with open(rfile, "wb") as fh:
                fh.write(COPY_SIGNATURE)
                for i in range(0, rx.shape[0], 65536):
                    fh.write(encode_roxels(rx[i : i + 65536], run, concept))
                fh.write(COPY_TRAILER)
            os.chmod(gfile, 0o644)
            os.chmod(rfile, 0o644)
            t = time.perf_counter()
            for tbl, cols, path in (("grain", GRAIN_COLUMNS, gfile), ("roxel", ROXEL_COLUMNS, rfile)):
                if bare:  # what RunWriter does (see mis.ingest.writer)
                    tbl = partitions.create_bare(conn.cursor(), tbl, run)
                if server_side:
                    conn.execute(f"COPY {tbl} ({', '.join(cols)}) FROM '{path}' (FORMAT BINARY)")
                else:
                    with conn.cursor().copy(f"COPY {tbl} ({', '.join(cols)}) FROM STDIN (FORMAT BINARY)") as cp:
                        with open(path, "rb") as fh:
                            while block := fh.read(1 << 20):
                                cp.write(block)
            if bare:
                partitions.attach(conn.cursor(), run)
            conn.commit()
            return time.perf_counter() - t

    def writer(ng: int | None = None, nr: int | None = None) -> float:
        """RunWriter on all rows, or on the first ``ng`` grains and ``nr`` roxels."""
        tab = table if ng is None else table.take(np.arange(ng))
        rx_all = rec if nr is None else rec[:nr]
        g_all = grain_of if nr is None else np.where(grain_of[:nr] < len(tab), grain_of[:nr], -1)
        # grains arrive in small batches, as chunks complete them (sliced before the clock)
        batches = [tab.take(np.arange(i, min(i + 2000, len(tab)))) for i in range(0, len(tab), 2000)]
        truncate(url)
        t = time.perf_counter()
        with RunWriter(url, image_id=image, name="bench", classes=classes, chunk_keys=keys) as w:
            ids_all = []
            for part in batches:
                ids = w.reserve_grain_ids(len(part))
                w.write_grains(part, ids)
                ids_all.append(ids)
            ids = np.concatenate(ids_all)
            for i in range(0, rx_all.shape[0], 16384):  # roxels too (a 512 chunk has 1024 of 16 px)
                part = rx_all[i : i + 16384].copy()
                g = g_all[i : i + 16384]
                part["dominant_grain_id"] = np.where(g >= 0, ids[np.maximum(g, 0)], -1)
                w.write_roxels(part)
            w.commit()
        return time.perf_counter() - t

    ng, nr = min(args.orm_grains or len(table), len(table)), min(args.orm_roxels or rec.shape[0], rec.shape[0])

    def orm() -> tuple[float, int]:
        """The same rows through the ORM, in batches of 20,000 dicts, one transaction."""
        truncate(url)
        engine = create_engine(url)
        with Session(engine) as s:
            run = s.execute(insert(m.SegmentationRun).values(image_id=image, name="bench", software_version="b",
                                                            status="complete").returning(m.SegmentationRun.id)).scalar()
            s.commit()
        t = time.perf_counter()
        batch = 20_000
        with Session(engine) as s:
            ids = reserve(s.connection().connection.driver_connection, ng)
            for lo in range(0, ng, batch):
                grains = []
                for i in range(lo, min(lo + batch, ng)):
                    tiles = table.tiles[i].tolist()
                    grains.append(dict(
                        id=int(ids[i]), run_id=run, label=int(table.label[i]),
                        mineral_id=int(concept[table.class_index[i]]),
                        outline=from_shape(table.outline[i], srid=0),
                        centroid_x_um=float(table.centroid_x_um[i]), centroid_y_um=float(table.centroid_y_um[i]),
                        area_um2=float(table.area_um2[i]), perimeter_um=float(table.perimeter_um[i]),
                        ecd_um=float(table.ecd_um[i]), major_axis_um=float(table.major_axis_um[i]),
                        minor_axis_um=float(table.minor_axis_um[i]), orientation_deg=float(table.orientation_deg[i]),
                        aspect_ratio=float(table.aspect_ratio[i]), solidity=float(table.solidity[i]),
                        form_factor=float(table.form_factor[i]), roundness=float(table.roundness[i]),
                        feret_max_um=float(table.feret_max_um[i]), feret_min_um=float(table.feret_min_um[i]),
                        mean_probability=float(table.mean_probability[i]), touches_border=bool(table.touches_border[i]),
                        chunk_keys=[keys[x] for x in tiles]))
                s.execute(insert(m.Grain), grains)
            for lo in range(0, nr, batch):
                roxels = []
                for i in range(lo, min(lo + batch, nr)):
                    r = rec[i]
                    g = int(grain_of[i]) if 0 <= grain_of[i] < ng else -1
                    roxels.append(dict(
                        run_id=run, row=int(r["row"]), col=int(r["col"]),
                        composition=[float(v) for v in r["composition"]],
                        dominant_class_id=int(concept[r["dominant_class"]]),
                        dominant_fraction=float(r["dominant_fraction"]),
                        dominant_grain_id=int(ids[g]) if g >= 0 else None, depth_m=float(r["depth_m"]),
                        position=from_shape(Point(float(r["lon"]), float(r["lat"]), float(r["z"])), srid=4326)))
                s.execute(insert(m.Roxel), roxels)
            s.commit()
        engine.dispose()
        return time.perf_counter() - t, ng + nr

    runs: dict[str, list[float]] = {"raw_server": [], "raw_stdin": [], "raw_bare": [], "writer": [], "orm": [],
                                    "writer_small": []}
    orm_rows = 0
    server_ok = True
    for rep in range(args.reps):
        order = ["writer", "raw_server", "raw_stdin", "raw_bare"] if rep % 2 == 0 else \
            ["raw_server", "raw_bare", "raw_stdin", "writer"]
        for what in order:
            if what == "raw_server" and server_ok:
                try:
                    runs[what].append(raw(True))
                except psycopg.Error as exc:
                    print(f"  server-side COPY FROM file refused ({type(exc).__name__}: {exc}); using STDIN only")
                    server_ok = False
            elif what == "raw_stdin":
                runs[what].append(raw(False))
            elif what == "raw_bare" and server_ok:
                runs[what].append(raw(True, bare=True))
            elif what == "writer":
                runs[what].append(writer())
            print(f"  rep {rep + 1}: {what:<10} {runs[what][-1] if runs[what] else float('nan'):7.2f} s", flush=True)
    secs, orm_rows = orm()  # once: minutes for the whole run
    runs["orm"].append(secs)
    print(f"  orm        {secs:7.2f} s for {orm_rows:,} rows", flush=True)
    if orm_rows < n_rows:  # a subset: the writer on the same rows too
        for _ in range(args.reps):
            runs["writer_small"].append(writer(ng, nr))
        print(f"  writer     {min(runs['writer_small']):7.2f} s for the same {ng + nr:,} rows", flush=True)
    truncate(url)
    best = {k: min(v) for k, v in runs.items() if v}
    rate = {k: (orm_rows if k in ("orm", "writer_small") else n_rows) / v for k, v in best.items()}
    limit = "raw_server" if "raw_server" in rate else "raw_stdin"
    return {"grains": len(table), "roxels": int(rec.shape[0]), "rows": n_rows, "orm_rows": orm_rows,
            "seconds": runs, "best_s": best, "rows_per_s": rate, "limit": limit,
            "ratio_vs_raw": rate["writer"] / rate[limit], "ratio_vs_raw_stdin": rate["writer"] / rate["raw_stdin"],
            "ratio_vs_raw_bare": rate["writer"] / rate["raw_bare"] if "raw_bare" in rate else None,
            "ratio_vs_orm": rate["writer"] / rate["orm"],
            "ratio_vs_orm_same_rows": rate.get("writer_small", rate["writer"]) / rate["orm"]}


# ------------------------------------------------------------------ [2] + [3] ingestion in a subprocess
WORKER = textwrap.dedent("""
    import json, resource, sys, time
    t0 = time.perf_counter()
    from mis.ingest.run import ingest, open_array, stored_prediction
    def hwm():  # VmHWM: ru_maxrss would include the parent's RSS at fork (it survives execve)
        return int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]) / 1024
    base = hwm()
    url, image, store, classes = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
    if store.startswith("run:"):  # a stored prediction run, as `mis ingest` reads it: run:STORE::RUN
        labels, prob, _, _ = stored_prediction(*store[len("run:"):].rsplit("::", 1))
    else:
        labels, prob = open_array(store), (open_array(sys.argv[5]) if len(sys.argv) > 5 else None)
    s = ingest(image, labels, prob, classes, url=url, progress=False, name="rss")
    peak = hwm()
    print(json.dumps({"peak_MiB": peak, "imports_MiB": base,
                      "ru_maxrss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "grains": s.grains,
                      "roxels": s.roxels, "seconds": s.seconds, "rows_per_s": s.rows_per_second,
                      "wall_s": time.perf_counter() - t0}))
""")


def ingest_subprocess(url: str, image: int, store: Path | str, probability: str | None = None) -> dict:
    extra = [probability] if probability else []
    out = subprocess.run([sys.executable, "-c", WORKER, url, str(image), str(store), json.dumps(CLASSES), *extra],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ [4] prediction vs grains
COLOURS = np.array([[20, 20, 24], [112, 112, 118], [170, 120, 110], [150, 160, 175], [196, 176, 70],
                    [214, 204, 150]], dtype=np.float32)


def bench_predict(url: str, n: int, workdir: Path) -> dict:
    """Predict an n x n RGB section with ``mis predict``, then ingest the prediction; see [4]."""
    import tifffile
    import torch

    from mis.imagery.omezarr import import_image
    from mis.segment.classifiers import RandomForestPixelClassifier, training_data
    from mis.segment.config import FeatureConfig
    from mis.segment.filters import compute_features
    from mis.segment.predict import predict

    rng = np.random.default_rng(7)
    truth = np.empty((n, n), np.uint8)
    rgb = np.empty((n, n, 3), np.uint8)
    for y0 in range(0, n, 1024):  # in strips: bounded memory
        h = min(1024, n - y0)
        truth[y0 : y0 + h] = label_chunk(3, (n, n), y0, 0, h, n)
        strip = COLOURS[truth[y0 : y0 + h]] + rng.normal(0.0, 14.0, (h, n, 3)).astype(np.float32)
        rgb[y0 : y0 + h] = np.clip(strip, 0, 255).astype(np.uint8)
    folder = workdir / f"predict_{n}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    tif = folder / "section.tif"
    tifffile.imwrite(tif, rgb, photometric="rgb")
    del rgb
    store = import_image(tif, folder / "section.ome.zarr", pixel_size_um=1.0, progress=False).store_uri
    tif.unlink()
    # train on 0.2 % of the pixels of a corner (what a user's scribbles give)
    side = min(n, 1024)
    from mis.imagery.omezarr import open_level

    crop = np.asarray(open_level(store, 0)[:, :side, :side])
    scribbles = np.where(rng.random((side, side)) < 0.002, truth[:side, :side].astype(np.int64) + 1, 0)
    cfg = FeatureConfig.fast()
    feats, names = compute_features(crop, cfg)
    X, y = training_data(feats, torch.as_tensor(scribbles))
    clf = RandomForestPixelClassifier(CLASSES, cfg, names, n_estimators=8, max_depth=8, random_state=0).fit(X, y)
    model = folder / "rf8.pt"
    clf.save(model)
    del feats, X, y, crop, truth
    image = make_image(url, n, f"predict{n}")
    t = time.perf_counter()
    predict(store, model, "bench", progress=False)
    t_predict = time.perf_counter() - t
    run = ingest_subprocess(url, image, f"run:{store}::bench")
    grain_stage = run["seconds"]["total"] - run["seconds"]["write"]  # ingest() itself, not the interpreter
    shutil.rmtree(folder, ignore_errors=True)
    return {"size": n, "predict_s": t_predict, "ingest": run, "grain_stage_s": grain_stage,
            "ratio_grain_to_predict": grain_stage / t_predict}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("/var/tmp/mis-bench-ingest"))
    ap.add_argument("--grains", type=int, default=100_000)
    ap.add_argument("--roxels", type=int, default=1_000_000)
    ap.add_argument("--orm-grains", type=int, default=0, help="grains through the ORM (0: all)")
    ap.add_argument("--orm-roxels", type=int, default=0, help="roxels through the ORM (0: all)")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--rss", type=int, default=4096, help="side of the smaller image of [2] (0: skip)")
    ap.add_argument("--e2e", type=int, default=0, help="side of the end-to-end image of [3] (0: skip)")
    ap.add_argument("--predict", type=int, default=0, help="side of the RGB image of [4] (0: skip)")
    ap.add_argument("--skip-writer", action="store_true")
    ap.add_argument("--quick", action="store_true", help="every part on tiny data; writes no results file")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "ingest.txt")
    args = ap.parse_args()
    if args.quick:
        args.grains, args.roxels, args.reps, args.rss, args.predict = 2_000, 20_000, 1, 256, 512
        args.orm_grains, args.orm_roxels = 500, 5_000
        args.e2e = min(args.e2e, 1024)
        args.workdir = args.workdir.with_name(args.workdir.name + "-quick")
        args.out = None
    args.workdir.mkdir(parents=True, exist_ok=True)

    lines = [f"bench_ingest  {time.strftime('%Y-%m-%d %H:%M:%S')}", describe(), versions(np)]
    print("\n".join(lines), flush=True)
    url = start_db(args.workdir)
    results: list[dict] = []

    if not args.skip_writer:
        print(f"\n[1] writing {args.grains:,} grains + {args.roxels:,} roxels, best of {args.reps}", flush=True)
        image = make_image(url, 64 * CHUNK, "writer")
        r = bench_writer(url, image, args, args.workdir)
        results.append({"bench": "writer", **r})
        rate = r["rows_per_s"]
        block = [f"\n[1] one run of {r['grains']:,} grains + {r['roxels']:,} roxels ({r['rows']:,} rows), "
                 f"best of {args.reps}, fresh tables each time"]
        names = {"raw_server": "raw COPY FROM file (server reads it; the limit)",
                 "raw_stdin": "raw COPY FROM STDIN of the same file",
                 "raw_bare": "raw COPY FROM file into bare partitions + attach",
                 "writer": "RunWriter (encode + COPY + commit)",
                 "orm": f"SQLAlchemy ORM bulk insert ({r['orm_rows']:,} rows)",
                 "writer_small": f"RunWriter, the same {r['orm_rows']:,} rows as the ORM"}
        for k in ("raw_server", "raw_stdin", "raw_bare", "writer", "orm", "writer_small"):
            if k in rate:
                block.append(f"  {names[k]:<52} {r['best_s'][k]:8.2f} s {rate[k]:>12,.0f} rows/s")
        block.append(f"  writer / raw COPY ({r['limit']}) = {r['ratio_vs_raw']:.2f}   (target >= 0.7: "
                     f"{'PASS' if r['ratio_vs_raw'] >= 0.7 else 'FAIL'}); writer / COPY FROM STDIN = "
                     f"{r['ratio_vs_raw_stdin']:.2f}")
        if r["ratio_vs_raw_bare"] is not None:
            block.append(f"  writer / raw COPY into bare partitions + attach (the writer's own method, no Python) = "
                         f"{r['ratio_vs_raw_bare']:.2f}")
        block.append(f"  writer / ORM on the same {r['orm_rows']:,} rows = {r['ratio_vs_orm_same_rows']:.1f}   "
                     f"(target >= 20: {'PASS' if r['ratio_vs_orm_same_rows'] >= 20 else 'FAIL'})")
        block.append("  all runs (s): " + json.dumps({k: [round(x, 2) for x in v] for k, v in r["seconds"].items()}))
        print("\n".join(block), flush=True)
        lines += block

    if args.rss:
        block = [f"\n[2] peak RSS of ingest(), {args.rss}^2 vs {2 * args.rss}^2 (4x the pixels), 512 px chunks, "
                 "each in its own subprocess"]
        print(block[0], flush=True)
        rss = []
        for n in (args.rss, 2 * args.rss):
            store = args.workdir / f"labels_{n}.zarr"
            make_store(store, n)
            image = make_image(url, n, f"rss{n}")
            r = ingest_subprocess(url, image, store)
            rss.append(r)
            results.append({"bench": "rss", "size": n, **r})
            stages = ", ".join(f"{k} {v:.1f}" for k, v in r["seconds"].items())
            line = (f"  {n:>6} x {n:<6} {r['grains']:>10,} grains {r['roxels']:>9,} roxels  peak RSS "
                    f"{r['peak_MiB']:6.0f} MiB (after imports {r['imports_MiB']:.0f} MiB)  "
                    f"{r['wall_s']:6.1f} s  [{stages}]")
            print(line, flush=True)
            block.append(line)
        growth = rss[1]["peak_MiB"] / rss[0]["peak_MiB"] - 1
        block.append(f"  growth for 4x the pixels: {100 * growth:+.1f} %   (target < 25 %: "
                     f"{'PASS' if growth < 0.25 else 'FAIL'})")
        print(block[-1], flush=True)
        lines += block

    if args.e2e:
        n = args.e2e
        store = args.workdir / f"labels_{n}.zarr"
        t = time.perf_counter()
        make_store(store, n)
        gen = time.perf_counter() - t
        image = make_image(url, n, f"e2e{n}")
        r = ingest_subprocess(url, image, store)
        results.append({"bench": "e2e", "size": n, **r})
        block = [f"\n[3] end to end, {n} x {n} class map ({n * n / 1e6:.0f} Mpx, 512 px chunks) on CPU "
                 f"({os.cpu_count()} cores; label store generated in {gen:.0f} s, not counted)",
                 f"  {r['grains']:,} grains, {r['roxels']:,} roxels, wall {r['wall_s']:.0f} s, "
                 f"peak RSS {r['peak_MiB']:.0f} MiB",
                 "  time per stage (s; 'chunks (workers)' is the per-chunk work summed over the worker threads, "
                 "overlapping the main thread's merge/metrics/roxels/write): "
                 + ", ".join(f"{k} {v:.1f}" for k, v in r["seconds"].items())]
        print("\n".join(block), flush=True)
        lines += block

    if args.predict:
        n = args.predict
        print(f"\n[4] prediction stage vs grain stage, {n} x {n} RGB (512 px chunks)", flush=True)
        r = bench_predict(url, n, args.workdir)
        results.append({"bench": "predict", **r})
        ing = r["ingest"]
        block = [f"\n[4] prediction stage vs grain stage, {n} x {n} RGB image ({n * n / 1e6:.0f} Mpx, 512 px chunks), "
                 f"CPU ({os.cpu_count()} cores)",
                 f"  prediction (mis predict, RF 8 trees, fast features): {r['predict_s']:.1f} s",
                 f"  ingestion of that prediction (default grain rules): wall {ing['wall_s']:.1f} s, "
                 f"{ing['grains']:,} grains, {ing['roxels']:,} roxels; stages: "
                 + ", ".join(f"{k} {v:.1f}" for k, v in ing["seconds"].items()),
                 f"  grain stage (ingest() total less database writes) {r['grain_stage_s']:.1f} s = "
                 f"{r['ratio_grain_to_predict']:.2f} x the prediction stage   (target <= 1: "
                 f"{'PASS' if r['ratio_grain_to_predict'] <= 1 else 'FAIL'})"]
        print("\n".join(block), flush=True)
        lines += block

    lines.append("\njson: " + json.dumps(results, default=float))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
