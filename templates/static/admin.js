// The admin pages: run buttons on the script cards, the develop page (test
// run, save), deployments (create, terminate) and the live log tail. Every
// state change goes to the JSON API with the session's CSRF token.
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";

  async function api(method, path, body) {
    const response = await fetch(path, {
      method,
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
    const text = await response.text();
    const value = text ? JSON.parse(text) : null;
    if (!response.ok) {
      throw new Error((value && value.message) || `The appliance answered ${response.status}.`);
    }
    return value;
  }

  function position(error) {
    return error.line ? ` (line ${error.line}, column ${error.column})` : "";
  }

  // Fills `box` (with .summary/.output/.value/.script-error children, or
  // plain) with a run result.
  function showResult(box, result) {
    box.hidden = false;
    box.classList.toggle("failed", !result.ok);
    const part = (css) => box.querySelector(css);
    if (part(".summary")) {
      part(".summary").textContent = `${result.ok ? "Finished" : "Failed"} in ${result.duration_ms} ms.`;
      part(".output").textContent = result.output || "(no output)";
      part(".value").textContent = JSON.stringify(result.value, null, 2);
      const error = part(".script-error");
      error.hidden = !result.error;
      error.textContent = result.error ? result.error.message + position(result.error) : "";
      return;
    }
    box.replaceChildren();
    const summary = document.createElement("p");
    summary.className = "summary";
    summary.textContent = `${result.ok ? "ok" : "failed"} in ${result.duration_ms} ms`;
    box.append(summary);
    if (result.error) {
      const error = document.createElement("p");
      error.className = "error script-error";
      error.textContent = result.error.message + position(result.error);
      box.append(error);
    }
    const output = document.createElement("pre");
    output.className = "output";
    output.textContent = (result.output || "") + (result.ok ? "=> " + JSON.stringify(result.value) : "");
    box.append(output);
  }

  // Script cards.
  for (const button of document.querySelectorAll("button.run-script")) {
    button.addEventListener("click", async () => {
      // Scripts that free local space or fetch files back ask first.
      if (button.dataset.confirm && !confirm(button.dataset.confirm)) return;
      const box = button.closest(".script-card").querySelector(".run-result");
      button.disabled = true;
      box.hidden = false;
      box.textContent = "Running…";
      try {
        const result = await api("POST", `/api/v1/admin/scripts/${button.dataset.scriptId}/run`);
        showResult(box, result);
        const lastRun = button.closest(".script-card").querySelector(".last-run-line");
        if (lastRun) {
          lastRun.textContent = `Last run: just now · ${result.ok ? "ok" : "failed"} · ${result.duration_ms} ms`;
        }
      } catch (error) {
        box.textContent = error.message;
      } finally {
        button.disabled = false;
      }
    });
  }

  // Deployments.
  const deployForm = document.getElementById("new-deployment");
  if (deployForm) {
    deployForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const errorBox = deployForm.querySelector(".form-error");
      try {
        await api("POST", "/api/v1/admin/deployments", {
          script_id: deployForm.elements.script_id.value,
          // A count of minutes, hours or days; the API takes seconds.
          interval_seconds: Number(deployForm.elements.interval_count.value) *
            Number(deployForm.elements.interval_unit.value),
        });
        location.reload();
      } catch (error) {
        errorBox.hidden = false;
        errorBox.textContent = error.message;
      }
    });
  }
  for (const button of document.querySelectorAll("button.terminate")) {
    button.addEventListener("click", async () => {
      if (!confirm("Stop this deployment? The script stays saved; it just no longer runs on a schedule.")) return;
      button.disabled = true;
      try {
        await api("DELETE", `/api/v1/admin/deployments/${button.dataset.deploymentId}`);
        location.reload();
      } catch (error) {
        button.disabled = false;
        alert(error.message);
      }
    });
  }

  // The develop page.
  const develop = document.getElementById("develop");
  if (develop) {
    const result = document.getElementById("test-result");
    const status = develop.querySelector(".save-status");
    document.getElementById("test-run").addEventListener("click", async () => {
      // A test run calls the real functions: ask before one that changes archives.
      if (/\b(uncache|cache|verify|retry_failed)\s*\(/.test(develop.elements.source.value) &&
          !confirm("Run this now? It can free local space, fetch files back or check the backups: a test run does that for real.")) return;
      result.hidden = false;
      result.querySelector(".summary").textContent = "Running…";
      try {
        showResult(result, await api("POST", "/api/v1/admin/scripts/run", { source: develop.elements.source.value }));
      } catch (error) {
        result.querySelector(".summary").textContent = error.message;
      }
    });
    develop.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = {
        name: develop.elements.name.value,
        description: develop.elements.description.value,
        source: develop.elements.source.value,
      };
      const id = develop.dataset.scriptId;
      try {
        const saved = id
          ? await api("PUT", `/api/v1/admin/scripts/${id}`, body)
          : await api("POST", "/api/v1/admin/scripts", body);
        develop.dataset.scriptId = saved.id;
        status.textContent = "Saved.";
        if (!id) history.replaceState(null, "", `/admin/scripts/${saved.id}`);
      } catch (error) {
        status.textContent = error.message;
      }
    });
  }

  // The live log.
  const live = document.getElementById("live-status");
  const table = document.getElementById("log-table");
  if (live && table && window.EventSource) {
    const ranks = { debug: 0, info: 1, warn: 2, error: 3 };
    const users = JSON.parse(table.dataset.users || "{}");
    const level = table.dataset.level, source = table.dataset.source, text = (table.dataset.q || "").toLowerCase();
    const keep = (entry) =>
      (!level || ranks[entry.level] >= ranks[level]) &&
      (!source || entry.source.startsWith(source)) &&
      (!text || entry.message.toLowerCase().includes(text) || entry.source.toLowerCase().includes(text));
    // The server sends a heartbeat event every 15 s: a stream silent for
    // longer (and a margin) is dead, and a new one is opened.
    let stream = null, lastSeen = Date.now();
    const seen = () => { lastSeen = Date.now(); };
    const onLog = (event) => {
      const entry = JSON.parse(event.data);
      if (!keep(entry)) return;
      const row = document.createElement("tr");
      row.className = `level-${entry.level} live`;
      // The browser's own time, as times.js shows the rendered rows.
      const time = new Date(entry.time_ms).toLocaleString(undefined, {
        year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short",
      });
      for (const cell of [time, entry.level, entry.source, entry.message, users[entry.user_id] || entry.user_id || "", entry.archive_id || ""]) {
        const td = document.createElement("td");
        td.textContent = cell;
        row.append(td);
      }
      table.tBodies[0].prepend(row);
    };
    const connect = () => {
      if (stream) stream.close();
      seen();
      stream = new EventSource("/api/v1/admin/log/events");
      stream.addEventListener("open", () => { seen(); live.dataset.connected = "1"; });
      stream.addEventListener("heartbeat", seen);
      stream.addEventListener("log", (event) => { seen(); onLog(event); });
    };
    connect();
    setInterval(() => {
      if (Date.now() - lastSeen > 20000) {
        delete live.dataset.connected;
        connect();
      }
    }, 1000);
  }
})();
