// HTTPS page: a chosen PEM file is read into the text box below it, so the
// form posts the certificate and key as text (pasting works without this).
(function () {
  "use strict";
  document.querySelectorAll("input[type=file][data-fills]").forEach(function (input) {
    input.addEventListener("change", function () {
      const target = document.getElementById(input.dataset.fills);
      const file = input.files[0];
      if (!target || !file) return;
      file.text().then(function (text) { target.value = text; });
    });
  });
})();
