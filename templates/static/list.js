// The archive list's ticks: "All on this page" (shown only with
// JavaScript; the form works without it), and ticks kept when live.js
// swaps in a fresh list (an archive changed state while choosing).
(function () {
  "use strict";
  var all = document.getElementById("select-all");
  if (!all) return;
  all.parentNode.hidden = false;
  var ticked = {};
  function boxes() { return document.querySelectorAll("#archive-list input.select"); }
  all.addEventListener("change", function () {
    boxes().forEach(function (box) { box.checked = all.checked; ticked[box.name] = all.checked; });
  });
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (box && box.classList && box.classList.contains("select")) ticked[box.name] = box.checked;
  });
  var main = document.querySelector("main");
  new MutationObserver(function () {
    boxes().forEach(function (box) { if (ticked[box.name]) box.checked = true; });
  }).observe(main, { childList: true, subtree: true });
})();
