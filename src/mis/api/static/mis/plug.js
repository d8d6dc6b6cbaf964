/* The plug page: its images in OpenSeadragon (IIIF) with the grains overlaid as SVG.
   Grain outlines come from /mis/api/image/{id}/grains.json in image pixels; the overlay's
   transform follows the viewport on every redraw. */
(function () {
  "use strict";
  const data = MIS.pageData("mis-data");
  const images = (data && data.images) || [];
  const host = document.getElementById("osd");
  if (!images.length || !host) return;
  if (typeof OpenSeadragon === "undefined") {
    host.textContent = "The image viewer is not available (the IIIF routes are not served here).";
    return;
  }
  const select = document.getElementById("image-select");
  const show = document.getElementById("show-grains");
  const opacity = document.getElementById("grain-opacity");
  const status = document.getElementById("grain-status");
  const legendBox = document.getElementById("grain-legend");

  const viewer = OpenSeadragon({
    id: "osd", prefixUrl: data.osd_images, tileSources: images.map((im) => im.info_url),
    sequenceMode: images.length > 1, showReferenceStrip: false, crossOriginPolicy: "Anonymous",
    maxZoomPixelRatio: 4, showNavigator: true, navigatorPosition: "BOTTOM_RIGHT",
  });
  window.misViewer = viewer;

  const svg = MIS.el(null, "svg", { class: "mis-grains" });
  const g = MIS.el(svg, "g", {});
  viewer.canvas.appendChild(svg);
  let page = 0;

  function place() {
    const item = viewer.world.getItemAt(0);
    if (!item) return;
    const o = item.imageToViewerElementCoordinates(new OpenSeadragon.Point(0, 0));
    const e = item.imageToViewerElementCoordinates(new OpenSeadragon.Point(1000, 0));
    const k = (e.x - o.x) / 1000;
    g.setAttribute("transform", `translate(${o.x} ${o.y}) scale(${k})`);
  }
  viewer.addHandler("update-viewport", place);
  viewer.addHandler("resize", place);

  function restyle() {
    svg.style.display = show.checked ? "" : "none";
    g.setAttribute("fill-opacity", opacity.value);
  }
  show.addEventListener("change", restyle);
  opacity.addEventListener("input", restyle);

  let token = 0;
  async function loadGrains(i) {
    const mine = ++token;
    MIS.clear(g);
    svg.dataset.image = String(images[i].id);
    svg.dataset.loaded = "";
    status.textContent = "loading grains…";
    try {
      const body = await MIS.getJSON(images[i].grains_url + "?limit=4000");
      if (mine !== token) return;
      const counts = {};
      for (const gr of body.grains) {
        const colour = MIS.classColour(gr.mineral);
        const p = MIS.el(g, "path", { d: gr.d, fill: colour, "data-mineral": gr.mineral, "data-grain": gr.id });
        MIS.el(p, "title", {}, `grain ${gr.id}: ${gr.mineral}, ${gr.area_um2} µm², ECD ${gr.ecd_um} µm`);
        counts[gr.mineral] = (counts[gr.mineral] || 0) + 1;
      }
      const names = Object.keys(counts).sort((a, b) => counts[b] - counts[a]);
      MIS.legend(legendBox, names, MIS.classColour);
      legendBox.querySelectorAll("span").forEach((s, k) => s.appendChild(document.createTextNode(" (" + counts[names[k]] + ")")));
      status.textContent = body.run_id == null ? "this image has not been segmented yet"
        : `${body.grains.length} of ${body.total} grains shown (largest first), run ${body.run_id}`;
      svg.dataset.loaded = String(body.grains.length);
      place();
    } catch (err) {
      status.textContent = "Could not load the grains: " + err.message;
      svg.dataset.loaded = "error";
    }
  }

  viewer.addHandler("open", () => { place(); });
  viewer.addHandler("page", (ev) => { page = ev.page; select.value = String(page); loadGrains(page); });
  select.addEventListener("change", () => {
    const i = +select.value;
    if (images.length > 1) viewer.goToPage(i);
  });
  restyle();
  loadGrains(0);
})();
