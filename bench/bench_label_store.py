"""Benchmark: the cost of standard label images -- upgrading a store of the first layout,
and the zoomed-out levels every label image now carries -- against writing the data.

    .venv/bin/python bench/bench_label_store.py             # 4096 x 4096, recorded
    .venv/bin/python bench/bench_label_store.py --quick     # 2048 x 2048, nothing recorded

* Store: a synthetic RGB image imported with ``mis.imagery.omezarr.import_image``, with
  labels and predictions written as the first layout wrote them (scribbles at
  ``labels/scribbles/v1``, a complete run and an interrupted run under ``predictions/``;
  ``tests/test_store_upgrade.add_first_layout``).
* [1] ``upgrade_store`` (copy + convert level 0, pyramid, probability and resume markers,
  old groups removed) over a plain file copy of the first-layout groups it rewrites (the
  baseline: the least any in-place rewrite must do; same process, same data); and the
  time of a second, no-op upgrade (what every open of labels and predictions pays: a few
  directory listings).
* [2] ``build_pyramid`` of one prediction label image over writing its level 0.
Best of --reps; the machine is shared and noisy: compare the ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from machine import describe  # noqa: E402


def run(size: int, reps: int, workdir: Path, log) -> dict:
    import numpy as np

    import tests.test_store_upgrade as fixture
    from mis.imagery import layout
    from mis.imagery.omezarr import import_image
    from mis.imagery.store import open_group
    from mis.imagery.upgrade import ensure_current, upgrade_store

    fixture.H = fixture.W = size
    image = import_image(fixture._section(workdir), workdir / "image.ome.zarr", pixel_size_um=1.0,
                         progress=False).store_uri
    best = {"copy_first_layout": 1e9, "upgrade": 1e9, "noop_open": 1e9, "level0": 1e9, "pyramid": 1e9}
    for _ in range(reps):
        uri = str(workdir / "rep.ome.zarr")
        shutil.rmtree(uri, ignore_errors=True)
        shutil.copytree(image, uri)
        old = fixture.add_first_layout(uri)
        t0 = time.perf_counter()
        for group in ("labels", "predictions"):
            shutil.copytree(Path(uri) / group, workdir / f"copy-{group}")
        best["copy_first_layout"] = min(best["copy_first_layout"], time.perf_counter() - t0)
        for group in ("labels", "predictions"):
            shutil.rmtree(workdir / f"copy-{group}")
        t0 = time.perf_counter()
        upgrade_store(uri)
        best["upgrade"] = min(best["upgrade"], time.perf_counter() - t0)
        t0 = time.perf_counter()
        ensure_current(uri)
        best["noop_open"] = min(best["noop_open"], time.perf_counter() - t0)
        group = open_group(uri, layout.prediction_path("rf"), "r+")
        values = (old["index"].astype(np.int64) + 1).astype(np.uint8)[None]
        t0 = time.perf_counter()
        group["0"][...] = values
        best["level0"] = min(best["level0"], time.perf_counter() - t0)
        t0 = time.perf_counter()
        layout.build_pyramid(group)
        best["pyramid"] = min(best["pyramid"], time.perf_counter() - t0)
    log(f"[1] upgrade {best['upgrade']:.2f} s vs copying the first-layout groups {best['copy_first_layout']:.2f} s: "
        f"x{best['upgrade'] / best['copy_first_layout']:.2f}; "
        f"a second (no-op) upgrade {best['noop_open'] * 1e3:.1f} ms")
    log(f"[2] label pyramid {best['pyramid']:.2f} s vs writing level 0 {best['level0']:.2f} s: "
        f"x{best['pyramid'] / best['level0']:.2f}")
    return {"size": size, **{k: round(v, 4) for k, v in best.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--record", type=Path, default=HERE / "results" / "label_store.txt")
    ap.add_argument("--no-record", action="store_true")
    ap.add_argument("--quick", action="store_true", help="2048^2, one rep, nothing recorded")
    args = ap.parse_args()
    if args.quick:
        args.size, args.reps, args.no_record = 2048, 1, True
    lines: list[str] = []

    def log(s: str) -> None:
        print(s, flush=True)
        lines.append(s)

    log(f"bench_label_store  {time.strftime('%Y-%m-%d %H:%M:%S')}  {args.size} x {args.size}, best of {args.reps}")
    log(describe())
    with tempfile.TemporaryDirectory(prefix="mis-bench-labels-") as d:
        result = run(args.size, args.reps, Path(d), log)
    log("json: " + json.dumps(result))
    if not args.no_record:
        args.record.write_text("\n".join(lines) + "\n")
        print(f"recorded in {args.record}")


if __name__ == "__main__":
    main()
