// The header's clock: the hub's time (a simulation's in a demo), moved on between page loads at the hub's rate.
// The alarm page's own script keeps it exact (window.vakaHubNow) and stops it when the connection is lost.
"use strict";
(function () {
  const el = document.getElementById("top-now");
  if (!el) return;
  const start = Date.parse(el.getAttribute("datetime"));
  const rate = Number(el.dataset.rate) || 1;
  const loaded = performance.now();
  const zoneFmt = new Intl.DateTimeFormat(document.documentElement.lang || "sv", { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: el.dataset.zone || undefined });
  function tick() {
    if (isNaN(start)) return;
    const now = window.vakaHubNow ? window.vakaHubNow() : start + (performance.now() - loaded) * rate;
    el.textContent = zoneFmt.format(new Date(now));
  }
  setInterval(tick, 5000);
})();
