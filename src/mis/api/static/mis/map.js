/* The map page: deposits, collars and traces from the OGC API on a Leaflet map.
   The base layer is a plain background with a graticule (works offline); an OpenStreetMap
   layer can be switched on in the layer control and stays blank without internet. */
(function () {
  "use strict";
  const node = document.getElementById("map");
  const root = node.dataset.root;
  const holeUrl = node.dataset.drillcore;
  const status = document.getElementById("map-status");
  const map = L.map(node, { zoomSnap: 0.25, worldCopyJump: false }).setView([0, 0], 2);
  window.misMap = map;
  L.control.scale({ imperial: false }).addTo(map);

  // ---- graticule: lines every "nice" step of degrees, labelled on the left and bottom
  const graticule = L.layerGroup();
  const STEPS = [30, 10, 5, 2, 1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 0.0005];
  function drawGraticule() {
    graticule.clearLayers();
    const b = map.getBounds();
    const span = Math.max(b.getEast() - b.getWest(), b.getNorth() - b.getSouth());
    const step = STEPS.find((s) => span / s >= 4) || STEPS[STEPS.length - 1];
    const digits = Math.max(0, -Math.floor(Math.log10(step)) + (step < 1 && String(step).includes("5") ? 1 : 0));
    const style = { color: "#90a4ae", weight: 1, opacity: 0.6, interactive: false, className: "mis-graticule" };
    const south = Math.max(-85, b.getSouth()), north = Math.min(85, b.getNorth());
    for (let lon = Math.ceil(b.getWest() / step) * step; lon <= b.getEast(); lon += step) {
      graticule.addLayer(L.polyline([[south, lon], [north, lon]], style));
      graticule.addLayer(L.marker([south, lon], { interactive: false, icon: L.divIcon({
        className: "mis-graticule-label", html: lon.toFixed(digits) + "°", iconSize: null, iconAnchor: [-2, 14] }) }));
    }
    for (let lat = Math.ceil(south / step) * step; lat <= north; lat += step) {
      graticule.addLayer(L.polyline([[lat, b.getWest()], [lat, b.getEast()]], style));
      graticule.addLayer(L.marker([lat, b.getWest()], { interactive: false, icon: L.divIcon({
        className: "mis-graticule-label", html: lat.toFixed(digits) + "°", iconSize: null, iconAnchor: [-2, 12] }) }));
    }
  }
  map.on("moveend zoomend resize", drawGraticule);

  const plain = L.layerGroup();  // the offline base: the map's own background colour
  const osm = L.tileLayer("https://tile.openstreetmap.org/{z}/{x}/{y}.png", {
    maxZoom: 19, attribution: "&copy; OpenStreetMap contributors (needs internet)" });
  plain.addTo(map);
  graticule.addTo(map);

  const deposits = L.layerGroup().addTo(map);
  const traces = L.layerGroup().addTo(map);
  const collars = L.layerGroup().addTo(map);
  L.control.layers(
    { "Plain background (offline)": plain, "OpenStreetMap (online only)": osm },
    { "Graticule": graticule, "Deposits": deposits, "Drill core traces": traces, "Collars": collars },
    { collapsed: false }).addTo(map);

  function esc(s) { const d = document.createElement("div"); d.textContent = s == null ? "" : String(s); return d.innerHTML; }
  const open = (id) => () => { window.location.href = holeUrl + id; };

  async function load() {
    const q = "?f=json&limit=1000";
    const [dep, holes, lines] = await Promise.all([
      MIS.fetchAll(root + "collections/deposits/items" + q),
      MIS.fetchAll(root + "collections/drillcores/items" + q),
      MIS.fetchAll(root + "collections/drillcore-traces/items" + q)]);
    const bounds = L.latLngBounds([]);
    for (const f of dep) {
      if (!f.geometry) continue;
      const layer = L.geoJSON(f, {
        style: { color: "#ef6c00", weight: 2, fillColor: "#ffb74d", fillOpacity: 0.18, className: "mis-deposit" },
        pointToLayer: (feat, ll) => L.circleMarker(ll, { radius: 9, className: "mis-deposit" }),
      });
      const p = f.properties || {};
      layer.bindPopup("<b>" + esc(p.name) + "</b><br>" + esc(p.depositModel || "") + "<br>" +
        esc(p.commodities || "") + "<br>" + esc(p.drillcoreCount) + " drill cores<br>" +
        '<a href="' + root + "collections/deposits/items/" + f.id + '">feature</a>');
      deposits.addLayer(layer);
      bounds.extend(layer.getBounds());
    }
    for (const f of lines) {
      if (!f.geometry) continue;
      const layer = L.geoJSON(f, { style: { color: "#c62828", weight: 3, opacity: 0.85, className: "mis-trace" } });
      layer.on("click", open(f.id));
      layer.bindTooltip(esc(f.properties.name) + " trace (plan view)", { sticky: true });
      traces.addLayer(layer);
      bounds.extend(layer.getBounds());
    }
    for (const f of holes) {
      if (!f.geometry) continue;
      const c = f.geometry.coordinates;
      const p = f.properties || {};
      const m = L.circleMarker([c[1], c[0]], { radius: 7, color: "#b71c1c", weight: 2, fillColor: "#fff",
        fillOpacity: 1, className: "mis-collar" });
      m.bindTooltip(esc(p.name), { permanent: true, direction: "right", offset: [8, 0], className: "mis-collar-label" });
      m.on("click", open(f.id));
      m.feature = f;
      collars.addLayer(m);
      bounds.extend(m.getLatLng());
    }
    status.textContent = dep.length + " deposit(s), " + holes.length + " drill core(s), " + lines.length +
      " trace(s). Click a collar or trace to open its drill core page.";
    // the status box sits over the map's bottom edge: keep the data clear of it
    const below = status.offsetHeight + 20;
    if (bounds.isValid()) map.fitBounds(bounds, { paddingTopLeft: [30, 30], paddingBottomRight: [30, 30 + below] });
    drawGraticule();
    node.dataset.loaded = String(holes.length);
  }
  load().catch((err) => {
    status.textContent = "Could not load the map data: " + err.message;
    node.dataset.loaded = "error";
  });
})();
