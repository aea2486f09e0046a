/* The tracking page map: the driver's last position on OpenStreetMap tiles (Leaflet, served locally).
   Without tiles (offline, blocked) the marker still shows on a plain background. */
(function () {
  "use strict";
  var box = document.getElementById("map");
  if (!box || typeof L === "undefined") { return; }
  var lat = parseFloat(box.dataset.lat), lng = parseFloat(box.dataset.lng);
  if (isNaN(lat) || isNaN(lng)) { return; }
  box.innerHTML = "";
  box.classList.add("map-ready");
  var map = L.map(box, { scrollWheelZoom: false, attributionControl: true }).setView([lat, lng], 15);
  if (box.dataset.tiles) {
    L.tileLayer(box.dataset.tiles, { maxZoom: 19, attribution: box.dataset.attribution || "" }).addTo(map);
  }
  L.circleMarker([lat, lng], { radius: 10, color: "#fff", weight: 3, fillColor: "#1a73e8", fillOpacity: 1 })
    .addTo(map);
})();
