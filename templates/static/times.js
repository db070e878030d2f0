// Times in the browser's own zone: each <time datetime data-relative> shows
// "2 hours ago" (or the date when older than a week), each <time datetime
// data-clock> the local time of day ("01:00"), both with the full local
// date and time on hover. The server's UTC text stays without JavaScript.
// live.js calls window.piarchiveTimes after it swaps part of a page.
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
  var full = { dateStyle: "full", timeStyle: "short" };
  function update() {
    document.querySelectorAll("time[data-clock]").forEach(function (element) {
      var date = new Date(element.getAttribute("datetime"));
      if (isNaN(date.getTime())) return;
      element.textContent = date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
      element.title = date.toLocaleString(undefined, full);
    });
    document.querySelectorAll("time[data-relative]").forEach(function (element) {
      var date = new Date(element.getAttribute("datetime"));
      if (isNaN(date.getTime())) return;
      element.textContent = words(date);
      element.title = date.toLocaleString(undefined, full);
    });
  }
  window.piarchiveTimes = update;
  update();
  setInterval(update, 30000);
})();
