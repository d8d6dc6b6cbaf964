/* MIS page helpers: colours, SVG drawing, OGC API paging. No dependencies. */
(function (global) {
  "use strict";
  const SVGNS = "http://www.w3.org/2000/svg";

  // Colours for common mineral symbols (IMA) and segmentation classes; others hash to a palette.
  // Any two differ by at least 15 in CIELAB (delta E 1976; tests/test_pages.py checks it):
  // pyrite and chalcopyrite, or magnetite and the epoxy, must not look alike on a log.
  const KNOWN = {
    Ccp: "#e6b800", Py: "#8d6e00", Bn: "#9c27b0", Cct: "#5e35b1", Cv: "#3949ab", Mol: "#a1887f",
    Mag: "#00695c", Hem: "#b71c1c", Gn: "#455a64", Sp: "#ff7043", Au: "#ffab00",
    Qz: "#b0bec5", Pl: "#a5d6a7", Kfs: "#f48fb1", Bt: "#6d4c41", Ms: "#dce775", Chl: "#66bb6a",
    Ser: "#fff9c4", Cal: "#80deea", Anh: "#b39ddb", Ep: "#c0ca33", Amp: "#2e7d32", Hbl: "#2e7d32",
    "pore/epoxy": "#212121", "pore-epoxy": "#212121", epoxy: "#212121", pore: "#212121", background: "#ffffff",
  };
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173"];
  const LITHOLOGY = {
    andesite: "#8e9aaf", dacite: "#b8c0ff", granodiorite: "#f4a261", porphyry: "#e76f51",
    breccia: "#6d597a", diorite: "#2a9d8f", granite: "#f6bd60", basalt: "#495057",
  };

  function hash(text) {
    let h = 0;
    for (let i = 0; i < text.length; i++) h = (h * 31 + text.charCodeAt(i)) | 0;
    return Math.abs(h);
  }
  function classColour(name) {
    if (!name) return "#999";
    if (KNOWN[name]) return KNOWN[name];
    const lower = name.toLowerCase();
    for (const k in KNOWN) if (k.toLowerCase() === lower) return KNOWN[k];
    if (lower.includes("pore") || lower.includes("epoxy")) return "#212121";
    return PALETTE[hash(name) % PALETTE.length];
  }
  function lithologyColour(name) {
    if (!name) return "#bbb";
    const lower = name.toLowerCase();
    for (const k in LITHOLOGY) if (lower.includes(k)) return LITHOLOGY[k];
    return PALETTE[hash(lower) % PALETTE.length];
  }

  function el(parent, tag, attrs, text) {
    const node = document.createElementNS(SVGNS, tag);
    for (const k in attrs || {}) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  // "Nice" tick step for a range and a wanted number of ticks.
  function tickStep(span, wanted) {
    const raw = span / Math.max(1, wanted);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 2.5, 5, 10]) if (raw <= m * mag) return m * mag;
    return 10 * mag;
  }
  function ticks(lo, hi, wanted) {
    const step = tickStep(hi - lo || 1, wanted);
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(+v.toFixed(10));
    return out;
  }

  async function getJSON(url) {
    const r = await fetch(url, { headers: { Accept: "application/json" } });
    if (!r.ok) throw new Error(url + ": HTTP " + r.status);
    return r.json();
  }
  // Every feature of an OGC API items listing, following "next" links.
  async function fetchAll(url, maxPages) {
    const features = [];
    let next = url, pages = 0;
    while (next && pages < (maxPages || 50)) {
      const body = await getJSON(next);
      features.push(...(body.features || []));
      pages++;
      const link = (body.links || []).find((l) => l.rel === "next");
      next = link ? link.href : null;
    }
    return features;
  }

  function legend(container, names, colour) {
    container.textContent = "";
    for (const n of names) {
      const s = document.createElement("span");
      const i = document.createElement("i");
      i.style.background = colour(n);
      s.appendChild(i);
      s.appendChild(document.createTextNode(n));
      container.appendChild(s);
    }
  }
  function paintSwatches() {
    document.querySelectorAll(".mis-swatch[data-class]").forEach((s) => { s.style.background = classColour(s.dataset.class); });
    document.querySelectorAll(".mis-swatch[data-lithology]").forEach((s) => { s.style.background = lithologyColour(s.dataset.lithology); });
  }
  function pageData(id) {
    const node = document.getElementById(id || "mis-data");
    return node ? JSON.parse(node.textContent) : null;
  }

  global.MIS = { SVGNS, KNOWN, classColour, lithologyColour, el, clear, ticks, tickStep, getJSON, fetchAll, legend,
    paintSwatches, pageData };
  document.addEventListener("DOMContentLoaded", paintSwatches);
})(window);
