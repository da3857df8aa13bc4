// The relatives page: passkeys where the browser supports them, and a status that re-checks its consent.
"use strict";

const csrf = document.body.dataset.csrf || "";

function passkeysSupported() {
  return Boolean(window.PublicKeyCredential && PublicKeyCredential.parseCreationOptionsFromJSON
    && PublicKeyCredential.parseRequestOptionsFromJSON && navigator.credentials);
}

async function postJSON(url, body) {
  const headers = {"Content-Type": "application/json", "X-Requested-With": "fetch"};
  if (csrf) headers["X-CSRF-Token"] = csrf;
  const response = await fetch(url, {method: "POST", headers, body: body === undefined ? "{}" : JSON.stringify(body),
    credentials: "same-origin"});
  let data = {};
  try { data = await response.json(); } catch (e) { data = {}; }
  return {ok: response.ok, status: response.status, data};
}

function say(text) {
  const message = document.getElementById("passkey-message");
  if (!message) return;
  message.textContent = text;
  message.hidden = false;
}

async function addPasskey(button) {
  try {
    const options = await postJSON("/relative/passkey/register/options");
    if (!options.ok) throw new Error("options");
    const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(options.data);
    const credential = await navigator.credentials.create({publicKey});
    const result = await postJSON("/relative/passkey/register", credential.toJSON());
    say(result.ok ? button.dataset.ok : button.dataset.fail);
  } catch (e) {
    say(button.dataset.fail);
  }
}

async function loginWithPasskey(button) {
  try {
    const options = await postJSON("/relative/passkey/login/options");
    if (!options.ok) throw new Error("options");
    const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(options.data);
    const credential = await navigator.credentials.get({publicKey});
    const result = await postJSON("/relative/passkey/login", credential.toJSON());
    if (result.ok && result.data.location) {
      window.location.assign(result.data.location);
      return;
    }
    say(button.dataset.fail);
  } catch (e) {
    say(button.dataset.fail);
  }
}

function setUpPasskeys() {
  if (!passkeysSupported()) return;
  for (const el of document.querySelectorAll(".passkey")) el.hidden = false;
  const add = document.getElementById("passkey-add");
  if (add) add.addEventListener("click", () => addPasskey(add));
  const login = document.getElementById("passkey-login");
  if (login) login.addEventListener("click", () => loginWithPasskey(login));
}

// Every refresh is a full authorization on the hub: a revoked consent or an ended session shows at the next one.
function setUpRefresh() {
  const status = document.getElementById("status");
  if (!status || !status.dataset.panelUrl) return;
  const everyMs = Math.max(1, Number(status.dataset.refreshS || "20")) * 1000;
  let timer = null;
  let gone = false;
  async function refresh() {
    if (gone || document.visibilityState === "hidden") return;
    let response;
    try {
      response = await fetch(status.dataset.panelUrl, {headers: {"X-Requested-With": "fetch"}, credentials: "same-origin"});
    } catch (e) {
      return;  // the hub is away; try again at the next tick
    }
    if (response.status === 401) {
      window.location.assign("/relative/login");
      return;
    }
    const html = await response.text();
    if (response.status === 403 || response.status === 404) {
      gone = true;
      clearInterval(timer);
    } else if (!response.ok) {
      return;
    }
    status.innerHTML = html;
  }
  timer = setInterval(refresh, everyMs);
  document.addEventListener("visibilitychange", refresh);
}

setUpPasskeys();
setUpRefresh();
