// Vaka service worker: shows a pushed alarm even when the staff page is closed or the phone locked.
"use strict";
self.addEventListener("push", function (event) {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch (e) { data = {}; }
  const title = "Vaka: " + (data.rule_id || "larm / alarm").replace(/_/g, " ");
  const body = [data.resident_id, data.unregistered ? "okänd enhet / unregistered device" : ""].filter(Boolean).join(" · ");
  event.waitUntil(self.registration.showNotification(title, {
    body: body,
    tag: "vaka-" + (data.alarm_id || ""),
    renotify: true,
    requireInteraction: true,
    vibrate: [400, 150, 400, 150, 400],
    data: { url: data.url || "/staff/" },
  }));
});
self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  const url = (event.notification.data && event.notification.data.url) || "/staff/";
  event.waitUntil(self.clients.matchAll({ type: "window" }).then(function (wins) {
    for (const w of wins) { if (w.url.indexOf("/staff/") >= 0) return w.focus(); }
    return self.clients.openWindow(url);
  }));
});
