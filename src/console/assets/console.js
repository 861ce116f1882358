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
  // The operations page: follow a running key rotation. The server renders where it stood;
  // this polls the console's progress endpoint (same origin, the session cookie) until the
  // rotation is no longer running, then reloads once to show the new DEK counts.
  var box = document.querySelector("[data-progress-url]");
  if (box && box.getAttribute("data-state") === "running") {
    var url = box.getAttribute("data-progress-url");
    var bar = box.querySelector("progress");
    var label = box.querySelector("[data-progress-label]");
    var word = box.querySelector("[data-rotation-state]");
    var tick = function () {
      fetch(url, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (p) {
          if (!p) { return; }
          bar.max = Math.max(p.total, 1);
          bar.value = p.state === "finished" ? bar.max : p.done;
          bar.textContent = p.percent + "%";
          label.textContent = p.done + " / " + p.total + " (" + p.percent + "%)";
          word.textContent = box.getAttribute("data-label-" + p.state) || p.state;
          box.setAttribute("data-state", p.state);
          if (p.state === "running") {
            setTimeout(tick, 500);
          } else {
            window.location.reload();
          }
        })
        .catch(function () { setTimeout(tick, 2000); });
    };
    setTimeout(tick, 300);
  }
})();
