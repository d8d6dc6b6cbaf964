"""Benchmark: IIIF tile latency (p50/p95) on a gigapixel pyramid vs reading the same
region straight from zarr.

    .venv/bin/python bench/bench_tiles.py                 # 40,000 x 40,000 RGB, 400 tiles
    .venv/bin/python bench/bench_tiles.py --size 8000 --tiles 100 --no-record   # quick

* Image: a synthetic thin section (flat-colour grains + noise) written as an uncompressed
  tiled (512) BigTIFF, imported with ``mis.imagery.omezarr.import_image`` into an
  OME-Zarr pyramid (cached in --workdir between runs; the TIFF is deleted after import
  unless --keep-source).
* Catalogue: an embedded PostgreSQL + PostGIS in a temporary directory (or
  ``MIS_DATABASE_URL``/--db), migrated, with one deposit/drillcore/plug/image row.
* Tiles: --tiles requests drawn at random: a pyramid level uniformly, then a tile of that
  level uniformly (edge tiles included), requested as a viewer does after reading
  ``info.json``: ``/iiif/3/{id}/{x},{y},{w},{h}/{ceil(w/s)},/0/default.jpg`` with s = 2^level.
* Measured per tile, in random order (same page-cache state for all):
    - ``read_region`` (the limit): the 512 x 512 window of that level, arrays opened once;
    - ``read_region + JPEG``: the same plus Pillow JPEG encoding (quality 90) -- the work
      any tile server has to do;
    - ``HTTP jpg`` / ``HTTP png``: the full route over real HTTP (uvicorn on 127.0.0.1,
      one keep-alive httpx client, sequential requests): parse, catalogue row (cached 5 s),
      level choice, read, encode, response;
    - ``ASGI jpg``: the same route in-process (httpx ASGITransport, no sockets).
  Ratios are each figure over the read_region figure of the same run (machines are noisy;
  compare ratios, not absolute times). The store is in the OS page cache (just written, or
  reused and read by the warm-up): this is the software path, not cold-disk latency. The
  server runs in a thread of this process (its listening socket is IPPROTO_TCP so that
  accepted connections get TCP_NODELAY, as with ``uvicorn --port``).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from machine import describe, versions

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TILE = 512


# ------------------------------------------------------------------ synthetic image


def texture(seed: int = 0, n: int = 2048) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    f = np.zeros((n, n), np.float32)
    for _ in range(6):
        fy, fx = rng.uniform(-0.03, 0.03, 2)
        f += np.sin(yy * fy + xx * fx + rng.uniform(0, 6.28))
    grains = np.floor((f - f.min()) / (f.max() - f.min() + 1e-6) * 9).astype(np.int64)
    palette = rng.integers(30, 230, (9, 3))
    img = palette[grains].astype(np.float32) + rng.normal(0, 3, (n, n, 3)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_tiff(path: Path, n: int) -> None:
    import tifffile

    tex = texture()
    rng = np.random.default_rng(1)

    def tiles():
        for _ty in range(0, n, TILE):
            for _tx in range(0, n, TILE):
                oy, ox = rng.integers(0, tex.shape[0] - TILE, 2)
                yield tex[oy : oy + TILE, ox : ox + TILE]

    tmp = path.with_suffix(".part")
    tifffile.imwrite(tmp, data=tiles(), shape=(n, n, 3), dtype="uint8", tile=(TILE, TILE),
                     photometric="rgb", bigtiff=True)
    tmp.rename(path)


def pyramid(workdir: Path, n: int, keep_source: bool, log):
    """The imported store (cached), and its ImportedImage-like description."""
    from mis.imagery.omezarr import import_image, read_metadata

    store = workdir / f"tiles_{n}.ome.zarr"
    info_file = workdir / f"tiles_{n}.json"
    if store.exists() and info_file.exists():
        log(f"  reusing {store}")
        return json.loads(info_file.read_text())
    src = workdir / f"tiles_{n}.tif"
    if not src.exists():
        t = time.perf_counter()
        make_tiff(src, n)
        log(f"  generated {src.name} ({src.stat().st_size / 1e9:.2f} GB) in "
            f"{time.perf_counter() - t:.0f} s")
    t = time.perf_counter()
    res = import_image(src, store, pixel_size_um=0.5, overwrite=True, progress=False)
    log(f"  imported into {store.name}: {res.levels} levels in {time.perf_counter() - t:.0f} s")
    desc = {
        "store_uri": res.store_uri, "array_paths": list(res.array_paths),
        "shape": list(res.shape), "chunks": list(res.chunks), "dtype": res.dtype,
        "pixel_size_um": res.pixel_size_um, "checksum_sha256": res.checksum_sha256,
        "level_shapes": [list(s) for s in res.level_shapes],
    }
    assert read_metadata(res.store_uri)["ome"]["version"]
    info_file.write_text(json.dumps(desc))
    if not keep_source:
        src.unlink()
    return desc


# ------------------------------------------------------------------ catalogue


def register_image(url: str, desc: dict) -> int:
    sys.path.insert(0, str(ROOT))
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from mis.catalogue import models as m
    from mis.catalogue.session import get_engine
    from tests import factories

    with Session(get_engine(url)) as s:
        dep = factories.deposit(s, name=f"Bench {os.getpid()} {time.time_ns()}")
        hole = factories.drillcore(s, dep)
        plug = factories.plug(s, hole)
        modality = s.execute(select(m.Concept.uri).where(m.Concept.scheme == "image-modality")
                             ).scalars().first() or factories.SAMPLE_TYPE
        img = m.Image(plug_id=plug.id, name="bench tiles", modality_uri=modality,
                      band_names=["R", "G", "B"],
                      **{k: desc[k] for k in ("store_uri", "array_paths", "shape", "chunks",
                                              "dtype", "pixel_size_um", "checksum_sha256")})
        s.add(img)
        s.commit()
        return img.id


# ------------------------------------------------------------------ measurement


def sample_tiles(level_shapes: list[list[int]], n: int, seed: int) -> list[tuple[int, int, int]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.randrange(len(level_shapes))
        _, lh, lw = level_shapes[k]
        out.append((k, rng.randrange(-(-lh // TILE)), rng.randrange(-(-lw // TILE))))
    return out


def tile_url(image_id: int, k: int, ty: int, tx: int, W: int, H: int, fmt: str) -> str:
    f = 1 << k
    x, y = tx * TILE * f, ty * TILE * f
    w, h = min(TILE * f, W - x), min(TILE * f, H - y)
    return f"/iiif/3/{image_id}/{x},{y},{w},{h}/{-(-w // f)},/0/default.{fmt}"


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))


def serve(app):
    import socket

    import uvicorn

    # proto IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on accepted sockets of a
    # TCP-proto listener (else Nagle + delayed ACK add ~40 ms to every keep-alive request)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                           access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}"


def machine_info() -> list[str]:
    import PIL
    import starlette
    import uvicorn
    import zarr

    return [describe(), versions(np, zarr, PIL, starlette, uvicorn)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=40_000, help="image side in pixels")
    ap.add_argument("--tiles", type=int, default=400, help="random tiles to time")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--workdir", type=Path,
                    default=Path(tempfile.gettempdir()) / "mis-bench-tiles")
    ap.add_argument("--keep-source", action="store_true")
    ap.add_argument("--clean", action="store_true", help="delete the store afterwards")
    ap.add_argument("--db", help="catalogue URL (default: MIS_DATABASE_URL or a temporary "
                                 "embedded PostgreSQL)")
    ap.add_argument("--record", type=Path, default=HERE / "results" / "tiles.txt")
    ap.add_argument("--no-record", action="store_true")
    ap.add_argument("--quick", action="store_true",
                    help="a 4096^2 image, 40 tiles, nothing recorded: the whole path in about a minute")
    args = ap.parse_args()
    if args.quick:
        args.size, args.tiles, args.no_record = 4096, 40, True
        args.workdir = args.workdir.with_name(args.workdir.name + "-quick")
    args.workdir.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []

    def log(s: str = "") -> None:
        print(s, flush=True)
        lines.append(s)

    log(f"bench_tiles  {time.strftime('%Y-%m-%d %H:%M:%S')}")
    for s in machine_info():
        log(s)
    log(f"\n[setup] {args.size} x {args.size} RGB uint8 pyramid")
    desc = pyramid(args.workdir, args.size, args.keep_source, log)

    from mis.catalogue.engines import dispose_engines

    cluster = None
    tmp_home = None
    url = args.db or os.environ.get("MIS_DATABASE_URL")
    try:
        if not url:
            from mis.catalogue import migrate
            from mis.catalogue.postgres import EmbeddedPostgres

            tmp_home = Path(tempfile.mkdtemp(prefix="mis-bench-tiles-db-"))
            cluster = EmbeddedPostgres(home=tmp_home, settings={"fsync": "off"})
            url = cluster.start().url()
            migrate.upgrade(url)
            try:
                from mis.vocab.load import load_vocabularies

                load_vocabularies(url=url, schemes=["image-modality"], progress=False)
            except (OSError, ValueError) as exc:  # no ontology / unknown scheme: a modality concept is optional
                log(f"  (vocabulary not loaded: {exc}; using a test concept)")
        image_id = register_image(url, desc)
        run(args, desc, url, image_id, log)
    finally:
        dispose_engines()
        if cluster is not None:
            cluster.destroy()
        if tmp_home is not None:
            shutil.rmtree(tmp_home, ignore_errors=True)
        if args.clean:
            shutil.rmtree(args.workdir, ignore_errors=True)
    if not args.no_record:
        args.record.parent.mkdir(parents=True, exist_ok=True)
        args.record.write_text("\n".join(lines) + "\n")
        print(f"recorded in {args.record}")
    return 0


def run(args, desc: dict, url: str, image_id: int, log) -> None:
    import httpx
    from PIL import Image

    from mis.imagery.iiif_routes import create_iiif_app
    from mis.imagery.omezarr import open_level, read_region

    _, H, W = desc["shape"]
    shapes = desc["level_shapes"]
    n_levels = len(shapes)
    arrays = [open_level(desc["store_uri"], k) for k in range(n_levels)]
    tiles = sample_tiles(shapes, args.tiles, args.seed)
    app = create_iiif_app(url)
    server, thread, base = serve(app)
    http = httpx.Client(base_url=base, timeout=60)
    asgi_loop = asyncio.new_event_loop()
    asgi = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://asgi")

    def read(k, ty, tx):
        return read_region(arrays[k], k, ty * TILE, tx * TILE, TILE, TILE)

    def read_jpeg(k, ty, tx):
        a = read(k, ty, tx)
        buf = io.BytesIO()
        Image.merge("RGB", [Image.fromarray(p) for p in a]).save(buf, "JPEG", quality=90)
        return buf.getvalue()

    def get(fmt):
        def fn(k, ty, tx):
            r = http.get(tile_url(image_id, k, ty, tx, W, H, fmt))
            if r.status_code != 200:
                raise RuntimeError(f"{r.status_code} {r.text}")
            return r.content
        return fn

    def get_asgi(k, ty, tx):
        r = asgi_loop.run_until_complete(asgi.get(tile_url(image_id, k, ty, tx, W, H, "jpg")))
        if r.status_code != 200:
            raise RuntimeError(f"{r.status_code} {r.text}")
        return r.content

    methods = {
        "read_region (limit)": read,
        "read_region + JPEG": read_jpeg,
        "HTTP jpg (uvicorn)": get("jpg"),
        "HTTP png (uvicorn)": get("png"),
        "ASGI jpg (in-process)": get_asgi,
    }
    try:
        # correctness spot check: a png tile through HTTP is the zarr window, bit for bit
        for k, ty, tx in tiles[:5]:
            png = get("png")(k, ty, tx)
            got = np.moveaxis(np.asarray(Image.open(io.BytesIO(png))), -1, 0)
            if not np.array_equal(got, read(k, ty, tx)):
                raise AssertionError(f"tile {(k, ty, tx)} differs from read_region")
        for k, ty, tx in tiles[:10]:  # warm-up (imports, connection, catalogue row)
            for fn in methods.values():
                fn(k, ty, tx)
        times: dict[str, list[float]] = {name: [] for name in methods}
        per_level: dict[int, dict[str, list[float]]] = {}
        order = list(methods)
        rng = random.Random(args.seed + 1)
        t_all = time.perf_counter()
        for k, ty, tx in tiles:
            rng.shuffle(order)
            for name in order:
                t0 = time.perf_counter()
                methods[name](k, ty, tx)
                dt = time.perf_counter() - t0
                times[name].append(dt)
                per_level.setdefault(k, {}).setdefault(name, []).append(dt)
        elapsed = time.perf_counter() - t_all
    finally:
        http.close()
        asgi_loop.run_until_complete(asgi.aclose())
        asgi_loop.close()
        server.should_exit = True
        thread.join(10)

    log(f"\n[tiles] {args.tiles} random 512-px tiles over {n_levels} levels "
        f"(level drawn uniformly, then a tile of it), each method once per tile in random "
        f"order; {elapsed:.0f} s")
    base_name = "read_region (limit)"
    base50, base95 = pct(times[base_name], 50), pct(times[base_name], 95)
    log(f"  {'method':<24}{'p50 ms':>9}{'p95 ms':>9}{'mean ms':>9}   ratio p50 / p95 vs limit")
    summary = {}
    for name in methods:
        v = times[name]
        p50, p95 = pct(v, 50), pct(v, 95)
        summary[name] = {"p50_ms": p50, "p95_ms": p95, "mean_ms": statistics.mean(v) * 1000}
        log(f"  {name:<24}{p50:9.2f}{p95:9.2f}{statistics.mean(v) * 1000:9.2f}"
            f"   {p50 / base50:5.2f} / {p95 / base95:5.2f}")
    log("\n  per level, p50 ms (read_region | HTTP jpg | ratio):")
    for k in sorted(per_level):
        a = pct(per_level[k][base_name], 50)
        b = pct(per_level[k]["HTTP jpg (uvicorn)"], 50)
        log(f"    level {k} (1/{1 << k}, {shapes[k][1]} x {shapes[k][2]} px, "
            f"n={len(per_level[k][base_name])}): {a:6.2f} | {b:6.2f} | {b / a:4.2f}")
    jpg = summary["HTTP jpg (uvicorn)"]
    log(f"\n  ratio HTTP jpg / read_region: p50 {jpg['p50_ms'] / base50:.2f}, "
        f"p95 {jpg['p95_ms'] / base95:.2f}")
    log("json: " + json.dumps({"size": args.size, "levels": n_levels, "tiles": args.tiles,
                               "results": summary}))


if __name__ == "__main__":
    sys.exit(main())
