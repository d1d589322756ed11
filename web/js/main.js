// The console's entry: who is signed in, the sign-in form, and the
// hash routes (#/sessions, #/session/ID).
import { h, clear, mount } from "./dom.js";
import * as api from "./api.js";
import { sessionsPage } from "./sessions.js";
import { detailPage } from "./detail.js";
import { livePage } from "./live.js";
import { addNav, adminRoute } from "./pages.js";

const state = { me: null, stop: null };

function header() {
  const who = clear(document.getElementById("who"));
  document.getElementById("nav").hidden = !state.me;
  if (!state.me) return;
  who.append(
    h("span", { id: "user", text: state.me.user }),
    h("span", { class: "role", id: "role", text: state.me.role }),
    h("button", { class: "secondary", id: "signout", onclick: signOut, text: "Sign out" }),
  );
}

async function signOut() {
  try { await api.post("/console/signout"); } catch (_) { /* ended already */ }
  signedOut();
}

function signedOut() {
  state.me = null;
  api.setCsrf(null);
  header();
  signInForm();
}

function signInForm() {
  stopPage();
  const err = h("div", { class: "error", id: "error", role: "alert" });
  const user = h("input", { id: "username", name: "username", autocomplete: "username", required: true });
  const pass = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const form = h("form", { class: "card signin", id: "signin" },
    h("h1", { text: "Sign in" }),
    h("p", { class: "muted", text: "Your bastion account: password, then your authenticator code." }),
    h("label", { for: "username", text: "User name" }), user,
    h("label", { for: "password", text: "Password" }), pass,
    h("button", { type: "submit", text: "Continue" }), err);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    err.textContent = "";
    try {
      await api.post("/console/signin", { user: user.value, password: pass.value });
      codeForm(user.value);
    } catch (x) { err.textContent = x.message; }
  });
  mount(form);
  ssoButtons(form);
  user.focus();
}

// "Sign in with <IdP>" for each configured OpenID Provider: a plain link
// to the bastion's /sso/console/NAME, which redirects to the IdP.
async function ssoButtons(form) {
  let names = [];
  try {
    const r = await fetch("/sso/providers", { credentials: "same-origin" });
    if (r.ok) names = (await r.json()).providers || [];
  } catch (_) { return; }
  for (const name of names) {
    form.append(h("a", {
      class: "button sso", id: `sso-${name}`,
      href: `/sso/console/${encodeURIComponent(name)}`,
      text: `Sign in with ${name}`,
    }));
  }
}

function codeForm(name) {
  const err = h("div", { class: "error", id: "error", role: "alert" });
  const code = h("input", { id: "code", name: "code", inputmode: "numeric", autocomplete: "one-time-code", required: true });
  const form = h("form", { class: "card signin", id: "codeform" },
    h("h1", { text: "Verification code" }),
    h("p", { class: "muted" }, "Signing in as ", h("strong", { text: name }), "."),
    h("label", { for: "code", text: "Code from your authenticator" }), code,
    h("button", { type: "submit", text: "Sign in" }), err);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    err.textContent = "";
    try {
      const me = await api.post("/console/code", { code: code.value.trim() });
      signedIn(me);
    } catch (x) {
      err.textContent = x.message;
      code.value = "";
      if (x.status === 401 && /again/.test(x.message) && !/code/.test(x.message)) signInForm();
    }
  });
  mount(form);
  code.focus();
}

function signedIn(me) {
  state.me = me;
  api.setCsrf(me.csrf);
  header();
  if (!location.hash || location.hash === "#/") location.hash = "#/sessions";
  else route();
}

function stopPage() {
  if (state.stop) state.stop();
  state.stop = null;
}

function route() {
  if (!state.me) return signInForm();
  stopPage();
  const mine = adminRoute(location.hash, state.me);
  if (mine) { state.stop = mine; return; }
  const [path, query] = location.hash.split("?");
  const [, page, arg] = path.split("/");
  const params = new URLSearchParams(query || "");
  if (page === "session" && arg) state.stop = detailPage(decodeURIComponent(arg), state.me, params);
  else if (page === "live" && arg) state.stop = livePage(decodeURIComponent(arg), params.get("recording"), state.me);
  else state.stop = sessionsPage(state.me);
}

addNav(document.getElementById("nav"), h);
window.addEventListener("hashchange", route);
window.addEventListener("signed-out", () => { if (state.me) signedOut(); });

(async () => {
  try {
    const me = await api.get("/console/me");
    signedIn(me);
  } catch (_) {
    signedOut();
  }
})();
