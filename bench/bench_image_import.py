"""Benchmark: OME-Zarr import throughput vs reading the same TIFF with tifffile alone,
and peak memory of a 40,000 x 40,000 RGB import.

    .venv/bin/python bench/bench_image_import.py            # 20k ratio + 40k peak RSS
    .venv/bin/python bench/bench_image_import.py --size 8000 --big 0   # quick

* Sources are tiled (512x512) RGB uint8 TIFFs of a synthetic "thin section" (mineral
  grains of flat colour + Gaussian noise sigma 3, i.e. compressible like real images),
  written tile by tile from a generator and cached in --workdir between runs.
* Baseline ("the limit"): ``tifffile.imread`` of the whole file (multi-threaded decode,
  no writing). Import = ``mis.imagery.omezarr.import_image`` (decode, Blosc-zstd encode,
  write level 0, build and write the pyramid, SHA-256 of the source). Both are timed in
  the same process, alternating, best of --reps; MB = uncompressed pixel bytes.
  The machine is shared and noisy: compare the ratios, not absolute times.
* Peak RSS: the 40k import runs in a subprocess and reports its own
  ``resource.getrusage(RUSAGE_SELF).ru_maxrss``.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
from machine import describe, versions

TILE = 512
HERE = Path(__file__).resolve().parent


# ------------------------------------------------------------------ synthetic source


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


def make_tiff(path: Path, n: int, compression: str | None) -> None:
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
                     photometric="rgb", compression=compression, bigtiff=True)
    tmp.rename(path)


def source(workdir: Path, n: int, compression: str | None, log) -> Path:
    path = workdir / f"synthetic_{n}_{compression or 'raw'}.tif"
    if not path.exists():
        t = time.perf_counter()
        make_tiff(path, n, compression)
        log(f"  generated {path.name} ({path.stat().st_size / 1e9:.2f} GB) in "
            f"{time.perf_counter() - t:.0f} s")
    return path


# ------------------------------------------------------------------ measurements


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def time_it(fn) -> tuple[float, float]:
    c0, t0 = cpu_s(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, cpu_s() - c0


def bench_ratio(src: Path, workdir: Path, reps: int, log) -> dict:
    import tifffile

    from mis.imagery.omezarr import import_image

    dest = workdir / "bench_out.ome.zarr"
    n_bytes = 0
    reads, imports = [], []
    for _ in range(reps):
        shutil.rmtree(dest, ignore_errors=True)

        def read():
            nonlocal n_bytes
            a = tifffile.imread(src)
            n_bytes = a.nbytes
            del a

        reads.append(time_it(read))
        imports.append(time_it(lambda: import_image(src, dest, pixel_size_um=1.0,
                                                    progress=False)))
    zarr_bytes = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
    shutil.rmtree(dest, ignore_errors=True)
    (rt, rc), (it, ic) = min(reads), min(imports)
    res = {
        "source": src.name, "pixel_MB": n_bytes / 1e6, "file_MB": src.stat().st_size / 1e6,
        "read_s": rt, "read_cpu_s": rc, "read_MBps": n_bytes / 1e6 / rt,
        "import_s": it, "import_cpu_s": ic, "import_MBps": n_bytes / 1e6 / it,
        "ratio": rt / it, "store_MB": zarr_bytes / 1e6,
    }
    log(f"  {src.name}: {res['pixel_MB']:.0f} MB of pixels, file {res['file_MB']:.0f} MB, "
        f"store {res['store_MB']:.0f} MB (all levels)")
    log(f"    tifffile.imread (limit)  {rt:7.2f} s  {res['read_MBps']:7.0f} MB/s  "
        f"cpu {rc:6.1f} s")
    log(f"    import_image             {it:7.2f} s  {res['import_MBps']:7.0f} MB/s  "
        f"cpu {ic:6.1f} s")
    log(f"    ratio import/read throughput = {res['ratio']:.2f}   "
        f"(all runs read {[round(r[0], 2) for r in reads]} s, "
        f"import {[round(r[0], 2) for r in imports]} s)")
    return res


_CHILD = textwrap.dedent("""
    import json, re, resource, sys, time
    from pathlib import Path
    from mis.imagery.omezarr import import_image
    t = time.perf_counter()
    if sys.argv[3] == "import":
        r = import_image(Path(sys.argv[1]), sys.argv[2], pixel_size_um=1.0, progress=False)
        levels = r.levels
    else:
        levels = 0
    hwm = re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text())
    print(json.dumps({"maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "vmhwm_kib": int(hwm.group(1)) if hwm else None,
                      "seconds": time.perf_counter() - t, "levels": levels}))
""")

# Linux carries the parent's RSS high-water mark into ru_maxrss of a process it spawns
# (vfork + exec), so a big parent (this script, after tifffile.imread) would inflate the
# child's figure. A small launcher in between gives a clean figure, read both ways: the
# worker's RUSAGE_SELF and the launcher's RUSAGE_CHILDREN (VmHWM is reported as a check).
_LAUNCHER = textwrap.dedent("""
    import json, resource, subprocess, sys
    out = subprocess.run(sys.argv[1:], check=True, capture_output=True, text=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["children_maxrss_kib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps(res))
""")


def bench_peak_rss(src: Path, workdir: Path, n: int, log) -> dict:
    dest = workdir / "bench_big.ome.zarr"
    shutil.rmtree(dest, ignore_errors=True)

    def child(mode: str) -> dict:
        out = subprocess.run([sys.executable, "-c", _LAUNCHER, sys.executable, "-c", _CHILD,
                              str(src), str(dest), mode],
                             check=True, capture_output=True, text=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    base = child("baseline")
    run = child("import")
    shutil.rmtree(dest, ignore_errors=True)
    pix = n * n * 3
    res = {"size": n, "pixel_GB": pix / 1e9, "baseline_MiB": base["maxrss_kib"] / 1024,
           "peak_MiB": run["maxrss_kib"] / 1024,
           "children_peak_MiB": run["children_maxrss_kib"] / 1024,
           "vmhwm_MiB": (run["vmhwm_kib"] or 0) / 1024, "seconds": run["seconds"],
           "MBps": pix / 1e6 / run["seconds"], "levels": run["levels"]}
    log(f"  {n} x {n} RGB ({res['pixel_GB']:.1f} GB of pixels, {res['levels']} levels): "
        f"peak RSS {res['peak_MiB']:.0f} MiB (interpreter + imports alone "
        f"{res['baseline_MiB']:.0f} MiB), {res['seconds']:.0f} s, {res['MBps']:.0f} MB/s")
    log(f"    ru_maxrss: worker RUSAGE_SELF {res['peak_MiB']:.0f} MiB, launcher "
        f"RUSAGE_CHILDREN {res['children_peak_MiB']:.0f} MiB; /proc VmHWM "
        f"{res['vmhwm_MiB']:.0f} MiB")
    log(f"    target < 2048 MiB: {'PASS' if res['peak_MiB'] < 2048 else 'FAIL'}")
    return res


def machine_info() -> list[str]:
    import imagecodecs
    import numcodecs
    import tifffile
    import zarr

    return [describe(), versions(np, zarr, numcodecs, tifffile, imagecodecs)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=20_000, help="side of the ratio benchmark")
    ap.add_argument("--big", type=int, default=40_000, help="side of the RSS run (0: skip)")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--compression", nargs="+", default=["raw", "zlib"],
                    help="source TIFF codecs to test (raw = uncompressed)")
    ap.add_argument("--workdir", type=Path,
                    default=Path(tempfile.gettempdir()) / "mis-bench-images")
    ap.add_argument("--record", type=Path, default=HERE / "results" / "image_import.txt")
    ap.add_argument("--no-record", action="store_true")
    ap.add_argument("--clean", action="store_true", help="delete generated sources after")
    ap.add_argument("--quick", action="store_true",
                    help="2048^2, one rep, 4096^2 RSS run, nothing recorded: the whole path in about a minute")
    args = ap.parse_args()
    if args.quick:
        args.size, args.big, args.reps, args.no_record = 2048, 4096, 1, True
        args.workdir = args.workdir.with_name(args.workdir.name + "-quick")
    args.workdir.mkdir(parents=True, exist_ok=True)

    lines: list[str] = []

    def log(s: str) -> None:
        print(s, flush=True)
        lines.append(s)

    log(f"bench_image_import  {time.strftime('%Y-%m-%d %H:%M:%S')}")
    for s in machine_info():
        log(s)
    log(f"\n[1] import throughput vs tifffile.imread, {args.size} x {args.size} RGB uint8, "
        f"tiled 512, best of {args.reps}")
    results = []
    for comp in args.compression:
        src = source(args.workdir, args.size, None if comp == "raw" else comp, log)
        results.append(bench_ratio(src, args.workdir, args.reps, log))
    if args.big:
        log(f"\n[2] peak memory, {args.big} x {args.big} RGB uint8 (uncompressed tiled "
            "BigTIFF), import in a subprocess")
        src = source(args.workdir, args.big, None, log)
        results.append(bench_peak_rss(src, args.workdir, args.big, log))
    log("\njson: " + json.dumps(results))
    if not args.no_record:
        args.record.parent.mkdir(parents=True, exist_ok=True)
        args.record.write_text("\n".join(lines) + "\n")
        print(f"recorded in {args.record}")
    if args.clean:
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
