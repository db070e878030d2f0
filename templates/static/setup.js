// The recovery passphrase page: copy, download (.txt) and print the
// passphrase, and continue only once its last two groups are typed back.
(function () {
  "use strict";
  var secret = document.getElementById("recovery-passphrase");
  var status = document.getElementById("copy-status");
  if (!secret) return;
  var passphrase = secret.textContent.trim();
  function say(text) {
    status.textContent = text;
    status.hidden = false;
  }
  document.getElementById("copy-passphrase").addEventListener("click", function () {
    var copied = navigator.clipboard && window.isSecureContext
      ? navigator.clipboard.writeText(passphrase) : Promise.reject(new Error("no clipboard"));
    copied.then(function () { say("Copied. Paste it into your password manager."); }, function () {
      var range = document.createRange();
      range.selectNodeContents(secret);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      say(document.execCommand("copy") ? "Copied. Paste it into your password manager."
        : "Selected: press Ctrl+C (or long-press and Copy) to copy it.");
    });
  });
  document.getElementById("download-passphrase").addEventListener("click", function () {
    var text = "piarchive recovery passphrase\r\n\r\n" + passphrase + "\r\n\r\n" +
      "Keep this away from the appliance. Without it, the backups cannot be read if the appliance is lost.\r\n";
    var link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
    link.download = "piarchive-recovery-passphrase.txt";
    document.body.appendChild(link);
    link.click();
    link.remove();
    say("Downloaded as piarchive-recovery-passphrase.txt. Move it off this computer's shared folders.");
  });
  document.getElementById("print-passphrase").addEventListener("click", function () { window.print(); });

  var form = document.getElementById("confirm-passphrase");
  var input = document.getElementById("passphrase-check");
  var mismatch = document.getElementById("passphrase-mismatch");
  function normal(value) { return value.toUpperCase().replace(/[^A-Z0-9]/g, ""); }
  var expected = normal(form.getAttribute("data-expected"));
  form.addEventListener("submit", function (event) {
    if (normal(input.value) !== expected) {
      event.preventDefault();
      mismatch.hidden = false;
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
    // A match is sent: the appliance records that it was typed back.
  });
  input.addEventListener("input", function () {
    mismatch.hidden = true;
    input.removeAttribute("aria-invalid");
  });
})();
