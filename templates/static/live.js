// Live progress on the archive list and detail pages: listens to
// /api/v1/events (Server-Sent Events) and updates state labels, progress
// bars, part rows, the last error and the detail page's buttons in place,
// never reloading the page. Without JavaScript the pages still work; they
// just need a reload.
(function () {
  "use strict";
  if (!window.EventSource) return;
  // The same words as `state_label` in src/web/pages/archives.rs: while
  // the remote is a folder on this box's own disk nothing is "off-site".
  var onBox = document.body.getAttribute("data-on-box-only") === "1";
  var labels = {
    receiving: "receiving", local: "not backed up yet",
    uploading: onBox ? "copying on this box" : "backing up",
    backed_up: onBox ? "on this box only" : "off-site",
    uncached: onBox ? "on this box only" : "off-site only", caching: "fetching back",
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
    var stored = state === "backed_up" || state === "uncached";
    element.className = "state state-" + (onBox && stored ? "on_box" : state);
    element.setAttribute("data-state", state);
  }
  function showPercent(scope, percent) {
    var bar = scope.querySelector(".bar");
    if (bar) bar.style.width = percent + "%";
    var progress = scope.querySelector(".progress");
    if (progress) progress.setAttribute("aria-label", percent + "% stored");
    var text = scope.querySelector(".percent");
    if (text) text.textContent = percent + "%";
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
      if (archive.state === "deleting") { row.parentNode.removeChild(row); return; }
      showPercent(row, percent);
    }
    if (!detail || detail.getAttribute("data-archive-detail") !== archive.id) return;
    detail.setAttribute("data-state", archive.state);
    showPercent(document, percent);
    var count = document.querySelector(".parts-count");
    if (count) count.textContent = archive.parts_remote + " of " + archive.parts_total;
    var storedText = document.getElementById("stored-text");
    if (storedText) {
      storedText.textContent = onBox
        ? percent + "% copied to the storage folder on this box. Not off-site: if this box is lost, so is this file."
        : percent + "% off-site.";
    }
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
