// Upload page: many files at once (picker or drag and drop onto the page),
// each its own archive, through tus-js-client (/static/tus.min.js, MIT).
// A visible queue with per-file and total progress, rate and time left;
// cancel per file; three at a time; resumable (tus-js-client remembers each
// file's upload in localStorage, so choosing it again continues where it
// stopped, and the row says from where); a warning before leaving
// mid-upload; empty files refused; a file with the same content as an
// archive the user already has is flagged once it has arrived.
(function () {
  "use strict";
  var PARALLEL = 3;
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var input = document.getElementById("file");
  var queue = document.getElementById("queue");
  var startButton = document.getElementById("start");
  var refused = document.getElementById("refused");
  var totalBox = document.getElementById("upload-status");
  var totalBar = document.getElementById("upload-bar");
  var totalText = document.getElementById("upload-text");
  var doneBox = document.getElementById("upload-done");
  var items = [];

  function human(bytes) {
    var units = ["B", "KB", "MB", "GB", "TB"];
    var i = 0;
    while (bytes >= 1000 && i < units.length - 1) { bytes /= 1000; i++; }
    return (i ? bytes.toFixed(1) : bytes) + " " + units[i];
  }
  function duration(seconds) {
    if (!isFinite(seconds)) return "";
    if (seconds < 60) return Math.ceil(seconds) + " seconds";
    if (seconds < 3600) return Math.ceil(seconds / 60) + " minutes";
    return (seconds / 3600).toFixed(1) + " hours";
  }
  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function serverMessage(error) {
    var response = error && error.originalResponse;
    if (response) {
      try { return JSON.parse(response.getBody()).message; } catch (e) { /* not JSON */ }
    }
    return "The upload failed: the appliance could not be reached. Choose the file again to continue where it stopped.";
  }

  function add(file) {
    if (file.size === 0) {
      var line = element("p", "", "“" + file.name + "” is empty (0 bytes): there is nothing to back up, so it was not added.");
      refused.appendChild(line);
      refused.hidden = false;
      return;
    }
    var item = { file: file, state: "ready", sent: 0, archive: null, upload: null };
    item.row = element("li", "upload-item");
    item.row.setAttribute("data-file", file.name);
    var label = element("label", "", "Name");
    item.nameInput = element("input");
    item.nameInput.value = file.name;
    item.nameInput.maxLength = 200;
    label.appendChild(item.nameInput);
    var head = element("div", "upload-head");
    head.appendChild(element("strong", "", file.name));
    head.appendChild(element("span", "muted", " " + human(file.size)));
    var progress = element("div", "progress");
    item.bar = element("div", "bar");
    progress.appendChild(item.bar);
    item.status = element("p", "item-status muted", "Ready.");
    item.cancel = element("button", "secondary cancel", "Remove");
    item.cancel.type = "button";
    item.cancel.addEventListener("click", function () { cancel(item); });
    item.row.appendChild(head);
    item.row.appendChild(label);
    item.row.appendChild(progress);
    item.row.appendChild(item.status);
    item.row.appendChild(item.cancel);
    queue.appendChild(item.row);
    items.push(item);
    showTotal();
  }

  function cancel(item) {
    if (item.state === "done") return;
    var wasRunning = item.state === "running";
    item.state = "cancelled";
    if (item.upload && wasRunning) item.upload.abort(true).catch(function () { /* gone already */ });
    item.status.textContent = wasRunning ? "Cancelled: nothing was kept." : "Removed.";
    item.cancel.hidden = true;
    item.row.classList.add("cancelled");
    pump();
    showTotal();
  }

  function start(item) {
    item.state = "running";
    item.nameInput.disabled = true;
    item.cancel.textContent = "Cancel";
    item.started = performance.now();
    item.status.textContent = "Starting…";
    var upload = new tus.Upload(item.file, {
      endpoint: location.origin + "/api/v1/uploads",
      chunkSize: 16 * 1024 * 1024,
      retryDelays: [0, 1000, 3000, 5000, 10000, 20000, 30000],
      headers: { "X-CSRF-Token": csrf },
      metadata: { name: item.nameInput.value.trim() || item.file.name, filename: item.file.name },
      removeFingerprintOnSuccess: true,
      onProgress: function (sent, total) {
        item.sent = sent;
        var percent = total ? Math.floor(sent * 100 / total) : 100;
        item.bar.style.width = percent + "%";
        var seconds = (performance.now() - item.started) / 1000;
        var rate = seconds > 0.5 ? sent / seconds : 0;
        item.status.textContent = percent + "% · " + human(sent) + " of " + human(total) +
          (rate > 0 ? " · " + human(rate) + "/s · " + duration((total - sent) / rate) + " left" : "");
        item.row.setAttribute("data-percent", String(percent));
        showTotal();
      },
      onAfterResponse: function (request, response) {
        var archive = response.getHeader("Archive-Id");
        if (archive) item.archive = archive;
        if (request.getMethod() === "HEAD" && item.row.hasAttribute("data-resumed")) {
          var offset = Number(response.getHeader("Upload-Offset") || 0);
          item.row.setAttribute("data-resumed-from", String(offset));
          item.status.textContent = "Continuing from " +
            Math.floor(offset * 100 / Math.max(1, item.file.size)) + "% (" + human(offset) + " had arrived).";
        }
      },
      onSuccess: function () {
        item.state = "done";
        item.sent = item.file.size;
        item.bar.style.width = "100%";
        item.cancel.hidden = true;
        item.status.textContent = "Done. ";
        if (item.archive) {
          var link = element("a", "", "Open “" + (item.nameInput.value || item.file.name) + "”");
          link.href = "/archives/" + item.archive;
          item.status.appendChild(link);
          flagDuplicate(item);
        }
        pump();
        showTotal();
      },
      onError: function (error) {
        if (item.state === "cancelled") return;
        item.state = "failed";
        item.status.className = "item-status error";
        item.status.textContent = serverMessage(error);
        pump();
        showTotal();
      }
    });
    item.upload = upload;
    upload.findPreviousUploads().then(function (previous) {
      if (previous.length) {
        upload.resumeFromPreviousUpload(previous[0]);
        item.row.setAttribute("data-resumed", "1");
        item.status.textContent = "Continuing where it stopped…";
      }
      if (item.state === "running") upload.start();
    });
  }

  // "Same content as …": another archive of this user has the same SHA-256.
  function flagDuplicate(item) {
    fetch("/api/v1/archives", { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : []; })
      .then(function (archives) {
        var mine = archives.filter(function (a) { return a.id === item.archive; })[0];
        if (!mine || !mine.size) return;
        var same = archives.filter(function (a) {
          return a.id !== mine.id && a.sha256 === mine.sha256 && a.state !== "deleting";
        })[0];
        if (!same) return;
        var note = element("p", "duplicate", "Same content as ");
        var link = element("a", "", "“" + same.name + "”");
        link.href = "/archives/" + same.id;
        note.appendChild(link);
        note.appendChild(document.createTextNode(": you may not need both."));
        item.row.appendChild(note);
        item.row.setAttribute("data-duplicate-of", same.id);
      })
      .catch(function () { /* only a hint */ });
  }

  function pump() {
    var running = items.filter(function (i) { return i.state === "running"; }).length;
    items.forEach(function (item) {
      if (item.state === "queued" && running < PARALLEL) { running++; start(item); }
    });
  }

  function showTotal() {
    var counted = items.filter(function (i) { return i.state !== "cancelled"; });
    var total = counted.reduce(function (sum, i) { return sum + i.file.size; }, 0);
    var sent = counted.reduce(function (sum, i) { return sum + i.sent; }, 0);
    var waiting = counted.filter(function (i) { return i.state === "ready"; }).length;
    startButton.hidden = waiting === 0;
    startButton.textContent = waiting === 1 ? "Upload 1 file" : "Upload " + waiting + " files";
    var busy = counted.some(function (i) { return i.state === "queued" || i.state === "running"; });
    var finished = counted.length > 0 && counted.every(function (i) { return i.state === "done" || i.state === "failed"; });
    totalBox.hidden = !busy && !finished;
    var percent = total ? Math.floor(sent * 100 / total) : 0;
    totalBar.style.width = percent + "%";
    var done = counted.filter(function (i) { return i.state === "done"; }).length;
    totalText.textContent = done + " of " + counted.length + " files done · " + percent + "% · " + human(sent) + " of " + human(total);
    doneBox.hidden = !finished;
  }

  function addAll(files) {
    for (var i = 0; i < files.length; i++) add(files[i]);
  }
  input.addEventListener("change", function () {
    addAll(input.files);
    input.value = "";
  });
  startButton.addEventListener("click", function () {
    items.forEach(function (item) { if (item.state === "ready") item.state = "queued"; });
    pump();
    showTotal();
  });
  // Drop files anywhere on the page.
  document.addEventListener("dragover", function (event) {
    event.preventDefault();
    document.body.classList.add("dragging");
  });
  document.addEventListener("dragleave", function (event) {
    if (!event.relatedTarget) document.body.classList.remove("dragging");
  });
  document.addEventListener("drop", function (event) {
    event.preventDefault();
    document.body.classList.remove("dragging");
    if (event.dataTransfer && event.dataTransfer.files) addAll(event.dataTransfer.files);
  });
  window.addEventListener("beforeunload", function (event) {
    if (items.some(function (i) { return i.state === "running" || i.state === "queued"; })) {
      event.preventDefault();
      event.returnValue = "";
    }
  });
})();
