// metaq dashboard: progressive enhancement only. Without JavaScript every
// page works (reload to refresh); with it, the page's <main> is refreshed in
// place every data-refresh seconds from the same URL, and can be paused.
(function () {
  "use strict";
  var body = document.body;
  var every = parseFloat(body.getAttribute("data-refresh") || "0");
  var pause = document.getElementById("pause");
  if (!every || !pause || document.querySelector("form button.danger")) { return; }
  var paused = false, busy = false;
  pause.hidden = false;
  pause.addEventListener("click", function () {
    paused = !paused;
    pause.textContent = paused ? "resume" : "pause";
  });
  function refresh() {
    if (paused || busy || document.hidden) { return; }
    // Keep whatever the user opened or is typing in.
    if (document.activeElement && /INPUT|SELECT|TEXTAREA/.test(document.activeElement.tagName)) { return; }
    busy = true;
    fetch(location.href, { headers: { "Accept": "text/html" }, credentials: "same-origin" })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var main = doc.getElementById("main"), status = doc.getElementById("status");
        if (!main) { return; }
        var open = {};
        document.querySelectorAll("section.group details[open]").forEach(function (d) {
          open[d.parentNode.getAttribute("data-group")] = true;
        });
        document.getElementById("main").replaceWith(main);
        main.querySelectorAll("section.group").forEach(function (s) {
          if (open[s.getAttribute("data-group")]) { s.querySelector("details").open = true; }
        });
        if (status) {
          var cur = document.getElementById("status");
          status.querySelector("#pause").replaceWith(pause);
          cur.replaceWith(status);
        }
        body.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () { /* the next tick tries again */ })
      .then(function () { busy = false; });
  }
  setInterval(refresh, every * 1000);
})();
