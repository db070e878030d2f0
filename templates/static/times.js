// Times in the browser's own zone: each <time datetime data-relative> shows
// "2 hours ago" (or the date when older than a week) with the full local
// date and time on hover. The server's UTC text stays without JavaScript.
(function () {
  "use strict";
  var units = [["year", 31536000], ["month", 2592000], ["week", 604800],
               ["day", 86400], ["hour", 3600], ["minute", 60]];
  var relative = window.Intl && Intl.RelativeTimeFormat
    ? new Intl.RelativeTimeFormat(undefined, { numeric: "auto" }) : null;
  function words(date) {
    var seconds = (date.getTime() - Date.now()) / 1000;
    if (Math.abs(seconds) < 60) return "just now";
    if (!relative) return date.toLocaleString();
    for (var i = 0; i < units.length; i++) {
      if (Math.abs(seconds) >= units[i][1]) {
        return relative.format(Math.round(seconds / units[i][1]), units[i][0]);
      }
    }
    return "just now";
  }
  function update() {
    document.querySelectorAll("time[data-relative]").forEach(function (element) {
      var date = new Date(element.getAttribute("datetime"));
      if (isNaN(date.getTime())) return;
      element.textContent = words(date);
      element.title = date.toLocaleString(undefined, { dateStyle: "full", timeStyle: "short" });
    });
  }
  update();
  setInterval(update, 30000);
})();
