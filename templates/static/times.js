// Times in the browser's own zone: each <time datetime data-relative> shows
// "2 hours ago" (or the date when older than a week), each <time datetime
// data-clock> the local time of day ("01:00"), each <time datetime
// data-full> the local date and time with its zone ("6 Dec 2026, 22:30
// CET"), all with the
// full local date, time and zone on hover. The server's UTC text stays
// without JavaScript. Each <span data-your-time="HH:MM" data-box-offset>
// (a time of day in the box's zone) gets ", 20:00 your time" when the
// browser's zone differs.
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
  var withZone = { year: "numeric", month: "short", day: "numeric", hour: "2-digit",
                   minute: "2-digit", timeZoneName: "short" };
  var zone = window.Intl && Intl.DateTimeFormat().resolvedOptions().timeZone;
  function hover(date) {
    return date.toLocaleString(undefined, full) + (zone ? " (your time, " + zone + ")" : " (your time)");
  }
  function update() {
    document.querySelectorAll("time[data-clock]").forEach(function (element) {
      var date = new Date(element.getAttribute("datetime"));
      if (isNaN(date.getTime())) return;
      element.textContent = date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
      element.title = hover(date);
    });
    document.querySelectorAll("time[data-relative]").forEach(function (element) {
      var date = new Date(element.getAttribute("datetime"));
      if (isNaN(date.getTime())) return;
      element.textContent = words(date);
      element.title = hover(date);
    });
    document.querySelectorAll("time[data-full]").forEach(function (element) {
      var date = new Date(element.getAttribute("datetime"));
      if (isNaN(date.getTime())) return;
      // The zone stays visible ("CET", "GMT+1"): the box may be elsewhere.
      element.textContent = date.toLocaleString(undefined, withZone);
      element.title = hover(date);
    });
    // A box-zone time of day: what it is in the browser's zone, today.
    document.querySelectorAll("[data-your-time]").forEach(function (element) {
      var parts = element.getAttribute("data-your-time").split(":");
      var boxOffset = Number(element.getAttribute("data-box-offset"));
      if (parts.length !== 2 || isNaN(boxOffset)) return;
      var minutes = Number(parts[0]) * 60 + Number(parts[1]) - boxOffset / 60;
      var date = new Date();
      date.setUTCHours(0, 0, 0, 0);
      date.setUTCMinutes(minutes);
      if (-date.getTimezoneOffset() * 60 === boxOffset) { element.textContent = ""; return; }
      element.textContent = " (" + date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" }) + " your time)";
    });
  }
  window.piarchiveTimes = update;
  update();
  setInterval(update, 30000);
})();
