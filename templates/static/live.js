// Live progress on the archive list and detail pages: listens to
// /api/v1/events (Server-Sent Events) and updates state labels, progress
// bars and part rows in place. Without JavaScript the pages still work;
// they just need a reload.
(function () {
  "use strict";
  if (!window.EventSource) return;
  var labels = {
    receiving: "receiving", local: "local only", uploading: "backing up",
    backed_up: "backed up", uncached: "in the cloud only", caching: "fetching back",
    deleting: "deleting", damaged: "damaged"
  };
  var detail = document.querySelector("[data-archive-detail]");
  var source = new EventSource("/api/v1/events");
  source.addEventListener("archive", function (message) {
    var archive = JSON.parse(message.data);
    var percent = archive.parts_total > 0
      ? Math.min(100, Math.floor(archive.parts_remote * 100 / archive.parts_total)) : 100;
    var row = document.querySelector('tr[data-archive-id="' + archive.id + '"]');
    if (row) {
      var state = row.querySelector(".state");
      if (state) {
        state.textContent = labels[archive.state] || archive.state;
        state.className = "state state-" + archive.state;
      }
      var count = row.querySelector(".parts-count");
      if (count) count.textContent = archive.parts_remote + " / " + archive.parts_total;
      var bar = row.querySelector(".bar");
      if (bar) bar.style.width = percent + "%";
    }
    if (detail && detail.getAttribute("data-archive-detail") === archive.id) {
      var previous = detail.getAttribute("data-state");
      var label = document.getElementById("state");
      if (label) {
        label.textContent = labels[archive.state] || archive.state;
        label.className = "state state-" + archive.state;
      }
      // The buttons depend on the state: reload once it settles elsewhere.
      if (previous !== archive.state) {
        detail.setAttribute("data-state", archive.state);
        if (archive.state !== "uploading") window.location.reload();
      }
    }
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
