// Patrol view: "Use my position" asks the phone where it is and orders the stops from there (nothing is stored).
"use strict";
(function () {
  const form = document.getElementById("patrol-locate");
  if (!form || !navigator.geolocation) { if (form) form.hidden = true; return; }
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    navigator.geolocation.getCurrentPosition(function (pos) {
      form.elements.from.value = pos.coords.latitude.toFixed(5) + "," + pos.coords.longitude.toFixed(5);
      form.submit();
    }, function () { /* refused: the order stays as it is */ }, { timeout: 10000, maximumAge: 60000 });
  });
})();
