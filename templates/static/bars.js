// Sets each progress bar's width from its data-percent attribute. The
// Content-Security-Policy forbids inline style attributes, so the pages
// carry the number and this script applies it (again, through
// window.piarchiveBars, after live.js swaps part of a page).
(function () {
  "use strict";
  function apply(root) {
    (root || document).querySelectorAll(".bar[data-percent]").forEach(function (bar) {
      bar.style.width = bar.getAttribute("data-percent") + "%";
    });
  }
  window.piarchiveBars = apply;
  apply(document);
})();
