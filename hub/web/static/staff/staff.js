// Vaka staff page: live alarms over WebSocket with receipts, ringing until someone accepts, actions via fetch.
"use strict";
(function () {
  const cfg = JSON.parse(document.getElementById("staff-config").textContent);
  const list = document.getElementById("alarms");
  const empty = document.getElementById("no-alarms");
  const banner = document.getElementById("conn-lost");
  const flash = document.getElementById("flash");
  const template = document.getElementById("alarm-template");
  const soundButton = document.getElementById("enable-sound");
  const pushButton = document.getElementById("enable-push");
  const baseTitle = document.title;
  const alarms = new Map(); // id -> alarm data
  const OPEN = ["raised", "accepted", "en_route", "on_site"];

  // --- rendering -------------------------------------------------------------------------------------------------
  function agoText(iso) {
    const s = Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 1000));
    if (s < 60) return s + " " + cfg.units.s;
    if (s < 3600) return Math.floor(s / 60) + " " + cfg.units.min;
    return Math.floor(s / 3600) + " " + cfg.units.h + " " + Math.floor((s % 3600) / 60) + " " + cfg.units.min;
  }
  function ruleLabel(ruleId) {
    if (cfg.rules[ruleId]) return cfg.rules[ruleId];
    const text = ruleId.replace(/_/g, " ");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }
  function setText(el, sel, text) { const n = el.querySelector(sel); if (n) n.textContent = text; }
  function show(el, sel, visible) { const n = el.querySelector(sel); if (n) n.hidden = !visible; }

  function fill(el, a) {
    el.id = "alarm-" + a.id;
    el.dataset.id = a.id;
    el.dataset.state = a.state;
    el.dataset.severity = String(a.severity_level);
    el.dataset.raisedAt = a.raised_at;
    el.dataset.ring = a.ring ? "true" : "false";
    el.className = "alarm sev-" + a.severity_level + " state-" + a.state + " cat-" + a.category + (a.ring ? " ringing" : "");
    setText(el, ".what", ruleLabel(a.rule_id));
    setText(el, ".room", a.room || "");
    show(el, ".room-part", !!a.room);
    setText(el, ".state", cfg.states[a.state] || a.state);
    setText(el, ".sev", cfg.severities[a.severity] || a.severity);
    setText(el, ".ago", agoText(a.raised_at));
    setText(el, ".resident", a.resident_id || "");
    show(el, ".resident-part", !!a.resident_id);
    setText(el, ".device", a.device_id || "");
    show(el, ".device-part", !a.resident_id && !!a.device_id);
    show(el, ".unregistered", !!a.unregistered);
    show(el, ".technical", a.category === "technical");
    setText(el, ".reason", a.reason || "");
    setText(el, ".accepted-by", a.accepted_by || "");
    show(el, ".taken-by", !!a.accepted_by);
    show(el, ".nobody", !a.accepted_by);
    el.querySelectorAll("form.act").forEach(function (f) {
      f.action = "/staff/alarms/" + encodeURIComponent(a.id) + "/" + f.dataset.action;
      f.hidden = f.dataset.states.split(" ").indexOf(a.state) < 0;
    });
  }

  function urgency(el) {
    return [el.dataset.state === "raised" ? 0 : 1, -Number(el.dataset.severity), Date.parse(el.dataset.raisedAt)];
  }
  function compare(x, y) {
    const a = urgency(x), b = urgency(y);
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
    return 0;
  }
  function sortList() {
    const items = Array.from(list.children).sort(compare);
    items.forEach(function (el, i) { if (list.children[i] !== el) list.insertBefore(el, list.children[i] || null); });
    empty.hidden = list.children.length > 0;
  }

  function upsert(a) {
    let el = document.getElementById("alarm-" + a.id);
    if (OPEN.indexOf(a.state) < 0) {
      alarms.delete(a.id);
      if (el) el.remove();
    } else {
      alarms.set(a.id, a);
      if (!el) {
        el = template.content.firstElementChild.cloneNode(true);
        list.appendChild(el);
      }
      fill(el, a);
    }
  }

  function snapshot(items) {
    const keep = new Set(items.map(function (a) { return a.id; }));
    Array.from(list.children).forEach(function (el) { if (!keep.has(el.dataset.id)) el.remove(); });
    alarms.clear();
    items.forEach(upsert);
    sortList();
    updateRing();
  }

  // --- ringing: Web Audio beeps, vibration, title flash, until nothing unaccepted is left --------------------------
  let audio = null;
  let ringTimer = null;
  let titleOn = false;
  function ringing() {
    return Array.from(list.children).some(function (el) { return el.dataset.ring === "true"; });
  }
  function beep() {
    if (!audio || audio.state !== "running") return;
    const t0 = audio.currentTime;
    [0, 0.35].forEach(function (offset) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.type = "square";
      osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.0001, t0 + offset);
      gain.gain.exponentialRampToValueAtTime(0.4, t0 + offset + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t0 + offset + 0.25);
      osc.connect(gain).connect(audio.destination);
      osc.start(t0 + offset);
      osc.stop(t0 + offset + 0.3);
    });
  }
  function ringTick() {
    beep();
    if (navigator.vibrate) { try { navigator.vibrate([400, 150, 400]); } catch (e) { /* not allowed yet */ } }
    titleOn = !titleOn;
    document.title = titleOn ? "(!) " + cfg.ring_title + " – " + baseTitle : baseTitle;
  }
  function updateRing() {
    const on = ringing();
    document.body.classList.toggle("is-ringing", on);
    if (on && !ringTimer) { ringTick(); ringTimer = setInterval(ringTick, 1500); }
    if (!on && ringTimer) {
      clearInterval(ringTimer); ringTimer = null; document.title = baseTitle;
      if (navigator.vibrate) { try { navigator.vibrate(0); } catch (e) { /* ignore */ } }
    }
    // visibility, not display: hiding it must not move the buttons under a finger that is pressing one
    soundButton.classList.toggle("invisible", !!(audio && audio.state === "running"));
  }
  function enableSound() {
    try {
      if (!audio) audio = new (window.AudioContext || window.webkitAudioContext)();
      audio.resume().then(updateRing);
    } catch (e) { /* no Web Audio */ }
  }
  soundButton.addEventListener("click", enableSound);
  document.addEventListener("pointerdown", function once() { enableSound(); document.removeEventListener("pointerdown", once); });
  soundButton.hidden = false;
  soundButton.classList.remove("invisible");

  // --- live connection with receipts -----------------------------------------------------------------------------
  let ws = null;
  let lastHeard = 0;
  let retryMs = 500;
  function lost() { banner.hidden = false; document.body.classList.add("offline"); }
  function connect() {
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/staff/ws";
    ws = new WebSocket(url);
    ws.onopen = function () { retryMs = 500; lastHeard = Date.now(); };
    ws.onmessage = function (ev) {
      lastHeard = Date.now();
      banner.hidden = true;
      document.body.classList.remove("offline");
      const msg = JSON.parse(ev.data);
      if (msg.type === "snapshot") {
        snapshot(msg.alarms);
      } else if (msg.type === "alarm") {
        upsert(msg.alarm);
        sortList();
        updateRing();
        ws.send(JSON.stringify({ type: "receipt", nid: msg.nid }));
      }
    };
    ws.onclose = function (ev) {
      if (ev.code === 4401) { location.assign("/staff/login"); return; }  // the session ended (logout, expiry)
      lost();
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 10000);
    };
  }
  setInterval(function () {
    if (ws && ws.readyState === WebSocket.OPEN && Date.now() - lastHeard > 25000) { lost(); ws.close(); }
    list.querySelectorAll("li.alarm").forEach(function (el) { setText(el, ".ago", agoText(el.dataset.raisedAt)); });
  }, 5000);
  window.addEventListener("offline", lost);
  connect();

  // --- actions ---------------------------------------------------------------------------------------------------
  list.addEventListener("submit", function (ev) {
    const form = ev.target;
    if (!(form instanceof HTMLFormElement)) return;
    ev.preventDefault();
    flash.hidden = true;
    const buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    fetch(form.action, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      headers: { "X-Requested-With": "fetch", "X-CSRF-Token": cfg.csrf },
      credentials: "same-origin",
    }).then(function (resp) {
      return resp.json().then(function (data) {
        if (data.alarm) { upsert(data.alarm); sortList(); updateRing(); }
        else if (!data.ok) { flash.textContent = cfg.state_error; flash.hidden = false; }
      });
    }).catch(function () { lost(); }).finally(function () {
      buttons.forEach(function (b) { b.disabled = false; });
    });
  });

  // --- Web Push: so a locked phone rings ---------------------------------------------------------------------------
  function b64ToBytes(s) {
    const pad = "=".repeat((4 - (s.length % 4)) % 4);
    const raw = atob((s + pad).replace(/-/g, "+").replace(/_/g, "/"));
    return Uint8Array.from(raw, function (c) { return c.charCodeAt(0); });
  }
  if (cfg.push_key && "serviceWorker" in navigator && "PushManager" in window) {
    pushButton.hidden = false;
    pushButton.addEventListener("click", function () {
      navigator.serviceWorker.register("/staff/sw.js", { scope: "/staff/" })
        .then(function (reg) { return Notification.requestPermission().then(function () { return reg; }); })
        .then(function (reg) {
          return reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64ToBytes(cfg.push_key) });
        })
        .then(function (sub) {
          return fetch("/staff/push/subscribe", {
            method: "POST", body: JSON.stringify(sub), credentials: "same-origin",
            headers: { "Content-Type": "application/json", "X-CSRF-Token": cfg.csrf },
          });
        })
        .then(function () { pushButton.classList.add("invisible"); })
        .catch(function () { /* permission denied or unsupported */ });
    });
  }
  sortList();
  updateRing();
})();
