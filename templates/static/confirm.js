// Asks before a form with data-confirm="question" is sent (destructive
// actions such as discarding an unfinished upload). No inline handlers:
// the Content-Security-Policy forbids them.
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form && form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  }, true);
})();
