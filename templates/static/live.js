// Live progress on the archive list and detail pages: listens to
// /api/v1/events (Server-Sent Events) and updates state labels, progress
// bars, part rows, the last error and the detail page's buttons in place,
// never reloading the page. Without JavaScript the pages still work; they
// just need a reload.
(function () {
  "use strict";
  if (!window.EventSource) return;
  var labels = {
    receiving: "receiving", local: "local only", uploading: "backing up",
    backed_up: "backed up", uncached: "in the cloud only", caching: "fetching back",
    deleting: "deleting", damaged: "damaged"
  };
  var localStates = { local: true, uploading: true, backed_up: true };
  // The same rules as `actions_allowed` in src/web/pages/archives.rs.
  function allowed(archive) {
    return {
      download: !!localStates[archive.state],
      uncache: archive.state === "backed_up" && archive.parts_remote >= archive.parts_total,
      cache: archive.state === "uncached",
      delete: archive.state !== "deleting"
    };
  }
  function setState(element, state) {
    element.textContent = labels[state] || state;
    element.className = "state state-" + state;
  }
  var detail = document.querySelector("[data-archive-detail]");
  var source = new EventSource("/api/v1/events");
  source.addEventListener("open", function () {
    document.documentElement.setAttribute("data-live", "connected");
  });
  source.addEventListener("archive", function (message) {
    var archive = JSON.parse(message.data);
    var percent = archive.parts_total > 0
      ? Math.min(100, Math.floor(archive.parts_remote * 100 / archive.parts_total)) : 100;
    var row = document.querySelector('tr[data-archive-id="' + archive.id + '"]');
    if (row) {
      var state = row.querySelector(".state");
      if (state) setState(state, archive.state);
      var count = row.querySelector(".parts-count");
      if (count) count.textContent = archive.parts_remote + " / " + archive.parts_total;
      var bar = row.querySelector(".bar");
      if (bar) bar.style.width = percent + "%";
      var progress = row.querySelector(".progress");
      if (progress) {
        progress.title = archive.parts_remote + " of " + archive.parts_total + " parts stored remotely";
      }
    }
    if (!detail || detail.getAttribute("data-archive-detail") !== archive.id) return;
    detail.setAttribute("data-state", archive.state);
    var label = document.getElementById("state");
    if (label) setState(label, archive.state);
    var show = allowed(archive);
    var actions = document.querySelectorAll("#actions [data-action]");
    for (var i = 0; i < actions.length; i++) {
      actions[i].hidden = !show[actions[i].getAttribute("data-action")];
    }
    var errors = document.querySelectorAll(".last-error");
    for (var j = 0; j < errors.length; j++) errors[j].hidden = !archive.last_error;
    var error = document.getElementById("last-error");
    if (error) error.textContent = archive.last_error || "";
  });
  source.addEventListener("part", function (message) {
    var part = JSON.parse(message.data);
    if (!detail || detail.getAttribute("data-archive-detail") !== part.archive_id) return;
    var row = document.querySelector('tr[data-part-index="' + part.index + '"]');
    if (!row) return;
    row.className = part.remote ? "part remote" : "part";
    var cell = row.querySelector(".part-remote");
    if (cell) cell.textContent = part.remote ? "stored" : "local only";
  });
})();
