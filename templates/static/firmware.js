// Firmware page: uploads the .piup bundle as the raw request body, with progress.
(function () {
  "use strict";
  const form = document.getElementById("firmware-form");
  if (!form) return;
  const bar = document.getElementById("firmware-progress");
  const result = document.getElementById("firmware-result");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const file = document.getElementById("firmware-file").files[0];
    if (!file) return;
    const force = document.getElementById("firmware-force").checked ? "?force=1" : "";
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/v1/admin/firmware" + force);
    const csrf = document.querySelector('meta[name="csrf-token"]');
    if (csrf) xhr.setRequestHeader("X-CSRF-Token", csrf.content);
    xhr.upload.onprogress = function (e) {
      if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total);
    };
    xhr.onload = function () {
      let message = "The appliance answered " + xhr.status + ".";
      try { message = JSON.parse(xhr.responseText).message || message; } catch (e) { /* keep the status */ }
      result.textContent = message;
    };
    xhr.onerror = function () { result.textContent = "The upload was interrupted; nothing was installed."; };
    bar.hidden = false;
    result.textContent = "Uploading…";
    xhr.send(file);
  });
})();
