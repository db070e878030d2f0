// New-archive page: a small tus 1.0.0 client (core + creation).
//
// The upload URL of each file is remembered in localStorage under a
// fingerprint (name, size, modification time), so choosing the same file
// again after a reload or a network drop continues from the server's offset.
// Each PATCH sends at most CHUNK bytes; a failed request is retried with
// back-off after asking the server for its offset (HEAD).
(function () {
  "use strict";
  const CHUNK = 16 * 1024 * 1024;
  const RETRY_DELAYS = [1000, 2000, 5000, 10000, 20000, 30000];
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const form = document.getElementById("upload-form");
  const fileInput = document.getElementById("file");
  const nameInput = document.getElementById("name");
  const statusBox = document.getElementById("upload-status");
  const bar = document.getElementById("upload-bar");
  const text = document.getElementById("upload-text");
  const errorText = document.getElementById("upload-error");
  const done = document.getElementById("upload-done");
  const link = document.getElementById("upload-link");

  function b64(value) {
    return btoa(String.fromCharCode(...new TextEncoder().encode(value)));
  }
  function human(bytes) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i++; }
    return (i ? bytes.toFixed(1) : bytes) + " " + units[i];
  }
  function duration(seconds) {
    if (!isFinite(seconds)) return "…";
    if (seconds < 60) return Math.ceil(seconds) + " s";
    if (seconds < 3600) return Math.ceil(seconds / 60) + " min";
    return (seconds / 3600).toFixed(1) + " h";
  }
  function fingerprint(file) {
    return "tus::" + [file.name, file.size, file.lastModified].join("::");
  }
  function request(method, url, headers, body, onProgress) {
    return new Promise(function (resolve, reject) {
      const xhr = new XMLHttpRequest();
      xhr.open(method, url);
      xhr.setRequestHeader("Tus-Resumable", "1.0.0");
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
      if (onProgress) xhr.upload.onprogress = function (e) { onProgress(e.loaded); };
      xhr.onload = function () { resolve(xhr); };
      xhr.onerror = function () { reject(new Error("network")); };
      xhr.ontimeout = function () { reject(new Error("network")); };
      xhr.send(body);
    });
  }
  function errorMessage(xhr) {
    try { return JSON.parse(xhr.responseText).message; } catch (e) { return "The server answered " + xhr.status + "."; }
  }
  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }

  let samples = [];
  function show(offset, total) {
    const now = performance.now();
    samples.push([now, offset]);
    while (samples.length > 2 && now - samples[0][0] > 10000) samples.shift();
    const [t0, o0] = samples[0];
    const rate = now > t0 ? (offset - o0) / ((now - t0) / 1000) : 0;
    const percent = total ? Math.floor(offset * 100 / total) : 100;
    bar.style.width = percent + "%";
    text.textContent = percent + "% · " + human(offset) + " of " + human(total) +
      (rate > 0 ? " · " + human(rate) + "/s · " + duration((total - offset) / rate) + " left" : "");
  }

  async function locate(file, name) {
    const key = fingerprint(file);
    const saved = localStorage.getItem(key);
    if (saved) {
      const head = await request("HEAD", saved, {});
      if (head.status === 200) {
        return { url: saved, offset: Number(head.getResponseHeader("Upload-Offset")), archive: head.getResponseHeader("Archive-Id") };
      }
      localStorage.removeItem(key);
    }
    const meta = "name " + b64(name) + ",filename " + b64(file.name);
    const created = await request("POST", "/api/v1/uploads", { "Upload-Length": String(file.size), "Upload-Metadata": meta }, null);
    if (created.status !== 201) throw new Error(errorMessage(created));
    const url = created.getResponseHeader("Location");
    localStorage.setItem(key, url);
    return { url: url, offset: 0, archive: null };
  }

  async function upload(file, name) {
    let target = await locate(file, name);
    let offset = target.offset;
    let archive = target.archive;
    let failures = 0;
    samples = [];
    show(offset, file.size);
    while (!archive) {
      try {
        const end = Math.min(offset + CHUNK, file.size);
        const xhr = await request("PATCH", target.url,
          { "Content-Type": "application/offset+octet-stream", "Upload-Offset": String(offset) },
          file.slice(offset, end), function (loaded) { show(offset + loaded, file.size); });
        if (xhr.status === 204) {
          offset = Number(xhr.getResponseHeader("Upload-Offset"));
          archive = xhr.getResponseHeader("Archive-Id");
          failures = 0;
          errorText.hidden = true;
          show(offset, file.size);
          continue;
        }
        if (xhr.status === 409 || xhr.status >= 500 || xhr.status === 0) {
          throw new Error("retry:" + errorMessage(xhr));
        }
        throw new Error(errorMessage(xhr));
      } catch (err) {
        if (!String(err.message).startsWith("retry") && err.message !== "network") throw err;
        const delay = RETRY_DELAYS[Math.min(failures, RETRY_DELAYS.length - 1)];
        failures++;
        errorText.hidden = false;
        errorText.textContent = "Connection problem; retrying in " + delay / 1000 + " s. The upload continues where it stopped.";
        await sleep(delay);
        try {
          const head = await request("HEAD", target.url, {});
          if (head.status === 200) {
            offset = Number(head.getResponseHeader("Upload-Offset"));
            archive = head.getResponseHeader("Archive-Id");
          } else if (head.status === 404) {
            localStorage.removeItem(fingerprint(file));
            throw new Error("The upload was removed from the server; start again.");
          }
        } catch (headErr) {
          if (headErr.message !== "network") throw headErr;
        }
      }
    }
    localStorage.removeItem(fingerprint(file));
    show(file.size, file.size);
    text.textContent = "Done: " + human(file.size) + " stored.";
    link.href = "/archives/" + archive;
    done.hidden = false;
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const file = fileInput.files[0];
    if (!file) return;
    statusBox.hidden = false;
    done.hidden = true;
    errorText.hidden = true;
    document.getElementById("start").disabled = true;
    upload(file, nameInput.value).catch(function (err) {
      errorText.hidden = false;
      errorText.textContent = err.message;
    }).finally(function () {
      document.getElementById("start").disabled = false;
    });
  });
})();
