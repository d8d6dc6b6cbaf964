/* The drill core page: plan and section of the trace, downhole log (SVG drawn here). */
(function () {
  "use strict";
  const data = MIS.pageData("mis-data");
  const urls = MIS.pageData("mis-links");
  const el = MIS.el;
  const hole = data.drillcore;
  const pts = data.trace.points;            // [x, y, z, depth] in local metres
  const collar = data.trace.collar;
  const plugUrl = (id) => urls.plug + id;

  function link(node, href) {
    node.style.cursor = "pointer";
    node.addEventListener("click", () => { window.location.href = href; });
  }

  // Equal-scale frame: data box -> svg box with margins; returns mapping functions.
  function frame(svg, xs, ys, margin) {
    const W = +svg.getAttribute("width"), H = +svg.getAttribute("height");
    let x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    const pad = 0.08 * Math.max(x1 - x0, y1 - y0, 10);
    x0 -= pad; x1 += pad; y0 -= pad; y1 += pad;
    const k = Math.min((W - margin.l - margin.r) / (x1 - x0), (H - margin.t - margin.b) / (y1 - y0));
    const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
    const mx = margin.l + (W - margin.l - margin.r) / 2, my = margin.t + (H - margin.t - margin.b) / 2;
    return {
      W, H, k,
      x: (v) => mx + (v - cx) * k, y: (v) => my - (v - cy) * k,
      xr: [cx - (mx - margin.l) / k, cx + (W - margin.r - mx) / k],
      yr: [cy - (H - margin.b - my) / k, cy + (my - margin.t) / k],
    };
  }
  function axes(svg, f, margin, xlabel, ylabel) {
    for (const v of MIS.ticks(f.xr[0], f.xr[1], 5)) {
      el(svg, "line", { class: "grid", x1: f.x(v), x2: f.x(v), y1: margin.t, y2: f.H - margin.b });
      el(svg, "text", { x: f.x(v), y: f.H - margin.b + 13, "text-anchor": "middle" }, String(Math.round(v)));
    }
    for (const v of MIS.ticks(f.yr[0], f.yr[1], 5)) {
      el(svg, "line", { class: "grid", x1: margin.l, x2: f.W - margin.r, y1: f.y(v), y2: f.y(v) });
      el(svg, "text", { x: margin.l - 4, y: f.y(v) + 4, "text-anchor": "end" }, String(Math.round(v)));
    }
    el(svg, "rect", { class: "axis", x: margin.l, y: margin.t, width: f.W - margin.l - margin.r, height: f.H - margin.t - margin.b });
    el(svg, "text", { x: (margin.l + f.W - margin.r) / 2, y: f.H - 6, "text-anchor": "middle" }, xlabel);
    el(svg, "text", { x: 12, y: (margin.t + f.H - margin.b) / 2, "text-anchor": "middle",
      transform: `rotate(-90 12 ${(margin.t + f.H - margin.b) / 2})` }, ylabel);
  }
  function atDepth(d) {   // interpolated [x, y, z] on the trace at depth d
    if (!pts.length) return null;
    if (d <= pts[0][3]) return pts[0];
    for (let i = 1; i < pts.length; i++) {
      if (d <= pts[i][3]) {
        const a = pts[i - 1], b = pts[i], t = (d - a[3]) / ((b[3] - a[3]) || 1);
        return [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]), a[2] + t * (b[2] - a[2]), d];
      }
    }
    return pts[pts.length - 1];
  }
  function depthMarks(svg, project) {
    const step = MIS.tickStep(hole.length_m, 6);
    for (let d = step; d < hole.length_m; d += step) {
      const p = atDepth(d);
      if (!p) break;
      const [sx, sy] = project(p);
      el(svg, "circle", { cx: sx, cy: sy, r: 2, fill: "#c62828" });
      el(svg, "text", { x: sx + 5, y: sy - 3, class: "depth-label" }, d + " m");
    }
  }
  function plugDots(svg, project) {
    for (const p of data.plugs) {
      if (p.x == null) continue;
      const [sx, sy] = project([p.x, p.y, p.z]);
      const c = el(svg, "circle", { class: "plug", cx: sx, cy: sy, r: 5, fill: MIS.lithologyColour(p.lithology) });
      el(c, "title", {}, `${p.name}: ${p.from_m}-${p.to_m} m, ${p.lithology || "no lithology"}`);
      link(c, plugUrl(p.id));
    }
  }

  function drawPlan() {
    const svg = document.getElementById("plan");
    MIS.clear(svg);
    if (!pts.length) { el(svg, "text", { x: 20, y: 30 }, "No trace (the hole has not been desurveyed)."); return; }
    const m = { l: 48, r: 14, t: 14, b: 34 };
    const rel = (p) => [p[0] - collar[0], p[1] - collar[1]];
    const f = frame(svg, pts.map((p) => rel(p)[0]), pts.map((p) => rel(p)[1]), m);
    axes(svg, f, m, "east of collar (m)", "north of collar (m)");
    const project = (p) => { const r = rel(p); return [f.x(r[0]), f.y(r[1])]; };
    el(svg, "polyline", { class: "trace", points: pts.map((p) => project(p).join(",")).join(" ") });
    const c0 = project(collar);
    el(svg, "circle", { class: "collar", cx: c0[0], cy: c0[1], r: 6 });
    depthMarks(svg, project);
    plugDots(svg, project);
    const ax = f.W - m.r - 18, ay = m.t + 8;   // north arrow
    el(svg, "path", { d: `M ${ax} ${ay} l 6 18 l -6 -5 l -6 5 z`, fill: "#333" });
    el(svg, "text", { x: ax, y: ay + 30, "text-anchor": "middle" }, "N");
  }

  function drawSection() {
    const svg = document.getElementById("section");
    MIS.clear(svg);
    if (!pts.length) return;
    const last = pts[pts.length - 1];
    let ux = last[0] - collar[0], uy = last[1] - collar[1];
    const n = Math.hypot(ux, uy);
    if (n < 1e-6) { const a = hole.azimuth_deg * Math.PI / 180; ux = Math.sin(a); uy = Math.cos(a); }
    else { ux /= n; uy /= n; }
    const along = (p) => (p[0] - collar[0]) * ux + (p[1] - collar[1]) * uy;
    const m = { l: 52, r: 14, t: 14, b: 34 };
    const f = frame(svg, pts.map(along), pts.map((p) => p[2]), m);
    const az = (Math.atan2(ux, uy) * 180 / Math.PI + 360) % 360;
    axes(svg, f, m, `horizontal distance towards ${az.toFixed(0)}° (m)`, "elevation (m)");
    const project = (p) => [f.x(along(p)), f.y(p[2])];
    el(svg, "polyline", { class: "trace", points: pts.map((p) => project(p).join(",")).join(" ") });
    const c0 = project(collar);
    el(svg, "circle", { class: "collar", cx: c0[0], cy: c0[1], r: 6 });
    depthMarks(svg, project);
    plugDots(svg, project);
  }

  // ------------------------------------------------------------------ downhole log
  const svgLog = document.getElementById("log");
  const legendBox = document.getElementById("log-legend");
  const statusBox = document.getElementById("log-status");
  const form = document.getElementById("log-range");
  const jsonLink = document.getElementById("log-json");

  function drawLog(log) {
    MIS.clear(svgLog);
    const W = +svgLog.getAttribute("width"), H = +svgLog.getAttribute("height");
    const top = 34, bottom = H - 12, left = 58;
    const tracks = { lith: [left + 6, left + 96], rock: [left + 112, left + 312], rox: [left + 328, W - 12] };
    const y = (d) => top + (d - log.from_m) / (log.to_m - log.from_m) * (bottom - top);
    const inRange = (a, b) => b >= log.from_m && a <= log.to_m;
    const band = (a, b, min) => { const y0 = y(Math.max(a, log.from_m)), y1 = y(Math.min(b, log.to_m));
      const h = Math.max(y1 - y0, min); return [Math.min(y0, bottom - h), h]; };

    for (const v of MIS.ticks(log.from_m, log.to_m, 10)) {
      el(svgLog, "line", { class: "grid", x1: left, x2: W - 12, y1: y(v), y2: y(v) });
      el(svgLog, "text", { x: left - 5, y: y(v) + 4, "text-anchor": "end" }, String(+v.toFixed(3)));
    }
    el(svgLog, "text", { x: 14, y: (top + bottom) / 2, "text-anchor": "middle",
      transform: `rotate(-90 14 ${(top + bottom) / 2})` }, "depth along hole (m)");
    const heads = { lith: "lithology (plugs)", rock: "rock modal composition", rox: "roxel class fractions" };
    for (const k in tracks) {
      const [a, b] = tracks[k];
      el(svgLog, "rect", { class: "axis", x: a, y: top, width: b - a, height: bottom - top });
      el(svgLog, "text", { x: (a + b) / 2, y: 12, "text-anchor": "middle", "font-weight": "600" }, heads[k]);
      if (k !== "lith") for (const f of [0, 0.5, 1]) {
        const x = a + f * (b - a);
        el(svgLog, "line", { class: "grid", x1: x, x2: x, y1: top, y2: bottom });
        el(svgLog, "text", { x, y: top - 5, "text-anchor": f === 0 ? "start" : f === 1 ? "end" : "middle" }, f.toFixed(1));
      }
    }
    // lithology of the plugs
    const lithG = el(svgLog, "g", { class: "track-lithology" });
    let lastLabel = -1e9;
    for (const p of data.plugs) {
      if (!inRange(p.from_m, p.to_m)) continue;
      const [y0, h] = band(p.from_m, p.to_m, 4);
      const r = el(lithG, "rect", { x: tracks.lith[0] + 2, y: y0, width: 28, height: h, fill: MIS.lithologyColour(p.lithology),
        stroke: "#333", "stroke-width": 0.6, "data-plug": p.id });
      el(r, "title", {}, `${p.name}: ${p.from_m}-${p.to_m} m, ${p.lithology || "no lithology"}`);
      link(r, plugUrl(p.id));
      if (y0 - lastLabel > 12) {
        const t = el(lithG, "text", { x: tracks.lith[0] + 34, y: y0 + Math.min(h, 10) / 2 + 4 }, p.lithology || p.name);
        link(t, plugUrl(p.id));
        lastLabel = y0;
      }
    }
    // One class order for every row of both tracks (the log's, most abundant first, then
    // the rocks' other classes by their total): a class keeps its place from row to row.
    const shown = data.rocks.filter((r) => r.composition && inRange(r.from_m, r.to_m));
    const extra = {};
    for (const r of shown) for (const [name, f] of Object.entries(r.composition)) {
      if (!log.classes.includes(name)) extra[name] = (extra[name] || 0) + f;
    }
    const order = [...log.classes, ...Object.keys(extra).sort((a, b) => extra[b] - extra[a] || (a < b ? -1 : 1))];
    // modal compositions of the rocks; the rocks of one plug (one per image) share its band
    const rockG = el(svgLog, "g", { class: "track-rocks" });
    const perPlug = {};
    for (const r of shown) (perPlug[r.plug_id] = perPlug[r.plug_id] || []).push(r);
    for (const rocks of Object.values(perPlug)) {
      rocks.forEach((r, k) => {
        const [b0, bh] = band(r.from_m, r.to_m, 6 * rocks.length);
        const h = bh / rocks.length, y0 = b0 + k * h;
        let x = tracks.rock[0];
        const wTrack = tracks.rock[1] - tracks.rock[0];
        for (const name of order) {
          const f = r.composition[name] || 0;
          if (f <= 0) continue;
          const rect = el(rockG, "rect", { x, y: y0, width: f * wTrack, height: h, fill: MIS.classColour(name),
            "data-rock": r.id, "data-class": name });
          el(rect, "title", {}, `${r.plug} (${r.depth_m.toFixed(2)} m, run ${r.run_id}): ${name} ${(100 * f).toFixed(1)} %`);
          link(rect, plugUrl(r.plug_id));
          x += f * wTrack;
        }
      });
    }
    // roxel class fractions per depth bin
    const roxG = el(svgLog, "g", { class: "track-roxels" });
    const wRox = tracks.rox[1] - tracks.rox[0];
    for (const b of log.bins) {
      const [y0, h] = band(b.top_m, b.bottom_m, 2);
      let x = tracks.rox[0];
      for (const name of order) {
        const f = b.fractions[name] || 0;
        if (f <= 0) continue;
        const rect = el(roxG, "rect", { x, y: y0, width: f * wRox, height: h, fill: MIS.classColour(name), class: "bin",
          "shape-rendering": "crispEdges", "data-class": name });
        el(rect, "title", {}, `${b.top_m.toFixed(3)}-${b.bottom_m.toFixed(3)} m (${b.roxels} roxels): ${name} ${(100 * f).toFixed(1)} %`);
        x += f * wRox;
      }
    }
    if (!log.bins.length) {
      el(roxG, "text", { x: tracks.rox[0] + 10, y: top + 20 }, "no roxels in this depth range");
    }
    MIS.legend(legendBox, order, MIS.classColour);
    svgLog.dataset.bins = String(log.bins.length);
    svgLog.dataset.rocks = String(rockG.childElementCount);
  }

  async function loadLog(from, to) {
    const q = new URLSearchParams({ bins: "200" });
    if (from !== undefined) q.set("from_m", from);
    if (to !== undefined) q.set("to_m", to);
    const url = urls.log + "?" + q;
    jsonLink.href = url;
    try {
      const log = await MIS.getJSON(url);
      drawLog(log);
      statusBox.textContent = `${log.bins.length} depth bins of ${log.bin_m.toPrecision(3)} m with roxels between ${log.from_m} and ${log.to_m} m`;
    } catch (err) {
      statusBox.textContent = "Could not load the log: " + err.message;
    }
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    loadLog(form.from_m.value, form.to_m.value);
  });
  document.getElementById("log-all").addEventListener("click", () => {
    form.from_m.value = 0; form.to_m.value = hole.length_m; loadLog();
  });
  drawPlan();
  drawSection();
  loadLog();
})();
