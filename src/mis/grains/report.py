"""Reports of a plug's or a drill core's rocks: ``mis report`` (PNG + HTML: modal
mineralogy, grain sizes, association, the image with its class map) and ``mis log``
(class fractions against depth).

Separate from :mod:`mis.grains.rock`, which computes the statistics: this module only
reads what the ingestion stored and draws it (matplotlib, HTML), so the statistics carry
no plotting or SQL, and a new report goes here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mis.grains.rock import ClassInfo
from mis.vocab.names import local_name

__all__ = ["hole_log", "plug_report"]


def _colour(c: Any, i: int) -> str:
    import matplotlib

    if getattr(c, "colour", None):
        return c.colour
    cycle = matplotlib.colormaps["tab20"]
    return matplotlib.colors.to_hex(cycle(i % 20))


def _run_classes(conn: Any, run_id: int) -> list[ClassInfo]:
    rows = conn.execute(
        "SELECT rc.class_index, c.uri, c.id, c.scheme, c.pref_label, c.notation, c.properties "
        "FROM run_class rc JOIN concept c ON c.uri = rc.concept_uri WHERE rc.run_id = %s ORDER BY rc.class_index",
        (run_id,)).fetchall()
    return [ClassInfo.from_concept(*row) for row in rows]


def _thumbnail(store_uri: str, max_px: int = 900) -> np.ndarray | None:
    """An RGB(A) thumbnail from the smallest pyramid level at least ``max_px`` wide (or the
    smallest there is), display-scaled to 8 bits; None when the store cannot be read."""
    try:
        import zarr

        group = zarr.open_group(str(store_uri).removeprefix("file://"), mode="r")
        levels = {k: v for k, v in group.arrays() if k.isdigit()}
        names = sorted(levels, key=int)
        level = names[-1]
        for name in names:
            if max(levels[name].shape[1:]) <= max_px:
                level = name
                break
        a = np.asarray(levels[level][:]).astype(np.float64)
    except (KeyError, IndexError, OSError, ValueError):  # no such level/array, or unreadable: no picture
        return None
    if a.shape[0] not in (1, 3, 4):
        a = a[:3] if a.shape[0] > 3 else a[:1]
    lo, hi = np.percentile(a, 1), np.percentile(a, 99)
    a = np.clip((a - lo) / max(hi - lo, 1e-9), 0, 1)
    a = np.moveaxis(a, 0, -1)
    return np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a[..., :3]


def plug_report(plug_ref: str, out: str | Any, *, run: str | None = None, url: str | None = None) -> list[Any]:
    """Write ``<out>.png`` and ``<out>.html`` for a plug: modal mineralogy bars (area and
    wt %), grain-size distributions (area-weighted cumulative ECD), the association
    matrix and the image thumbnail with the roxel class map overlaid, one panel row per
    rock (segmentation run) of the plug; ``run`` restricts to runs of that name.
    Returns the paths written."""
    import base64
    import html
    import io
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import psycopg

    from mis.catalogue.errors import CatalogueError
    from mis.catalogue.locate import database_url
    from mis.catalogue.postgres import libpq_url
    from mis.catalogue.refs import find_plug
    from mis.catalogue.session import transaction
    from mis.grains.cleaning import describe_rules

    url = url or database_url()
    with transaction(url) as session:
        plug = find_plug(session, plug_ref)
        plug_id, plug_name, p_from, p_to = plug.id, plug.name, plug.from_m, plug.to_m
    out = Path(out)
    if out.suffix.lower() in (".png", ".html"):
        out = out.with_suffix("")
    out.parent.mkdir(parents=True, exist_ok=True)
    with psycopg.connect(libpq_url(url)) as conn:
        rocks = conn.execute(
            "SELECT r.id, r.run_id, sr.name, sr.image_id, i.name, i.store_uri, i.shape, i.pixel_size_um, "
            "sr.roxel_size, "
            "r.lithology_uri, r.lithology_source, r.grain_size, r.association, r.liberation, r.surface_area, "
            "sr.model_path, sr.model_sha256, sr.software_version, sr.finished_at "
            "FROM rock r JOIN segmentation_run sr ON sr.id = r.run_id JOIN image i ON i.id = sr.image_id "
            "WHERE r.plug_id = %s AND sr.status = 'complete' AND (%s::text IS NULL OR sr.name = %s) ORDER BY r.run_id",
            (plug_id, run, run)).fetchall()
        if not rocks:
            raise CatalogueError(f"plug {plug_ref!r}: no ingested run" + (f" named {run!r}" if run else "")
                                 + " (run: mis ingest)")
        fig, axes = plt.subplots(len(rocks), 4, figsize=(22, 5.2 * len(rocks)), squeeze=False)
        sections = []
        for row_axes, rk in zip(axes, rocks, strict=False):
            (rock_id, run_id, run_name, image_id, image_name, store_uri, shape, pixel_size, r, lith, lith_src,
             grain_size, association, liberation, surface, model_path, model_sha, version, finished) = rk
            classes = _run_classes(conn, run_id)
            by_uri = {c.uri: c for c in classes}
            cons = conn.execute("SELECT mineral_uri, proportion_area, proportion_wt FROM rock_constituent "
                                "WHERE rock_id = %s ORDER BY proportion_area DESC", (rock_id,)).fetchall()
            # 1. modal mineralogy
            ax = row_axes[0]
            names = [by_uri[u].symbol if u in by_uri else local_name(u) for u, _, _ in cons]
            xs = np.arange(len(cons))
            cols = [_colour(by_uri.get(u), i) for i, (u, _, _) in enumerate(cons)]
            ax.bar(xs - 0.2, [100 * a for _, a, _ in cons], 0.4, color=cols, edgecolor="k", label="area %")
            if any(w is not None for _, _, w in cons):
                ax.bar(xs + 0.2, [100 * (w or 0) for _, _, w in cons], 0.4, color=cols, edgecolor="k",
                       hatch="//", alpha=0.6, label="wt %")
            ax.set_xticks(xs, names, rotation=45, ha="right")
            ax.set_ylabel("%")
            ax.set_title(f"{plug_name} / {image_name} / run '{run_name}': modal mineralogy")
            ax.legend()
            # 2. grain-size distributions (server-side log histogram, area weighted)
            ax = row_axes[1]
            hist = conn.execute(
                "SELECT c.uri, floor(ln(greatest(g.ecd_um, 1e-6)) / ln(1.05))::int AS b, sum(g.area_um2) "
                "FROM grain g JOIN concept c ON c.id = g.mineral_id WHERE g.run_id = %s AND NOT g.touches_border "
                "GROUP BY 1, 2 ORDER BY 1, 2",
                (run_id,)).fetchall()
            curves: dict[str, list[tuple[int, float]]] = {}
            for uri, b, a in hist:
                curves.setdefault(uri, []).append((int(b), float(a)))
            for i, (uri, pts) in enumerate(sorted(curves.items())):
                bins = np.array([p[0] for p in pts])
                w = np.cumsum([p[1] for p in pts])
                ax.plot(1.05 ** (bins + 1), 100 * w / w[-1], color=_colour(by_uri.get(uri), i),
                        label=by_uri[uri].symbol if uri in by_uri else uri)
            ax.set_xscale("log")
            ax.set_xlabel("equivalent circle diameter (µm)")
            ax.set_ylabel("cumulative area %")
            ax.set_title("grain-size distribution (grains not touching the border)")
            ax.grid(alpha=0.3)
            if curves:
                ax.legend(fontsize=8)
            # 3. association matrix
            ax = row_axes[2]
            shares = (association or {}).get("boundary_share", {})
            rows_u = [u for u, _, _ in cons if u in shares]
            cols_u = [c.uri for c in classes if any(c.uri in shares[u] for u in rows_u)]
            mat = np.array([[shares[u].get(v, 0.0) for v in cols_u] for u in rows_u]) if rows_u else np.zeros((0, 0))
            if mat.size:
                im = ax.imshow(100 * mat, cmap="viridis", vmin=0, vmax=100)
                ax.set_yticks(range(len(rows_u)), [by_uri[u].symbol for u in rows_u])
                ax.set_xticks(range(len(cols_u)), [by_uri[u].symbol for u in cols_u], rotation=45, ha="right")
                for (i, j), v in np.ndenumerate(mat):
                    ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=7,
                            color="w" if v < 0.6 else "k")
                fig.colorbar(im, ax=ax, fraction=0.046, label="% of the row mineral's boundary")
            ax.set_title("mineral association")
            # 4. thumbnail + roxel class map
            ax = row_axes[3]
            grid = conn.execute("SELECT max(row) + 1, max(col) + 1 FROM roxel WHERE run_id = %s", (run_id,)).fetchone()
            thumb = _thumbnail(store_uri)
            height, width = int(shape[1]), int(shape[2])
            extent = (0, width * pixel_size, height * pixel_size, 0)
            if thumb is not None:
                ax.imshow(thumb, extent=extent)
            if grid and grid[0]:
                cmap = np.full((int(grid[0]), int(grid[1])), -1, dtype=np.int64)
                rr = conn.execute("SELECT row, col, dominant_class_id FROM roxel WHERE run_id = %s",
                                  (run_id,)).fetchall()
                by_id = {c.concept_id: c.index for c in classes}
                rrow = np.array([x[0] for x in rr])
                rcol = np.array([x[1] for x in rr])
                rcls = np.array([by_id.get(x[2], -1) for x in rr])
                cmap[rrow, rcol] = rcls
                palette = np.array([matplotlib.colors.to_rgba(_colour(c, c.index)) for c in classes])
                rgba = np.zeros((*cmap.shape, 4))
                ok = cmap >= 0
                rgba[ok] = palette[cmap[ok]]
                rgba[..., 3] = np.where(ok, 0.45 if thumb is not None else 1.0, 0.0)
                ax.imshow(rgba, extent=(0, grid[1] * r * pixel_size, grid[0] * r * pixel_size, 0),
                          interpolation="nearest")
                handles = [matplotlib.patches.Patch(color=_colour(c, c.index), label=c.symbol) for c in classes]
                ax.legend(handles=handles, fontsize=7, loc="upper right")
            ax.set_xlim(0, width * pixel_size)
            ax.set_ylim(height * pixel_size, 0)
            ax.set_xlabel("x (µm)")
            ax.set_ylabel("y (µm)")
            ax.set_title(f"image {image_id} with roxel classes ({r} px)")
            sections.append((rk, classes, cons))
        fig.tight_layout()
        png = out.with_suffix(".png")
        fig.savefig(png, dpi=110)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        plt.close(fig)

    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>MIS report {esc(plug_name)}</title>"
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}</style></head><body>",
             f"<h1>Plug {esc(plug_name)} ({p_from:g}-{p_to:g} m)</h1>",
             f"<img style='max-width:100%' src='data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}'>"]
    for rk, classes, cons in sections:
        by_uri = {c.uri: c for c in classes}
        (rock_id, run_id, run_name, image_id, image_name, _s, _sh, _p, r, lith, lith_src, grain_size, _a,
         liberation, surface, model_path, model_sha, version, finished) = rk
        parts.append(f"<h2>Image {esc(str(image_name))}, run '{esc(run_name)}' (run {run_id})</h2>")
        parts.append(f"<p>lithology: {esc(local_name(lith)) if lith else '-'} "
                     f"({esc(lith_src or '')}); model {esc(str(model_path or '-'))} "
                     f"sha256 {esc(str(model_sha or '-')[:16])}; MIS {esc(str(version))}; finished {finished}</p>")
        parts.append(f"<p class='rules'>{esc(describe_rules((grain_size or {}).get('rules') or {}))}</p>")
        parts.append("<table><tr><th>mineral</th><th>area %</th><th>wt %</th><th>grains</th><th>sized</th>"
                     "<th>D10 µm</th><th>D50 µm</th><th>D90 µm</th><th>S<sub>V</sub> 1/µm</th><th>m²/g</th></tr>")
        for uri, a, w in cons:
            gs = (grain_size or {}).get(uri, {})
            sa = (surface or {}).get(uri, {})
            label = by_uri[uri].label if uri in by_uri else uri
            parts.append(
                f"<tr><td style='text-align:left'>{esc(label)}</td><td>{100 * a:.2f}</td>"
                f"<td>{'' if w is None else f'{100 * w:.2f}'}</td><td>{gs.get('n', '')}</td>"
                f"<td>{gs.get('n_sized', '')}</td>"
                + "".join(f"<td>{'' if gs.get(k) is None else gs.get(k)}</td>" for k in ("d10_um", "d50_um", "d90_um"))
                + "".join(f"<td>{'' if sa.get(k) is None else format(sa[k], '.4g')}</td>"
                          for k in ("sv_per_um", "ssa_m2_g")) + "</tr>")
        parts.append("</table>")
        if liberation and liberation.get("minerals"):
            names = liberation["classes"]
            parts.append("<table><tr><th>liberation (area)</th>" + "".join(f"<th>{esc(n)}</th>" for n in names)
                         + "</tr>")
            for uri, v in liberation["minerals"].items():
                label = by_uri[uri].label if uri in by_uri else uri
                parts.append(f"<tr><td style='text-align:left'>{esc(label)}</td>"
                             + "".join(f"<td>{100 * v['area_share'][n]:.1f} %</td>" for n in names) + "</tr>")
            parts.append("</table>")
    parts.append("</body></html>")
    page = out.with_suffix(".html")
    page.write_text("\n".join(parts), encoding="utf-8")
    return [png, page]


def hole_log(hole_ref: str, out: str | Any, *, step_m: float = 0.05, url: str | None = None) -> Any:
    """Plot class fractions against depth for a drill core: roxels of depth-registered
    images (core photos, scans) averaged in ``step_m`` depth bins as stacked areas, and the
    modal mineralogy of the plugs' rocks as stacked bars at their intervals. Writes a PNG
    and returns its path."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import psycopg

    from mis.catalogue.errors import CatalogueError
    from mis.catalogue.locate import database_url
    from mis.catalogue.postgres import libpq_url
    from mis.catalogue.refs import find_drillcore
    from mis.catalogue.session import transaction

    url = url or database_url()
    out = Path(out)
    if out.suffix.lower() != ".png":
        out = out.with_suffix(".png")
    out.parent.mkdir(parents=True, exist_ok=True)
    with transaction(url) as session:
        hole = find_drillcore(session, hole_ref)
        hole_id, hole_name = hole.id, hole.name
    with psycopg.connect(libpq_url(url)) as conn:
        runs = conn.execute(
            "SELECT sr.id, i.depth_axis IS NOT NULL FROM segmentation_run sr JOIN image i ON i.id = sr.image_id "
            "JOIN plug p ON p.id = i.plug_id WHERE p.drillcore_id = %s AND sr.status = 'complete' ORDER BY sr.id",
            (hole_id,)).fetchall()
        core_runs = [rid for rid, registered in runs if registered]
        concepts: dict[str, ClassInfo] = {}
        log: dict[str, dict[float, float]] = {}
        for rid in core_runs:
            classes = _run_classes(conn, rid)
            for c in classes:
                concepts[c.uri] = c
            rows = conn.execute(
                "SELECT floor(x.depth_m / %s)::bigint AS b, u.i, avg(u.v) FROM roxel x, "
                "unnest(x.composition) WITH ORDINALITY AS u(v, i) WHERE x.run_id = %s AND x.depth_m IS NOT NULL "
                "GROUP BY 1, 2", (step_m, rid)).fetchall()
            for b, i, v in rows:
                c = classes[int(i) - 1]
                log.setdefault(c.uri, {})[(int(b) + 0.5) * step_m] = float(v)
        rocks = conn.execute(  # the latest rock of each plug
            "SELECT p.from_m, p.to_m, rc.mineral_uri, rc.proportion_area, c.pref_label, c.notation, c.properties "
            "FROM (SELECT DISTINCT ON (plug_id) id, plug_id FROM rock ORDER BY plug_id, run_id DESC NULLS LAST) r "
            "JOIN plug p ON p.id = r.plug_id JOIN rock_constituent rc ON rc.rock_id = r.id "
            "JOIN concept c ON c.uri = rc.mineral_uri WHERE p.drillcore_id = %s "
            "ORDER BY p.from_m, rc.proportion_area DESC",
            (hole_id,)).fetchall()
        for _f, _t, uri, _a, label, notation, props in rocks:
            if uri not in concepts:
                concepts[uri] = ClassInfo(len(concepts), uri, 0, "mineral", label, notation,
                                          colour=(props or {}).get("colour"))
    if not log and not rocks:
        raise CatalogueError(f"drill core {hole_name}: nothing ingested yet (no roxels of core images, no rocks)")
    uris = sorted(concepts, key=lambda u: concepts[u].index)
    colours = {u: _colour(concepts[u], i) for i, u in enumerate(uris)}
    fig, axes = plt.subplots(1, 2, figsize=(10, 12), sharey=True)
    ax = axes[0]
    if log:
        depths = np.array(sorted({d for v in log.values() for d in v}))
        stack = np.array([[log.get(u, {}).get(d, 0.0) for d in depths] for u in uris])
        left = np.zeros(depths.size)
        for u, vals in zip(uris, stack, strict=False):
            if np.any(vals > 0):
                ax.fill_betweenx(depths, left, left + vals, color=colours[u], linewidth=0)
            left = left + vals
    ax.set_title("roxels of core images")
    ax.set_xlabel("fraction")
    ax.set_xlim(0, 1)
    ax.set_ylabel("depth along hole (m)")
    ax = axes[1]
    spans = [d for v in log.values() for d in v] + [x[0] for x in rocks] + [x[1] for x in rocks]
    min_height = 0.005 * max(max(spans) - min(spans), step_m)
    for f_m, t_m in sorted({(x[0], x[1]) for x in rocks}):
        bar_left = 0.0
        for _f, _t, uri, a, *_ in [x for x in rocks if (x[0], x[1]) == (f_m, t_m)]:
            ax.barh((f_m + t_m) / 2, a, height=max(t_m - f_m, min_height), left=bar_left,
                    color=colours[uri], edgecolor="k", linewidth=0.3)
            bar_left += a
    ax.set_title("modal mineralogy of plugs (area)")
    ax.set_xlabel("fraction")
    ax.set_xlim(0, 1)
    axes[0].invert_yaxis()
    handles = [matplotlib.patches.Patch(color=colours[u],
                                        label=concepts[u].label if concepts[u].symbol == concepts[u].label
                                        else f"{concepts[u].symbol} {concepts[u].label}") for u in uris]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8)
    fig.suptitle(f"drill core {hole_name}")
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
