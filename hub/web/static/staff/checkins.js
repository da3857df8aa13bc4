// Vaka check-ins: the open list follows the hub (each new version on its event stream fetches the list again, also
// after the hub restarted), and a camera look's view ends when the gateway's viewing token expires.
"use strict";
(function () {
  const list = document.getElementById("checkin-list");
  const banner = document.getElementById("conn-lost");
  if (list && banner && window.EventSource) {
    let version = list.dataset.version;
    let busy = false;
    let again = false;
    function refresh() {
      if (busy) { again = true; return; }
      busy = true;
      fetch(location.pathname, { credentials: "same-origin", cache: "no-store" })
        .then(function (resp) {
          if (resp.redirected || !resp.ok) { location.reload(); return null; }  // logged out: the login page
          return resp.text();
        })
        .then(function (html) {
          if (html === null) return;
          const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("checkin-list");
          if (!fresh) return;
          version = fresh.dataset.version;
          list.dataset.version = version;
          list.replaceChildren.apply(list, Array.from(fresh.childNodes));
        })
        .catch(function () { banner.hidden = false; })
        .finally(function () {
          busy = false;
          if (again) { again = false; refresh(); }
        });
    }
    const source = new EventSource("/staff/checkins/events");
    source.onmessage = function (ev) {
      banner.hidden = true;
      if (ev.data !== version) refresh();
    };
    source.onerror = function () {
      banner.hidden = false;  // the browser reconnects by itself; a refused stream (session over) reloads to log in
      if (source.readyState === EventSource.CLOSED) setTimeout(function () { location.reload(); }, 2000);
    };
  }

  const look = document.getElementById("look");
  if (look) {
    setTimeout(function () {
      const frame = look.querySelector("iframe.live-view");
      if (frame) frame.remove();
      look.querySelector(".look-until").hidden = true;
      look.querySelector(".look-ended").hidden = false;
      look.querySelector("form.look-again").hidden = false;
    }, Number(look.dataset.expiresInMs) || 0);
  }
})();
