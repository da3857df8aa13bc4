// Vaka staff page: live alarms over WebSocket with receipts, ringing until someone accepts, actions via fetch.
"use strict";
(function () {
  const cfg = JSON.parse(document.getElementById("staff-config").textContent);
  const texts = JSON.parse(document.getElementById("staff-reasons").textContent);
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

  // --- the hub's clock: "how long ago" is the hub's now (a simulation's too), never the phone's -----------------
  const clock = { hub: Date.parse(cfg.hub_now), local: performance.now(), rate: Number(cfg.hub_rate) };
  function hubNow() { return clock.hub + (performance.now() - clock.local) * clock.rate; }
  function syncClock(iso, rate) {
    if (!iso) return;
    const t = Date.parse(iso);
    if (isNaN(t)) return;
    if (typeof rate === "number") clock.rate = rate;
    if (t >= hubNow() - 1000 || typeof rate === "number") { clock.hub = t; clock.local = performance.now(); }
  }
  window.vakaHubNow = hubNow; // for tests and the curious

  // --- rendering -------------------------------------------------------------------------------------------------
  function agoText(iso) {
    const s = Math.max(0, Math.floor((hubNow() - Date.parse(iso)) / 1000));
    if (s < 60) return cfg.just_now;
    let span;
    if (s < 3600) span = Math.floor(s / 60) + " " + cfg.units.min;
    else span = Math.floor(s / 3600) + " " + cfg.units.h + " " + Math.floor((s % 3600) / 60) + " " + cfg.units.min;
    return cfg.ago.replace("{span}", span);
  }
  function ordinal(n) {
    if (cfg.lang === "sv") return n + ":" + ((n % 10 === 1 || n % 10 === 2) && n % 100 !== 11 && n % 100 !== 12 ? "a" : "e");
    const tens = n % 100;
    const suffix = tens >= 11 && tens <= 13 ? "th" : ({ 1: "st", 2: "nd", 3: "rd" }[n % 10] || "th");
    return n + suffix;
  }
  function pattern(template) {
    const names = [];
    const source = template.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{(\w+)\}/g, function (_, name) {
      names.push(name); return "(.+?)";
    });
    return { re: new RegExp("^" + source + "$"), names: names };
  }
  function reasonText(a) {
    const forms = texts.reasons[a.rule_id] || [];
    for (let i = 0; i < forms.length; i++) {
      const p = pattern(forms[i][0]);
      const m = p.re.exec(a.reason || "");
      if (!m) continue;
      if (forms[i][1] === null) return "";
      let out = forms[i][1];
      p.names.forEach(function (name, j) {
        out = out.split("{" + name + "}").join(name === "rule" ? ruleLabel(m[j + 1]) : m[j + 1]);
      });
      return out;
    }
    return a.reason || "";
  }
  function noteText(a) {
    const notes = texts.notes[a.rule_id] || {};
    return notes[a.condition_note] || a.condition_note || "";
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
    el.dataset.ringingSince = a.ringing_since || a.raised_at;
    // a repeat of an alarm someone holds rings for her, and for colleagues only once she has not answered in time
    const mine = String(a.accepted_by_id) === String(cfg.staff_id);
    const ring = !!a.ring && (a.state === "raised" || mine || !!a.repeat_escalated);
    el.dataset.ring = ring ? "true" : "false";
    el.dataset.holderId = a.accepted_by_id === null || a.accepted_by_id === undefined ? "" : String(a.accepted_by_id);
    el.className = "alarm sev-" + a.severity_level + " state-" + a.state + " cat-" + a.category + (ring ? " ringing" : "") +
      (a.rule_id === "nobody_reached" ? " nobody-reached" : "");
    setText(el, ".what", ruleLabel(a.rule_id));
    setText(el, ".room", a.room || "");
    show(el, ".room-part", !!a.room);
    setText(el, ".state", cfg.states[a.state] || a.state);
    setText(el, ".sev", cfg.severities[a.severity] || a.severity);
    setText(el, ".sev-icon", a.severity_level >= 4 ? "‼" : (a.severity_level === 3 ? "!" : "·"));
    const clockEl = el.querySelector(".clock");
    if (clockEl) { clockEl.textContent = a.raised_hm || ""; clockEl.setAttribute("datetime", a.raised_at); }
    setText(el, ".ago", agoText(a.raised_at));
    const incidents = a.incidents || 1;
    setText(el, ".repeat-count", cfg.repeat.replace("{nth}", ordinal(incidents)).replace("{time}", a.raised_hm || ""));
    setText(el, ".latest", cfg.latest.replace("{time}", a.latest_hm || ""));
    show(el, ".repeat", incidents > 1);
    // a technical fault that continues: one incident, reported again (it does not ring again)
    setText(el, ".still", cfg.still.replace("{count}", String(a.count || 1)));
    show(el, ".still", a.category === "technical" && (a.count || 1) > 1);
    setText(el, ".again", cfg.again.replace("{time}", a.latest_hm || ""));
    show(el, ".again", !!a.repeat_pending);
    const answer = el.querySelector("form.answer");
    if (answer) {
      const step = { accepted: "accept", en_route: "en_route", on_site: "on_site" }[a.state];
      answer.hidden = !(a.repeat_pending && mine && step);
      if (step) answer.action = "/staff/alarms/" + encodeURIComponent(a.id) + "/" + step;
    }
    const ended = a.gave_up ? cfg.gave_up : cfg.ended;
    setText(el, ".ended", ended.replace("{time}", a.condition_ended_hm || "").replace("{note}", noteText(a)));
    show(el, ".ended", !!a.condition_ended_hm);
    setText(el, ".resident", a.resident_id || "");
    show(el, ".resident-part", !!a.resident_id);
    setText(el, ".device", a.device_id || "");
    show(el, ".device-part", !a.resident_id && !!a.device_id);
    show(el, ".unregistered", !!a.unregistered);
    show(el, ".technical", a.category === "technical");
    const reason = reasonText(a);
    setText(el, ".reason", reason);
    show(el, ".reason", !!reason);
    setText(el, ".accepted-by", a.accepted_by || "");
    show(el, ".taken-by", !!a.accepted_by);
    show(el, ".nobody", !a.accepted_by);
    const early = el.querySelector("details.resolve-early");
    if (early) {
      early.hidden = early.dataset.states.split(" ").indexOf(a.state) < 0;
      if (early.hidden) early.open = false;
    }
    showHome(el, a);
    el.querySelectorAll("form.act").forEach(function (f) {
      f.action = "/staff/alarms/" + encodeURIComponent(a.id) + "/" + f.dataset.action;
      f.hidden = f.dataset.states.split(" ").indexOf(a.state) < 0 && !(f.dataset.action === "resolve" && early && early.open && !early.hidden);
    });
  }
  // --- the resident's home: name and address for everyone of the unit on duty (so a colleague can back up), how to
  // get in, contacts and notes only for the person on the way (the hub decides; every fetch is logged) ------------
  function showHome(el, a) {
    const section = el.querySelector("section.home");
    if (!section) return;
    if (!a.resident_id) { section.hidden = true; delete el.dataset.homeFor; return; }
    const mine = String(a.accepted_by_id) === String(cfg.staff_id);
    const onTheWay = mine && (a.state === "en_route" || a.state === "on_site");
    const key = a.id + ":" + (onTheWay ? "way" : "see");
    if (el.dataset.homeFor === key) return;
    el.dataset.homeFor = key;
    if (!onTheWay) {  // no longer on the way (taken over, or never): the way in goes at once, not after the fetch
      setText(section, ".home-access", "");
      show(section, ".home-access-part", false);
      setText(section, ".home-notes", "");
      show(section, ".home-notes-part", false);
      section.querySelector(".home-contacts").textContent = "";
    }
    fetch("/staff/alarms/" + encodeURIComponent(a.id) + "/home", { credentials: "same-origin", cache: "no-store" })
      .then(function (resp) { return resp.ok ? resp.json() : { home: null }; })
      .then(function (data) {
        if (el.dataset.homeFor !== key) return;  // a later answer is on its way (she set off meanwhile)
        const h = data.home;
        if (!h) { section.hidden = true; return; }
        setText(section, ".home-name", h.name || "");
        setText(section, ".home-address", h.address || "");
        setText(section, ".home-access", h.access || "");
        show(section, ".home-access-part", !!h.access);
        setText(section, ".home-notes", h.notes || "");
        show(section, ".home-notes-part", !!h.notes);
        const ul = section.querySelector(".home-contacts");
        ul.textContent = "";
        (h.contacts || []).forEach(function (c) {
          const li = document.createElement("li");
          li.textContent = c.name + (c.relation ? " (" + c.relation + ")" : "") + " ";
          if (c.phone) {
            const link = document.createElement("a");
            link.href = "tel:" + c.phone.replace(/[^+0-9]/g, "");
            link.textContent = c.phone;
            li.appendChild(link);
          }
          ul.appendChild(li);
        });
        section.hidden = false;
      })
      .catch(function () { /* offline: the banner says so */ });
  }

  // "Resolve now" folded under the next step: opening it shows the resolve form
  list.addEventListener("toggle", function (ev) {
    const early = ev.target;
    if (!(early instanceof HTMLDetailsElement)) return;
    const form = early.closest("li.alarm").querySelector("form.act-resolve");
    if (form && !early.hidden) form.hidden = !early.open;
  }, true);

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
    soundButton.classList.toggle("invisible", soundWanted() || !!(audio && audio.state === "running"));
  }
  // one tap per login: the choice is kept for the session (sessionStorage); on the next page the first touch anywhere
  // (a browser needs one before it plays sound) turns it back on without asking again
  const SOUND_KEY = "vaka.sound";
  function soundWanted() { try { return sessionStorage.getItem(SOUND_KEY) === "on"; } catch (e) { return false; } }
  function enableSound() {
    try { sessionStorage.setItem(SOUND_KEY, "on"); } catch (e) { /* storage off */ }
    try {
      if (!audio) audio = new (window.AudioContext || window.webkitAudioContext)();
      audio.resume().then(updateRing);
    } catch (e) { /* no Web Audio */ }
    updateRing();
  }
  soundButton.addEventListener("click", enableSound);
  ["pointerdown", "keydown"].forEach(function (kind) {
    document.addEventListener(kind, function once() {
      if (soundWanted()) enableSound();
      document.removeEventListener(kind, once);
    });
  });
  if (soundWanted()) enableSound(); // plays at once where the browser allows, else on the first touch
  soundButton.hidden = false;
  soundButton.classList.remove("invisible");

  // --- live connection with receipts -----------------------------------------------------------------------------
  let ws = null;
  let lastHeard = 0;
  let retryMs = 500;
  const savedRate = { rate: null };
  function lost() {
    banner.hidden = false;
    document.body.classList.add("offline");
    // the hub's clock is not known while it is out of reach: ages stop (they are shown again on reconnect)
    if (clock.rate !== 0) { savedRate.rate = clock.rate; clock.hub = hubNow(); clock.local = performance.now(); clock.rate = 0; }
    list.querySelectorAll(".actions button, form.answer button").forEach(function (b) { b.disabled = true; });
  }
  function back() {
    if (savedRate.rate !== null && clock.rate === 0) { clock.rate = savedRate.rate; clock.local = performance.now(); }
    savedRate.rate = null;
    list.querySelectorAll(".actions button, form.answer button").forEach(function (b) { b.disabled = false; });
  }
  function connect() {
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/staff/ws";
    ws = new WebSocket(url);
    ws.onopen = function () { retryMs = 500; lastHeard = Date.now(); };
    ws.onmessage = function (ev) {
      lastHeard = Date.now();
      if (document.body.classList.contains("offline")) back();
      banner.hidden = true;
      document.body.classList.remove("offline");
      const msg = JSON.parse(ev.data);
      if (msg.now) syncClock(msg.now, typeof msg.rate === "number" ? msg.rate : undefined);
      if (msg.type === "snapshot") {
        snapshot(msg.alarms);
      } else if (msg.type === "alarm") {
        syncClock(msg.alarm.now);
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
  function send(form, takeOver) {
    const body = new URLSearchParams(new FormData(form));
    if (takeOver) body.set("take_over", "1");
    return fetch(form.action, {
      method: "POST",
      body: body,
      headers: { "X-Requested-With": "fetch", "X-CSRF-Token": cfg.csrf },
      credentials: "same-origin",
    }).then(function (resp) { return resp.json(); });
  }
  list.addEventListener("submit", function (ev) {
    const form = ev.target;
    if (!(form instanceof HTMLFormElement)) return;
    ev.preventDefault();
    flash.hidden = true;
    const buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    send(form, false).then(function (data) {
      // a colleague's alarm: ask before taking it over, and say so in the alarm log
      if (!data.ok && data.handover && window.confirm(cfg.take_over.replace("{name}", data.handover))) {
        return send(form, true);
      }
      return data;
    }).then(function (data) {
      if (data.alarm) { upsert(data.alarm); sortList(); updateRing(); }
      else if (!data.ok && !data.handover) { flash.textContent = cfg.state_error; flash.hidden = false; }
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

// "Alarm system degraded – go to physical rounds": the hub cannot reach its devices or fails its self-test (canary)
(function () {
  "use strict";
  const banner = document.getElementById("degraded");
  if (!banner) return;
  function check() {
    fetch("/staff/health", { credentials: "same-origin", cache: "no-store" })
      .then(function (resp) { return resp.ok ? resp.json() : null; })
      .then(function (body) { if (body) banner.hidden = !body.degraded; })
      .catch(function () { /* the page's own connection banner covers a hub that does not answer */ });
  }
  setInterval(check, 10000);
})();
