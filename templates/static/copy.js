// "Copy link" buttons: data-copy names the input whose value is copied
// (the invitation page). Says "Copied" beside the button; without the
// clipboard API the text is selected for the user to copy.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-copy]");
    if (!button) return;
    var input = document.getElementById(button.getAttribute("data-copy"));
    if (!input) return;
    var status = button.parentNode.querySelector(".copied");
    input.select();
    function said(text) { if (status) status.textContent = text; }
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(input.value).then(function () { said("Copied."); },
        function () { said("Selected: copy it with your device's copy command."); });
    } else {
      said("Selected: copy it with your device's copy command.");
    }
  });
})();
