"""Truth bench: grain statistics of a classified section against the grains it was made of.

    .venv/bin/python bench/bench_grains.py            # the suite; writes bench/results/grains.txt
    .venv/bin/python bench/bench_grains.py --quick    # tiny sections, 2 noise levels, writes nothing
    .venv/bin/python bench/bench_grains.py --section fine-at --level none   # one case, writes nothing

Each section of the suite is generated with its true grains known:

- grains: a power (Laguerre) diagram of random seeds whose weights are the squares of
  per-grain radii drawn log-normally around a per-mineral median ECD, bent by a smooth
  displacement field (blobs, not polygons); a true grain is a 4-connected set of one cell;
- classes: 5 minerals (modal proportions vary by section) and 5 % of the cells pore/epoxy
  (class 0, the dark non-grain class); same-mineral grains touch wherever chance puts them
  side by side (with a 40 % mineral, often);
- boundary lines: every grain boundary is drawn 1.5 µm wide (at least one pixel; a
  polished grain-boundary groove), and the classifier sees a boundary pixel as the dark
  class with probability min(0.9, 1.5 µm / pixel size), as the mineral otherwise; a
  boundary pixel it calls the mineral is a mixed pixel, uncertain with probability
  min(1, 2 x 1.5 µm / pixel size): at 5 µm per pixel most of a boundary is invisible;
- classification noise, applied to that class map as a classifier errs, at three levels:
  ``none`` (boundaries only), ``low`` (1 % salt-and-pepper, 10 % boundary jitter, 0.5 % of
  the area in small blobs of 1-2.5 px radius) and ``high`` (5 %, 30 %, 2 %); salt and blobs
  take any other class (the dark class included), jitter the neighbour's;
- the classifier's probability: smooth and confident (0.75-0.99) where it is right,
  0.25-0.65 where it is wrong or the pixel is mixed (so 38 % of its errors are confident).

For every section and level, in the same run, the grains of (a) today's raw 4-connected
components and (b) the cleaned pipeline (:mod:`mis.grains.cleaning`, default settings,
with the probability),
both computed chunk by chunk (256 px) with the ingestion's own functions, are compared per
mineral with the true grains, over grains of at least the default cut-off
(:data:`~mis.grains.cleaning.DEFAULT_MIN_GRAIN_PX` pixels) for truth, (a) and (b) alike:
grain count (all such grains), D10/D50/D90 of the ECD (area-weighted, grains not touching
the image border: the reporting rules of :mod:`mis.grains.rock`), and modal % (pixels of
the mineral over all mineral pixels; the cleaned map for (b)). Also: the share of all
grains of <= 4 px.

Targets (every section, default settings): count within +-10 %, D50 within +-10 %, grains
<= 4 px under 5 % of all grains, modal % within +-1 point.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from machine import describe, versions
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from mis.grains.cleaning import RAW_COMPONENTS, GrainRules, read_cleaned, window_reader
from mis.grains.labelling import ComponentStream, ignore_lut, label_tile, tile_components
from mis.grains.metrics import tile_grain_stats
from mis.grains.rock import weighted_percentiles
from mis.imagery.chunks import tile_rows

HERE = Path(__file__).resolve().parent
N_MINERALS = 5
LINE_UM = 1.5
TILE = (256, 256)
LEVELS = {
    "none": {"salt": 0.0, "jitter": 0.0, "blobs": 0.0},
    "low": {"salt": 0.01, "jitter": 0.10, "blobs": 0.005},
    "high": {"salt": 0.05, "jitter": 0.30, "blobs": 0.02},
}


@dataclass(frozen=True)
class Section:
    name: str
    pixel_um: float
    side: int  # pixels
    d50_um: tuple[float, ...]  # median ECD per mineral
    modal: tuple[float, ...]  # proportions of the minerals (pores come on top: 5 % of cells)
    seed: int


SUITE = [
    Section("fine-0.5um", 0.5, 1536, (12, 20, 30, 40, 16), (0.40, 0.25, 0.15, 0.12, 0.08), 1),
    Section("medium-1um", 1.0, 1536, (25, 60, 40, 100, 30), (0.30, 0.30, 0.20, 0.12, 0.08), 2),
    Section("coarse-2um", 2.0, 1536, (80, 150, 250, 60, 120), (0.45, 0.20, 0.15, 0.12, 0.08), 3),
    Section("very-coarse-5um", 5.0, 1536, (250, 500, 300, 150, 400), (0.35, 0.25, 0.20, 0.12, 0.08), 4),
    Section("fine-at-5um", 5.0, 1536, (40, 60, 30, 80, 50), (0.40, 0.25, 0.15, 0.12, 0.08), 5),
]
QUICK = [
    Section("quick-1um", 1.0, 384, (20, 35, 25, 40, 30), (0.40, 0.25, 0.15, 0.12, 0.08), 11),
    Section("quick-5um", 5.0, 384, (60, 100, 80, 150, 50), (0.35, 0.25, 0.20, 0.12, 0.08), 12),
]


# ------------------------------------------------------------------ generator
def true_grains(s: Section) -> tuple[np.ndarray, np.ndarray]:
    """Cell id (H, W) of a warped power diagram and the class of each cell (0 = pore)."""
    rng = np.random.default_rng(s.seed)
    n_px = s.side
    modal = np.asarray(s.modal, dtype=float)
    # cells of mineral m have ECD ~ lognormal(d50_m, sigma 0.35); count from the areas
    radius_px = np.asarray(s.d50_um) / s.pixel_um / 2.0
    mean_area = float(np.sum(modal * math.pi * radius_px ** 2 * math.exp(2 * 0.35 ** 2)) / modal.sum())
    n = max(8, int(round(n_px * n_px / mean_area * 1.15)))
    # area-proportional: draw by area share, so cells of coarse minerals are fewer
    weight = modal / (radius_px ** 2)
    mineral = rng.choice(np.arange(1, N_MINERALS + 1), size=n, p=weight / weight.sum())
    r = radius_px[mineral - 1] * rng.lognormal(0.0, 0.35, n)
    cls = mineral.copy()
    cls[rng.random(n) < 0.05] = 0
    seeds = rng.random((n, 2)) * n_px
    yy, xx = np.mgrid[0:n_px, 0:n_px].astype(np.float32)
    for arr in (yy, xx):  # blobs: a smooth displacement of ~0.25 of the median radius
        d = ndi.gaussian_filter(rng.standard_normal((n_px // 4, n_px // 4)).astype(np.float32), 4.0)
        d = ndi.zoom(d, 4, order=1)[:n_px, :n_px]
        arr += d * (0.25 * float(np.median(r)) / (d.std() + 1e-12))
    pts = np.stack([yy.ravel(), xx.ravel()], 1)
    k = min(16, n)
    dist, idx = cKDTree(seeds).query(pts, k=k, workers=-1)
    power = dist ** 2 - (r[idx] ** 2)
    best = idx[np.arange(idx.shape[0]), np.argmin(power, axis=1)]
    return best.reshape(n_px, n_px).astype(np.int32), cls


def observe(cell: np.ndarray, cls: np.ndarray, s: Section, level: dict[str, float], seed: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """What a classifier makes of the section: boundary lines, then the noise ``level``;
    the class map and the probability of each pixel's class."""
    rng = np.random.default_rng(seed)
    truth = cls[cell].astype(np.uint8)
    out = truth.copy()
    shape = cell.shape
    width = max(1, round(LINE_UM / s.pixel_um))
    line = np.zeros(shape, dtype=bool)
    line[:, 1:] |= cell[:, 1:] != cell[:, :-1]
    line[1:, :] |= cell[1:, :] != cell[:-1, :]
    if width > 1:
        line = ndi.binary_dilation(line, iterations=width // 2)
    cover = min(1.0, LINE_UM / s.pixel_um)  # share of a boundary pixel the line darkens
    dark = line & (rng.random(shape) < min(0.9, cover))
    out[dark] = 0
    # a boundary pixel called the mineral is a mixed pixel: uncertain in proportion to the line's share
    mixed = dark | (line & (rng.random(shape) < min(1.0, 2 * cover)))
    k = N_MINERALS + 1
    if level["jitter"]:
        for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            nb = np.roll(out, (dy, dx), axis=(0, 1))
            flip = (nb != out) & (rng.random(shape) < level["jitter"] / 2)
            out[flip] = nb[flip]
    if level["blobs"]:
        for radius in (1.0, 1.5, 2.0, 2.5):
            n = int(level["blobs"] * out.size / 4 / (math.pi * radius ** 2))
            centre = np.zeros(shape, dtype=np.int16)
            cy, cx = rng.integers(0, shape[0], n), rng.integers(0, shape[1], n)
            centre[cy, cx] = (out[cy, cx] + rng.integers(1, k, n)) % k + 1
            ry = int(math.ceil(radius))
            yy, xx = np.mgrid[-ry : ry + 1, -ry : ry + 1]
            grown = ndi.grey_dilation(centre, footprint=(yy ** 2 + xx ** 2) <= radius ** 2 + 1e-9)
            out[grown > 0] = (grown[grown > 0] - 1).astype(np.uint8)
    if level["salt"]:
        salt = rng.random(shape) < level["salt"]
        out[salt] = (out[salt] + rng.integers(1, k, int(salt.sum()))) % k
    # probability: confident and smooth where right (features are smooth), 0.25-0.65 where
    # wrong or mixed (under 0.5 for 60 % of those: some errors are confident)
    smooth = ndi.gaussian_filter(rng.random(shape).astype(np.float32), 3.0)
    smooth = (smooth - smooth.min()) / (np.ptp(smooth) + 1e-9)
    prob = (0.75 + 0.24 * smooth).astype(np.float32)
    wrong = (out != truth) | mixed
    prob[wrong] = rng.uniform(0.25, 0.65, int(wrong.sum())).astype(np.float32)
    return out, prob


# ------------------------------------------------------------------ grains, as the ingestion finds them
def census(values: np.ndarray, prob: np.ndarray | None, rules: GrainRules, pixel_um: float
           ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Grains of a class map (class, pixel count, touches border), chunk by chunk through
    the ingestion's cleaning and labelling; and the class map the run reports from."""
    H, W = values.shape
    forms = np.array([False] + [True] * N_MINERALS)
    lut = ignore_lut([0], N_MINERALS)
    stream = ComponentStream((H, W), TILE, {"count": "sum", "border": "or"})
    out: dict[str, list[np.ndarray]] = {"cls": [], "count": [], "border": []}
    cleaned_map = np.empty_like(values)

    for _, row in tile_rows((H, W), TILE):
        for iy, ix, y0, x0, h, w in row:
            cleaned, cut = read_cleaned(window_reader(values), (y0, x0, h, w), (H, W), forms, rules, pixel_um,
                                        None if prob is None else window_reader(prob))
            cleaned_map[y0 : y0 + h, x0 : x0 + w] = cleaned
            local = label_tile(cleaned, lut, exclude=cut)
            tc = tile_components(local, iy, ix, y0, x0, W)
            st = tile_grain_stats(local, y0, x0, (H, W))
            tc.stats = {"count": st["count"], "border": st["border"]}
            fin = stream.push_tile(tc).final
            out["cls"].append(fin.value)
            out["count"].append(fin.stats["count"])
            out["border"].append(fin.stats["border"])
    return {k: np.concatenate(v) for k, v in out.items()}, cleaned_map


def truth_census(cell: np.ndarray, cls: np.ndarray) -> dict[str, np.ndarray]:
    """True grains: 4-connected sets of one cell (a rasterised sliver may fall apart)."""
    from skimage.measure import label

    lab = label(cell + 1, background=0, connectivity=1)
    n = int(lab.max())
    count = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    first = np.zeros(n + 1, dtype=np.int64)
    flat = lab.ravel()
    first[flat[::-1]] = np.arange(flat.size)[::-1]
    c = cls[cell.ravel()[first[1:]]]
    border = np.zeros(n + 1, dtype=bool)
    for edge in (lab[0], lab[-1], lab[:, 0], lab[:, -1]):
        border[edge] = True
    keep = c > 0
    return {"cls": c[keep], "count": count[keep], "border": border[1:][keep]}


def statistics(g: dict[str, np.ndarray], class_map: np.ndarray, pixel_um: float, cutoff_px: int) -> dict:
    """Per mineral: count, D10/D50/D90 (area-weighted ECD, not touching the border), modal %."""
    px = np.bincount(class_map.ravel(), minlength=N_MINERALS + 1)[1:].astype(float)
    modal = 100 * px / px.sum()
    per = {}
    for m in range(1, N_MINERALS + 1):
        sel = (g["cls"] == m) & (g["count"] >= cutoff_px)
        sized = sel & ~g["border"]
        area = g["count"][sized] * pixel_um ** 2
        ecd = 2 * np.sqrt(area / math.pi)
        d = weighted_percentiles(ecd, area, (10, 50, 90)) if area.size else [float("nan")] * 3
        per[m] = {"n": int(sel.sum()), "d10": d[0], "d50": d[1], "d90": d[2], "modal": float(modal[m - 1])}
    tiny = float((g["count"] <= 4).mean()) if g["count"].size else 0.0
    return {"minerals": per, "grains": int(g["count"].size), "tiny_share": tiny}


def compare(est: dict, truth: dict) -> dict:
    out = {}
    for m, t in truth["minerals"].items():
        e = est["minerals"][m]
        out[m] = {"count_err": e["n"] / t["n"] - 1 if t["n"] else float("nan"),
                  "d10_err": e["d10"] / t["d10"] - 1, "d50_err": e["d50"] / t["d50"] - 1,
                  "d90_err": e["d90"] / t["d90"] - 1, "modal_diff": e["modal"] - t["modal"]}
    worst = {k: max(abs(v[k]) for v in out.values() if math.isfinite(v[k]))
             for k in ("count_err", "d50_err", "modal_diff")}
    passed = (worst["count_err"] <= 0.10 and worst["d50_err"] <= 0.10 and worst["modal_diff"] <= 1.0
              and est["tiny_share"] < 0.05)
    return {"per_mineral": out, "worst": worst, "pass": passed}


# ------------------------------------------------------------------ main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="two tiny sections, levels none and high; writes nothing")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "grains.txt")
    ap.add_argument("--min-px", type=int, default=0, help="cleaning threshold of (b) in px (0: the default)")
    ap.add_argument("--section", action="append", default=[], metavar="NAME",
                    help="only this section (repeatable; prefix match); writes nothing")
    ap.add_argument("--level", action="append", default=[], choices=sorted(LEVELS),
                    help="only this noise level (repeatable); writes nothing")
    args = ap.parse_args()
    suite = QUICK if args.quick else SUITE
    if args.section:
        suite = [s for s in suite if any(s.name.startswith(x) for x in args.section)]
    levels = {k: LEVELS[k] for k in (("none", "high") if args.quick else LEVELS)}
    if args.level:
        levels = {k: v for k, v in levels.items() if k in args.level}
    partial = args.quick or bool(args.section) or bool(args.level)
    lines = [f"bench_grains  {time.strftime('%Y-%m-%d %H:%M:%S')}" + ("  (--quick)" if args.quick else ""),
             describe(), versions(np)]
    print("\n".join(lines), flush=True)
    results = []
    summary = []
    for s in suite:
        t0 = time.perf_counter()
        cell, cls = true_grains(s)
        rules = GrainRules() if not args.min_px else GrainRules(min_area_um2=args.min_px * s.pixel_um ** 2)
        cutoff = rules.min_px(s.pixel_um)
        truth = statistics(truth_census(cell, cls), cls[cell], s.pixel_um, cutoff)
        gen = time.perf_counter() - t0
        head = (f"\n{s.name}: {s.side}^2 px at {s.pixel_um:g} µm/px ({s.side * s.pixel_um / 1000:.2f} mm), "
                f"per-mineral median ECD {', '.join(f'{d:g}' for d in s.d50_um)} µm; cut-off {cutoff} px "
                f"= {cutoff * s.pixel_um ** 2:g} µm²; {truth['grains']:,} true grains (generated in {gen:.1f} s)")
        print(head, flush=True)
        lines.append(head)
        for lname, level in levels.items():
            obs, prob = observe(cell, cls, s, level, s.seed * 100 + len(lname))
            row = {"section": s.name, "level": lname, "truth": truth}
            for which, r, p in (("raw", RAW_COMPONENTS, None), ("new", rules, prob)):
                t = time.perf_counter()
                g, cmap = census(obs, p, r, s.pixel_um)
                secs = time.perf_counter() - t
                st = statistics(g, cmap, s.pixel_um, cutoff)
                row[which] = {"stats": st, "cmp": compare(st, truth), "seconds": secs}
            results.append(row)
            block = [f"  noise {lname:<4} {'':>5} {'count (true)':>22} {'D10 err':>16} {'D50 err':>16} "
                     f"{'D90 err':>16} {'modal pt':>14}   [raw | new]"]
            for m in range(1, N_MINERALS + 1):
                t = truth["minerals"][m]
                a, b = row["raw"]["cmp"]["per_mineral"][m], row["new"]["cmp"]["per_mineral"][m]
                na, nb = row["raw"]["stats"]["minerals"][m]["n"], row["new"]["stats"]["minerals"][m]["n"]
                block.append(
                    f"    M{m} {'':<6} {na:>6} | {nb:>5} ({t['n']:>5}) "
                    + " ".join(f"{100 * a[k]:+6.0f}% | {100 * b[k]:+5.1f}%" for k in ("d10_err", "d50_err", "d90_err"))
                    + f" {a['modal_diff']:+5.2f} | {b['modal_diff']:+5.2f}")
            for which in ("raw", "new"):
                c = row[which]["cmp"]
                w = c["worst"]
                block.append(f"    {which}: {row[which]['stats']['grains']:,} grains, "
                             f"{100 * row[which]['stats']['tiny_share']:.1f} % <= 4 px; worst count "
                             f"{100 * w['count_err']:.1f} %, D50 {100 * w['d50_err']:.1f} %, modal "
                             f"{w['modal_diff']:.2f} pt -> {'PASS' if c['pass'] else 'FAIL'} "
                             f"({row[which]['seconds']:.1f} s)")
            print("\n".join(block), flush=True)
            lines += block
            summary.append((s.name, lname, row["raw"]["cmp"]["pass"], row["new"]["cmp"]["pass"],
                            row["new"]["cmp"]["worst"], row["new"]["stats"]["tiny_share"]))
    block = ["\nsummary (new pipeline, default settings; targets: count +-10 %, D50 +-10 %, <= 4 px < 5 %, "
             "modal +-1 pt):"]
    for name, lname, pa, pb, w, tiny in summary:
        block.append(f"  {name:<16} {lname:<5} raw {'PASS' if pa else 'FAIL'}  new {'PASS' if pb else 'FAIL'}  "
                     f"(worst count {100 * w['count_err']:.1f} %, D50 {100 * w['d50_err']:.1f} %, "
                     f"modal {w['modal_diff']:.2f} pt, <= 4 px {100 * tiny:.1f} %)")
    block.append(f"  new passes {sum(x[3] for x in summary)} of {len(summary)}; raw {sum(x[2] for x in summary)}")
    print("\n".join(block), flush=True)
    lines += block
    lines.append("\njson: " + json.dumps(results, default=float))
    if not partial:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
