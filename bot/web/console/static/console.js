// lastmile support console: local times, and live updates by polling small JSON endpoints.
(function () {
  "use strict";
  var poll = parseFloat(document.body.dataset.poll || "0") * 1000;

  function localTimes(root) {
    (root || document).querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d)) { return; }
      var opts = el.dataset.format === "datetime"
        ? { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" }
        : { hour: "2-digit", minute: "2-digit" };
      el.textContent = d.toLocaleString([], opts);
      el.title = d.toLocaleString();
    });
  }

  function getJSON(url, done) {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); return null; }
        return r.ok ? r.json() : null;
      })
      .then(function (data) { if (data) { done(data); } })
      .catch(function () { /* offline for a moment: the next poll retries */ });
  }

  function pollQueue(table) {
    getJSON(table.dataset.url, function (data) {
      document.getElementById("queue-rows").innerHTML = data.html;
      document.getElementById("queue-count").textContent = data.count;
      document.title = (data.count ? "(" + data.count + ") " : "") + "Queue · lastmile support";
    });
  }

  function pollConversation(box) {
    getJSON(box.dataset.url + "?after=" + box.dataset.last, function (data) {
      var state = data.handoff ? data.handoff.status : "";
      if (state !== box.dataset.handoff) { window.location.reload(); return; }
      if (data.messages.length) {
        var nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
        box.insertAdjacentHTML("beforeend", data.html);
        box.dataset.last = data.last_id;
        localTimes(box);
        if (nearBottom) { box.scrollTop = box.scrollHeight; }
      }
    });
  }

  localTimes();
  var transcript = document.getElementById("transcript");
  if (transcript) { transcript.scrollTop = transcript.scrollHeight; }
  var queue = document.getElementById("queue");
  if (poll > 0 && queue) { setInterval(function () { pollQueue(queue); }, poll); }
  if (poll > 0 && transcript) { setInterval(function () { pollConversation(transcript); }, poll); }
  var reply = document.querySelector(".reply textarea");
  if (reply) {
    reply.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { reply.form.submit(); }
    });
  }

  // Messages page: the preview follows the wording as it is typed (the server renders it, as the Preview button).
  var wording = document.getElementById("wording-form");
  if (wording) {
    var timer = null;
    var token = document.querySelector("meta[name=csrf-token]").content;
    wording.elements.text.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        fetch(wording.dataset.previewUrl, { method: "POST", body: new FormData(wording), credentials: "same-origin",
                                            headers: { "X-CSRF-Token": token, Accept: "application/json" } })
          .then(function (r) { return r.ok ? r.json() : null; })
          .then(function (data) { if (data) { document.getElementById("preview").innerHTML = data.html; } })
          .catch(function () { /* the Preview button still works */ });
      }, 250);
    });
  }
})();
