"""Peak memory of concurrent IIIF ``^max`` renders of a small image (issue 15, item 6a).

Sixteen threads ask for ``full/^max/0/default.png`` of a 320 x 320 RGB image at once,
as sixteen clients of the server would: the baseline is the previous service limits
(upscaling up to maxArea, every render at once), ours the current ones (upscaling at most
``Limits.max_upscale``, ``MAX_RENDERS`` at a time). Each configuration runs in a fresh
process so that peak RSS is its own; the script prints both and their ratio.

    PYTHONPATH=src python bench/bench_iiif_memory.py [--quick]

It takes seconds; ``--quick`` runs the same and only leaves ``bench/results/`` alone.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys, threading, tempfile
from pathlib import Path
import numpy as np, tifffile
from mis.imagery import iiif
from mis.imagery.iiif_routes import MAX_RENDERS
from mis.imagery.omezarr import import_image
mode = sys.argv[1]
d = Path(tempfile.mkdtemp())
tifffile.imwrite(d / "s.tif", np.random.default_rng(1).integers(0, 255, (320, 320, 3), dtype=np.uint8),
                 photometric="rgb")
img = import_image(d / "s.tif", d / "s.ome.zarr", pixel_size_um=1.0, progress=False)
pyr = iiif.Pyramid.open(img.store_uri)
limits = iiif.Limits(max_upscale=1e9) if mode == "baseline" else iiif.Limits()
gate = threading.Semaphore(16 if mode == "baseline" else MAX_RENDERS)  # the service's own cap
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
sizes = []
def one():
    with gate:
        req = iiif.parse_image_request("full", "^max", "0", "default.png", pyr.width, pyr.height, limits, ["png"])
        pyr.render(req, (0, 1, 2))
        sizes.append((req.width, req.height))
threads = [threading.Thread(target=one) for _ in range(16)]
[t.start() for t in threads]; [t.join() for t in threads]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"mode": mode, "output": sizes[0], "peak_mb": peak / 1024, "growth_mb": (peak - base) / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="do not record bench/results/iiif_memory.json")
    args = ap.parse_args()
    results = {}
    for mode in ("baseline", "ours"):
        out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True)
        results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        print(results[mode])
    ratio = results["baseline"]["growth_mb"] / max(results["ours"]["growth_mb"], 1e-9)
    print(f"memory growth of 16 concurrent ^max renders: baseline {results['baseline']['growth_mb']:.0f} MB, "
          f"ours {results['ours']['growth_mb']:.0f} MB: {ratio:.1f}x less")
    if args.quick:
        return
    out = Path(__file__).parent / "results" / "iiif_memory.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({**results, "ratio": ratio}, indent=2) + "\n")


if __name__ == "__main__":
    main()
