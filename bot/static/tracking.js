/* The tracking page: the driver's last position on a map (Leaflet, served locally), and, while the order is on
   its way, a refresh of status, ETA, timeline, history and position every data-refresh seconds from
   data-live-url (paused while the tab is hidden, stopped once the order is no longer on its way).
   Without tiles (offline, blocked, none configured) the marker still shows on a plain background. */
(function () {
  "use strict";
  var box = document.getElementById("map");
  var map = null, marker = null;

  function showPosition(lat, lng) {
    if (!box || typeof L === "undefined" || isNaN(lat) || isNaN(lng)) { return; }
    if (map === null) {
      box.innerHTML = "";
      box.classList.add("map-ready");
      map = L.map(box, { scrollWheelZoom: false, attributionControl: true }).setView([lat, lng], 15);
      if (box.dataset.tiles) {
        // The page's own policy is no-referrer; tiles alone send our origin (never the path, which holds
        // the token): tile servers such as OpenStreetMap's refuse requests without a Referer.
        L.tileLayer(box.dataset.tiles, { maxZoom: 19, attribution: box.dataset.attribution || "",
                                         referrerPolicy: "strict-origin-when-cross-origin" }).addTo(map);
      }
      marker = L.circleMarker([lat, lng], { radius: 10, color: "#fff", weight: 3, fillColor: "#1a73e8",
                                            fillOpacity: 1 }).addTo(map);
    } else {
      marker.setLatLng([lat, lng]);
      map.panTo([lat, lng]);
    }
  }

  if (box) { showPosition(parseFloat(box.dataset.lat), parseFloat(box.dataset.lng)); }

  var page = document.getElementById("page");
  var url = page && page.dataset.liveUrl;
  var seconds = page ? parseFloat(page.dataset.refresh) : 0;
  if (!url || !(seconds > 0)) { return; }
  var timer = null, busy = false, stopped = false, last = Date.now();

  function byId(id) { return document.getElementById(id); }

  function setText(id, text) {
    var node = byId(id);
    if (node && node.textContent !== text) { node.textContent = text; }
    return node;
  }

  function showIf(node, shown) { if (node) { node.hidden = !shown; } }

  function fillList(list, items, render) {
    if (!list) { return; }
    while (list.firstChild) { list.removeChild(list.firstChild); }
    items.forEach(function (item) { list.appendChild(render(item)); });
  }

  function apply(data) {
    setText("status", data.status_label);
    var hero = byId("hero");
    if (hero) { hero.className = hero.className.replace(/\bstatus-\S+/, "status-" + data.status); }
    var reason = byId("reason");
    if (reason) {
      reason.textContent = data.reason ? reason.dataset.label + ": " + data.reason : "";
      showIf(reason, !!data.reason);
    }
    setText("eta", data.window || "");
    showIf(byId("eta-row"), !!data.window);
    fillList(byId("steps"), data.steps, function (step) {
      var li = document.createElement("li");
      li.textContent = step.label;
      if (step.done) { li.classList.add("done"); }
      if (step.current) { li.classList.add("current"); }
      return li;
    });
    fillList(byId("history"), data.history, function (item) {
      var li = document.createElement("li"), label = document.createElement("span"),
          when = document.createElement("time");
      label.textContent = item.label;
      when.textContent = item.when;
      li.appendChild(label);
      li.appendChild(when);
      return li;
    });
    showIf(byId("history-section"), data.history.length > 0);
    if (data.position) {
      showIf(byId("map-section"), true);
      showPosition(data.position.lat, data.position.lng);
      var time = byId("position-time");
      if (time && data.position.time) {
        time.textContent = time.dataset.label + " " + data.position.time;
        showIf(time, true);
      }
    } else if (data.delivered) {
      showIf(byId("map-section"), false);
    }
    if (data.delivered) {
      showIf(byId("instructions-section"), false);
      showIf(byId("delivered-now"), true);
    }
    if (!data.live) { stop(); }
  }

  function stop() {
    stopped = true;
    if (timer !== null) { clearTimeout(timer); timer = null; }
  }

  function schedule() {
    if (!stopped && timer === null && !document.hidden) { timer = setTimeout(refresh, seconds * 1000); }
  }

  function refresh() {
    timer = null;
    if (stopped || busy || document.hidden) { return; }
    busy = true;
    last = Date.now();
    fetch(url, { headers: { Accept: "application/json" }, cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        if (response.status === 404 || response.status === 410) { stop(); return null; }
        return response.ok ? response.json() : null;
      })
      .then(function (data) { if (data) { apply(data); } })
      .catch(function () { /* offline for a moment: try again at the next turn */ })
      .then(function () { busy = false; schedule(); });
  }

  // Page Visibility: nothing is fetched while the tab is hidden; back in view, at once if the last
  // refresh is older than the interval, else at the next turn.
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      if (timer !== null) { clearTimeout(timer); timer = null; }
    } else if (!stopped && Date.now() - last >= seconds * 1000) {
      refresh();
    } else {
      schedule();
    }
  });
  schedule();
})();
