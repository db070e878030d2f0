// Live progress on the archive list and detail pages: listens to
// /api/v1/events (Server-Sent Events) and updates state labels, names,
// progress bars with rate and time left, part rows, the last error and the
// detail page's buttons in place, never reloading the page. A new archive,
// a deleted one or a changed state has the server render the list, the
// unfinished uploads and the notes ("waiting for the upload window") again:
// fetched and swapped in, not reloaded. Without JavaScript the pages still
// work; they just need a reload.
(function () {
  "use strict";
  if (!window.EventSource) return;
  // The same words as `state_label` in src/web/pages/archives.rs: while
  // the remote is a folder on this box's own disk nothing is "off-site".
  // The page says how stored archives are called while the storage is
  // not off-site (this box's disk, a USB disk, unreachable).
  var onBox = document.body.getAttribute("data-on-box-only") === "1";
  var storedHere = document.body.getAttribute("data-stored-label") || "on this box only";
  // "off-site in 2 places" when more than one destination is off-site.
  var offSite = document.body.getAttribute("data-off-site-label") || "off-site";
  var labels = {
    receiving: "receiving", local: "not backed up yet",
    uploading: onBox ? "copying on this box" : "backing up",
    backed_up: onBox ? storedHere : offSite,
    uncached: onBox ? storedHere : "off-site only", caching: "fetching back",
    deleting: "deleting", damaged: "damaged", trashed: "in the trash"
  };
  // The same colours as `bar_class` in src/web/pages/archives.rs: green
  // only for what is off-site.
  function barKind(state) {
    if (state === "damaged") return "bar-damaged";
    if (state === "caching") return "bar-fetching";
    return onBox ? "bar-on-box" : "bar-off-site";
  }
  // Archives that leave the list: being deleted, or moved to the trash.
  function gone(archive) {
    return archive.state === "deleting" || archive.state === "trashed";
  }
  var localStates = { local: true, uploading: true, backed_up: true };
  // The same rules as `actions_allowed` in src/web/pages/archives.rs.
  function allowed(archive) {
    return {
      download: !!localStates[archive.state],
      uncache: archive.state === "backed_up" && archive.parts_remote >= archive.parts_total,
      cache: archive.state === "uncached",
      delete: !gone(archive)
    };
  }
  function setState(element, state) {
    element.textContent = labels[state] || state;
    var stored = state === "backed_up" || state === "uncached";
    element.className = "state state-" + (onBox && stored ? "on_box" : state);
    element.setAttribute("data-state", state);
  }
  function showPercent(scope, percent, state) {
    var bar = scope.querySelector(".bar");
    if (bar) bar.style.width = percent + "%";
    var progress = scope.querySelector(".progress");
    if (progress) {
      progress.setAttribute("aria-label", percent + (state === "caching" ? "% fetched" : "% stored"));
      progress.className = progress.className.replace(/\bbar-[a-z-]+/g, "").trim() + " " + barKind(state);
    }
    var text = scope.querySelector(".percent");
    if (text) text.textContent = percent + "%";
  }
  function human(bytes) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var i = 0;
    while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i++; }
    return (i ? bytes.toFixed(1) : Math.round(bytes)) + " " + units[i];
  }
  function duration(seconds) {
    if (seconds < 60) return "less than a minute left";
    if (seconds < 3600) return "about " + Math.round(seconds / 60) + " minutes left";
    if (seconds < 172800) return "about " + (seconds / 3600).toFixed(1) + " hours left";
    return "about " + Math.round(seconds / 86400) + " days left";
  }
  // Rate and time left from what the events showed since the page opened.
  var seen = {};
  // Backups: the bytes of the parts that landed since the first one this
  // page saw (part events carry their length); fetch-backs: the bytes
  // fetched. What is left: the share of parts not stored yet.
  var landed = {};
  function partLanded(part) {
    if (!part.remote || part.length === undefined) return;
    var now = performance.now();
    var entry = landed[part.archive_id];
    if (!entry) { landed[part.archive_id] = { time: now, bytes: 0 }; return; }
    entry.bytes += part.length;
    entry.last = now;
  }
  function rateText(archive, size) {
    var fetching = archive.state === "caching" && archive.bytes_fetched !== undefined;
    var moving = fetching || archive.state === "uploading" ||
      (archive.state === "backed_up" && archive.parts_remote < archive.parts_total);
    if (!moving || !archive.parts_total || !size) {
      delete seen[archive.id]; delete landed[archive.id]; return "";
    }
    var now = performance.now();
    var rate = 0;
    var left;
    var prefix = "";
    if (fetching) {
      var done = archive.bytes_fetched;
      prefix = "Fetched " + Math.floor(done * 100 / size) + "% · ";
      var first = seen[archive.id];
      if (!first || done < first.done) seen[archive.id] = { time: now, done: done };
      else if (now - first.time >= 1000) rate = (done - first.done) * 1000 / (now - first.time);
      left = size - done;
    } else {
      var entry = landed[archive.id];
      if (entry && entry.last && entry.last - entry.time >= 1000) {
        rate = entry.bytes * 1000 / (entry.last - entry.time);
      }
      left = size * (archive.parts_total - archive.parts_remote) / archive.parts_total;
    }
    if (!(rate > 0)) return prefix;
    return prefix + human(rate) + "/s · " + duration(left / rate);
  }
  // A fetch-back shows the share fetched; anything else the parts stored.
  function percentOf(archive, size) {
    if (archive.state === "caching") {
      return archive.bytes_fetched !== undefined && size > 0
        ? Math.min(100, Math.floor(archive.bytes_fetched * 100 / size)) : 0;
    }
    return archive.parts_total > 0
      ? Math.min(100, Math.floor(archive.parts_remote * 100 / archive.parts_total)) : 100;
  }
  // One home page row from an archive event.
  function showRow(row, archive) {
    var state = row.querySelector(".state");
    if (state) setState(state, archive.state);
    var link = row.querySelector("td.name a");
    if (link && archive.name) link.textContent = archive.name;
    showPercent(row, percentOf(archive, Number(row.getAttribute("data-size"))), archive.state);
    var eta = row.querySelector(".eta");
    if (eta) eta.textContent = rateText(archive, Number(row.getAttribute("data-size")));
  }
  // The last event of each archive, applied again to rows the server
  // rendered (an event may have come while the page was fetched).
  var latest = {};
  var pending = null;
  function refresh() {
    if (pending) return;
    pending = setTimeout(function () {
      fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.text();
        })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html");
          ["archive-list", "uploads-in-progress", "transfer-notes", "stored-text", "copies-text"].forEach(function (id) {
            var now = document.getElementById(id);
            var next = fresh.getElementById(id);
            if (now && next) now.replaceWith(document.importNode(next, true));
          });
          if (window.piarchiveBars) window.piarchiveBars(document);
          Object.keys(latest).forEach(function (id) {
            var row = document.querySelector('tr[data-archive-id="' + id + '"]');
            if (row && !gone(latest[id])) showRow(row, latest[id]);
          });
          if (window.piarchiveTimes) window.piarchiveTimes();
        })
        .catch(function () { /* the next event tries again */ })
        .then(function () { pending = null; });
    }, 300);
  }
  var detail = document.querySelector("[data-archive-detail]");
  var list = document.getElementById("archive-list");
  // The stream's listeners, attached to every EventSource opened: the
  // server sends a heartbeat event every 15 s, so a stream silent for
  // longer than a heartbeat (and a margin) is dead — a Wi-Fi hop, a
  // sleeping laptop, a server restart — and a new one is opened. A stream
  // the server replaced (this user opened a newer page past the per-user
  // cap) is not reopened: the newer page has it.
  var HEARTBEAT_MS = 15000, MARGIN_MS = 5000;
  var listeners = {};
  var source = { addEventListener: function (name, fn) { listeners[name] = fn; } };
  var stream = null, lastSeen = 0, watchdog = null;
  function noteAlive() { lastSeen = Date.now(); }
  function connect() {
    if (stream) stream.close();
    noteAlive();
    stream = new EventSource("/api/v1/events");
    Object.keys(listeners).forEach(function (name) {
      stream.addEventListener(name, function (message) { noteAlive(); listeners[name](message); });
    });
    stream.addEventListener("heartbeat", noteAlive);
    stream.addEventListener("replaced", function () {
      stream.close();
      clearInterval(watchdog);
      document.documentElement.setAttribute("data-live", "replaced");
    });
  }
  source.addEventListener("open", function () {
    document.documentElement.setAttribute("data-live", "connected");
  });
  source.addEventListener("archive", function (message) {
    var archive = JSON.parse(message.data);
    latest[archive.id] = archive;
    var row = document.querySelector('tr[data-archive-id="' + archive.id + '"]');
    if (row) {
      var state = row.querySelector(".state");
      if (state && state.getAttribute("data-state") !== archive.state) refresh();
      if (gone(archive)) { row.parentNode.removeChild(row); return; }
      showRow(row, archive);
    } else if (list && !gone(archive)) {
      refresh();
    }
    if (!detail || detail.getAttribute("data-archive-detail") !== archive.id) return;
    if (detail.getAttribute("data-state") !== archive.state) refresh();
    detail.setAttribute("data-state", archive.state);
    if (archive.name) detail.textContent = archive.name;
    var rate = document.getElementById("transfer-rate");
    if (rate) rate.textContent = rateText(archive, Number(detail.getAttribute("data-size")));
    var percent = percentOf(archive, Number(detail.getAttribute("data-size")));
    showPercent(document.querySelector(".summary") || document, percent, archive.state);
    var count = document.querySelector(".parts-count");
    if (count) count.textContent = archive.parts_remote + " of " + archive.parts_total;
    var storedText = document.getElementById("stored-text");
    if (storedText) {
      // The server's words (swapped in by refresh() when the state
      // changes); only the number moves here.
      if (archive.state === "caching") {
        storedText.textContent = "Fetching it back onto this box: " + percent + "%.";
      } else if (/^\d+%/.test(storedText.textContent)) {
        var stored = percentOf({ state: "stored", parts_total: archive.parts_total, parts_remote: archive.parts_remote });
        storedText.textContent = storedText.textContent.replace(/^\d+%/, stored + "%");
      }
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
    partLanded(part);
    if (!detail || detail.getAttribute("data-archive-detail") !== part.archive_id) return;
    var row = document.querySelector('tr[data-part-index="' + part.index + '"]');
    if (!row) return;
    row.className = part.remote ? "part remote" : "part";
    var cell = row.querySelector(".part-remote");
    if (cell) cell.textContent = part.remote ? "stored" : "local only";
  });
  connect();
  watchdog = setInterval(function () {
    if (Date.now() - lastSeen > HEARTBEAT_MS + MARGIN_MS) {
      document.documentElement.setAttribute("data-live", "reconnecting");
      connect();
    }
  }, 1000);
})();
