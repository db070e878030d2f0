// Upload page: many files at once (picker, a whole folder, or drag and drop
// of files and folders onto the page), each its own archive, through
// tus-js-client (/static/tus.min.js, MIT). Uploads start as soon as files
// are chosen. A file from a folder keeps its place in it (tus metadata
// `relative_path`, the archive's `path`). A visible queue with per-file and
// total progress, rate and time left; cancel per file; three at a time; a
// name changed in the queue is given to the archive when it has arrived;
// resumable (tus-js-client remembers each file's upload in localStorage, so
// choosing it again continues where it stopped, and the row says from
// where); a warning before leaving mid-upload; empty files refused; a file
// with the same content as an archive the user already has is flagged once
// it has arrived. Sizes in binary units (KiB, MiB), as everywhere else.
(function () {
  "use strict";
  var PARALLEL = 3;
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var input = document.getElementById("file");
  var queue = document.getElementById("queue");
  var folderInput = document.getElementById("folder");
  var refused = document.getElementById("refused");
  var totalBox = document.getElementById("upload-status");
  var totalBar = document.getElementById("upload-bar");
  var totalText = document.getElementById("upload-text");
  var doneBox = document.getElementById("upload-done");
  var items = [];

  // As the server's units::human_size: IEC units, three digits, rounded down.
  function human(bytes) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var i = 0, divisor = 1;
    while (bytes / divisor >= 1024 && i < units.length - 1) { divisor *= 1024; i++; }
    var whole = Math.floor(bytes / divisor);
    if (i === 0 || whole >= 10) return whole + " " + units[i];
    return (Math.floor(bytes * 10 / divisor) / 10).toFixed(1) + " " + units[i];
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

  // `relativePath`: where the file is in a folder that was chosen or dropped
  // ("Photos/2024/a.jpg"), or "".
  function add(file, relativePath) {
    if (file.size === 0) {
      var line = element("p", "", "“" + (relativePath || file.name) + "” is empty (0 bytes): there is nothing to back up, so it was not added.");
      refused.appendChild(line);
      refused.hidden = false;
      return;
    }
    var item = { file: file, path: relativePath || "", state: "queued", sent: 0, archive: null, upload: null };
    item.row = element("li", "upload-item");
    item.row.setAttribute("data-file", file.name);
    if (item.path) item.row.setAttribute("data-path", item.path);
    var label = element("label", "", "Name");
    item.nameInput = element("input");
    item.nameInput.value = file.name;
    item.nameInput.maxLength = 200;
    label.appendChild(item.nameInput);
    // Changed after the file arrived: renamed at once.
    item.nameInput.addEventListener("change", function () {
      if (item.state !== "done") return;
      item.renameError = null;
      rename(item).then(function () {
        var link = item.status.querySelector("a");
        if (link) link.textContent = "Open “" + (item.nameInput.value.trim() || item.file.name) + "”";
        if (item.renameError) item.row.appendChild(element("p", "error", item.renameError));
      });
    });
    var head = element("div", "upload-head");
    head.appendChild(element("strong", "", item.path || file.name));
    head.appendChild(element("span", "muted", " " + human(file.size)));
    var progress = element("div", "progress");
    item.bar = element("div", "bar");
    progress.appendChild(item.bar);
    item.status = element("p", "item-status muted", "Waiting for its turn…");
    item.cancel = element("button", "secondary cancel", "Cancel");
    item.cancel.type = "button";
    item.cancel.addEventListener("click", function () { cancel(item); });
    item.row.appendChild(head);
    item.row.appendChild(label);
    item.row.appendChild(progress);
    item.row.appendChild(item.status);
    item.row.appendChild(item.cancel);
    queue.appendChild(item.row);
    items.push(item);
  }

  function cancel(item) {
    if (item.state === "done") return;
    var wasRunning = item.state === "running";
    item.state = "cancelled";
    if (item.upload && wasRunning) item.upload.abort(true).catch(function () { /* gone already */ });
    item.status.textContent = "Cancelled: nothing was kept.";
    item.cancel.hidden = true;
    item.row.classList.add("cancelled");
    pump();
    showTotal();
  }

  function start(item) {
    item.state = "running";
    item.started = performance.now();
    item.status.textContent = "Starting…";
    var upload = new tus.Upload(item.file, {
      endpoint: location.origin + "/api/v1/uploads",
      chunkSize: 16 * 1024 * 1024,
      retryDelays: [0, 1000, 3000, 5000, 10000, 20000, 30000],
      headers: { "X-CSRF-Token": csrf },
      metadata: metadata(item),
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
        rename(item).then(function () { finished(item); });
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

  function metadata(item) {
    var data = { name: item.file.name, filename: item.file.name };
    if (item.path) data.relative_path = item.path;
    return data;
  }

  // A name typed in the queue while the file was on its way: the archive
  // gets it once it exists (an empty name keeps the file's).
  function rename(item) {
    var name = item.nameInput.value.trim();
    if (!item.archive || !name || name === item.file.name) return Promise.resolve();
    return fetch("/api/v1/archives/" + item.archive, {
      method: "PATCH",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ name: name })
    }).then(function (response) {
      if (response.ok) return;
      return response.json().then(function (body) {
        item.renameError = "The file arrived, but the new name was not taken: " + body.message;
      });
    }).catch(function () {
      item.renameError = "The file arrived, but the new name could not be saved: rename it on its page.";
    });
  }

  function finished(item) {
    item.state = "done";
    item.sent = item.file.size;
    item.bar.style.width = "100%";
    item.cancel.hidden = true;
    item.status.textContent = "Done. ";
    if (item.archive) {
      var link = element("a", "", "Open “" + (item.nameInput.value.trim() || item.file.name) + "”");
      link.href = "/archives/" + item.archive;
      item.status.appendChild(link);
      flagDuplicate(item);
    }
    if (item.renameError) item.row.appendChild(element("p", "error", item.renameError));
    pump();
    showTotal();
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
    var busy = counted.some(function (i) { return i.state === "queued" || i.state === "running"; });
    var finished = counted.length > 0 && counted.every(function (i) { return i.state === "done" || i.state === "failed"; });
    totalBox.hidden = !busy && !finished;
    var percent = total ? Math.floor(sent * 100 / total) : 0;
    totalBar.style.width = percent + "%";
    var done = counted.filter(function (i) { return i.state === "done"; }).length;
    totalText.textContent = done + " of " + counted.length + " files done · " + percent + "% · " + human(sent) + " of " + human(total);
    doneBox.hidden = !finished;
  }

  // Adds the files and starts them (three at a time).
  function addAll(files) {
    for (var i = 0; i < files.length; i++) add(files[i], files[i].webkitRelativePath || "");
    pump();
    showTotal();
  }
  input.addEventListener("change", function () {
    addAll(input.files);
    input.value = "";
  });
  if (folderInput) {
    folderInput.addEventListener("change", function () {
      addAll(folderInput.files);
      folderInput.value = "";
    });
  }
  // A dropped folder: every file under it, each with its path in it.
  function walk(entry, done) {
    if (entry.isFile) {
      entry.file(function (file) { done([[file, entry.fullPath.replace(/^\//, "")]]); }, function () { done([]); });
      return;
    }
    var reader = entry.createReader(), found = [];
    (function more() {
      reader.readEntries(function (entries) {
        if (!entries.length) {
          var pending = found.length, all = [];
          if (!pending) return done(all);
          found.forEach(function (child) {
            walk(child, function (files) { all = all.concat(files); if (--pending === 0) done(all); });
          });
          return;
        }
        found = found.concat(Array.prototype.slice.call(entries));
        more();
      }, function () { done([]); });
    })();
  }
  function dropped(dataTransfer) {
    var entries = Array.prototype.map.call(dataTransfer.items || [], function (item) {
      return item.webkitGetAsEntry ? item.webkitGetAsEntry() : null;
    });
    if (!entries.some(function (entry) { return entry && entry.isDirectory; })) {
      return addAll(dataTransfer.files);
    }
    entries.forEach(function (entry) {
      if (!entry) return;
      walk(entry, function (files) {
        files.forEach(function (pair) { add(pair[0], entry.isDirectory ? pair[1] : ""); });
        pump();
        showTotal();
      });
    });
  }
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
    if (event.dataTransfer) dropped(event.dataTransfer);
  });
  window.addEventListener("beforeunload", function (event) {
    if (items.some(function (i) { return i.state === "running" || i.state === "queued"; })) {
      event.preventDefault();
      event.returnValue = "";
    }
  });
})();
