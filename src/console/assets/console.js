// GuestVault console: a little progressive enhancement, no dependencies, no inline script
// (the Content-Security-Policy allows only this file). Every page works without it.
(function () {
  "use strict";
  // A form marked data-busy disables its button while the server works (verification can
  // take a while on a long trail), so a second click does not start a second run.
  document.querySelectorAll("form[data-busy]").forEach(function (form) {
    form.addEventListener("submit", function () {
      form.querySelectorAll("button").forEach(function (b) {
        b.disabled = true;
        b.setAttribute("aria-busy", "true");
      });
    });
  });
  // Times are rendered in China time by the server; the tooltip shows the stored UTC value.
  document.querySelectorAll("time[datetime]").forEach(function (t) {
    t.title = t.getAttribute("datetime");
  });
})();
