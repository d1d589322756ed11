// Locks (the kill switch): the list, create with reason and expiry, lift
// (a responder its own, an admin any: the server decides), and lockdown of
// everything behind a typed confirmation. `lockMenu` is the "lock the
// user / target / source" action a live session row offers.
import { h, mount, clear } from "./dom.js";
import * as api from "./api.js";
import { sortableTable } from "./table.js";
import { timeCell } from "./time.js";
import { field, input } from "./forms.js";

export const CONFIRM_WORD = "LOCKDOWN";
export const canLock = (me) => me.role === "responder" || me.role === "admin";
const actorOf = (me) => `console:${me.user}`;

// "10.1.2.3:5555" or "[::1]:22" → the address as a one-host network.
export function sourceNet(source) {
  let ip = source || "";
  const v6 = ip.match(/^\[([^\]]+)\](:\d+)?$/);
  if (v6) ip = v6[1];
  else if (/^[\d.]+:\d+$/.test(ip)) ip = ip.replace(/:\d+$/, "");
  if (ip.includes("/")) return ip;
  return ip.includes(":") ? `${ip}/128` : `${ip}/32`;
}

async function create(scope, reason, expires) {
  const body = { scope, reason };
  if (expires) body.expires = expires;
  if (scope.kind === "all") body.confirm = CONFIRM_WORD;
  return api.post("/api/v1/locks", body);
}

// A dialog creating one lock; `done` runs after it is in force.
export function lockDialog(scope, label, done) {
  const reason = h("textarea", { id: "lock-reason", rows: 3, required: true });
  const expires = input("lock-expires", "1h", { placeholder: "e.g. 30m, 2h, 1d; empty: until lifted" });
  const err = h("div", { class: "error", role: "alert" });
  const close = () => { dlg.close(); dlg.remove(); };
  const dlg = h("dialog", { id: "lock-dialog" },
    h("h2", {}, "Lock ", h("strong", { text: label })),
    h("p", { class: "muted", text: "Ends every live session it covers and refuses new ones." }),
    field("lock-reason", "Reason (shown to the user and audited)", reason),
    field("lock-expires", "Expires after", expires), err,
    h("div", { class: "actions" },
      h("button", { class: "secondary", type: "button", onclick: close, text: "Cancel" }),
      h("button", { class: "danger", id: "confirm-lock", type: "button", text: "Lock",
        onclick: async () => {
          if (!reason.value.trim()) { err.textContent = "A reason is required."; return; }
          try {
            await create(scope, reason.value.trim(), expires.value.trim());
            close();
            if (done) done();
          } catch (x) { err.textContent = x.message; }
        } })));
  document.body.append(dlg);
  dlg.showModal();
  reason.focus();
}

// Buttons locking a live session's user, target or source (none for an
// auditor). For the sessions page: `cell: (s) => lockMenu(s, me, refresh)`.
export function lockMenu(s, me, done) {
  if (!canLock(me)) return null;
  const b = (kind, value, text) => h("button", { class: "secondary small lock-action", type: "button",
    "data-kind": kind, "data-id": s.id, text, onclick: () => lockDialog({ kind, value }, `${kind} ${value}`, done) });
  return h("span", { class: "lock-menu" },
    s.user ? b("user", s.user, "Lock user") : null,
    s.target ? b("target", s.target, "Lock target") : null,
    s.source ? b("source", sourceNet(s.source), "Lock source") : null);
}

function scopeText(l) {
  return l.scope.kind === "all" ? "everything" : `${l.scope.kind} ${l.scope.value}`;
}

function columns(me, onLift) {
  const cols = [
    { key: "scope", label: "Scope", value: scopeText, cell: (l) => h("strong", { text: scopeText(l) }) },
    { key: "reason", label: "Reason", value: (l) => l.reason },
    { key: "author", label: "By", value: (l) => l.author },
    { key: "created", label: "Created", value: (l) => l.created_ms, cell: (l) => timeCell(l.created_ms, h) },
    { key: "expires", label: "Expires", value: (l) => l.expires_ms,
      cell: (l) => (l.expires_ms ? timeCell(l.expires_ms, h) : h("span", { class: "muted", text: "until lifted" })) },
    { key: "state", label: "State", value: (l) => (l.in_force ? 1 : 0),
      cell: (l) => h("span", { class: `badge ${l.in_force ? "bad" : "wait"}`,
        text: l.in_force ? "in force" : (l.lifted_ms ? `lifted by ${l.lifted_by || "?"}` : "expired") }) },
  ];
  if (canLock(me)) {
    cols.push({ key: "actions", label: "", value: () => "", cell: (l) =>
      (l.in_force && (me.role === "admin" || l.author === actorOf(me))
        ? h("button", { class: "secondary lift", "data-id": l.id, onclick: () => onLift(l), text: "Lift" }) : "") });
  }
  return cols;
}

function createForm(done) {
  const kind = h("select", { id: "new-kind", name: "new-kind" },
    ["user", "target", "source", "session"].map((k) => h("option", { value: k, text: k })));
  const value = input("new-value", "", { placeholder: "name, CIDR or session id", required: true });
  const reason = input("new-reason", "", { required: true });
  const expires = input("new-expires", "1h", { placeholder: "30m, 2h, 1d; empty: until lifted" });
  const err = h("div", { class: "error", role: "alert" });
  const form = h("form", { class: "card filters", id: "lock-form" },
    field("new-kind", "Scope", kind), field("new-value", "Value", value), field("new-reason", "Reason", reason),
    field("new-expires", "Expires after", expires),
    h("div", { class: "field" }, h("button", { class: "danger", type: "submit", id: "create-lock", text: "Lock" })), err);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    err.textContent = "";
    let v = value.value.trim();
    if (kind.value === "source") v = sourceNet(v);
    try {
      await create({ kind: kind.value, value: v }, reason.value.trim(), expires.value.trim());
      value.value = ""; reason.value = "";
      done();
    } catch (x) { err.textContent = x.message; }
  });
  return form;
}

// Everything locked: only once the word is typed exactly.
function lockdownForm(done) {
  const word = input("lockdown-word", "", { autocomplete: "off", placeholder: CONFIRM_WORD });
  const reason = input("lockdown-reason", "", { required: true });
  const err = h("div", { class: "error", role: "alert", id: "lockdown-error" });
  const go = h("button", { class: "danger", type: "submit", id: "lockdown-all", disabled: true, text: "Lock everything" });
  word.addEventListener("input", () => { go.disabled = word.value !== CONFIRM_WORD; });
  const form = h("form", { class: "card danger-zone", id: "lockdown-form" },
    h("h2", { text: "Lockdown" }),
    h("p", {}, "Ends every live session and refuses every login until lifted. Type ",
      h("strong", { class: "mono", text: CONFIRM_WORD }), " to confirm."),
    field("lockdown-reason", "Reason", reason), field("lockdown-word", "Confirmation", word), go, err);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    err.textContent = "";
    if (word.value !== CONFIRM_WORD) { err.textContent = `Type ${CONFIRM_WORD} to confirm.`; return; }
    if (!reason.value.trim()) { err.textContent = "A reason is required."; return; }
    try {
      await create({ kind: "all" }, reason.value.trim(), "");
      word.value = ""; go.disabled = true;
      done();
    } catch (x) { err.textContent = x.message; }
  });
  return form;
}

export function locksPage(me) {
  const list = h("div", { id: "locks" });
  const status = h("span", { class: "muted", id: "locks-status" });
  const sort = { key: "created", dir: "desc" };
  let locks = [];
  const render = () => clear(list).append(locks.length
    ? sortableTable(columns(me, lift), locks, sort, (st) => { Object.assign(sort, st); render(); })
    : h("p", { class: "muted", id: "no-locks", text: "No locks." }));
  const refresh = async () => {
    try {
      locks = await api.get("/api/v1/locks");
      status.textContent = `${locks.filter((l) => l.in_force).length} in force`;
      render();
    } catch (x) { status.textContent = x.message; }
  };
  async function lift(l) {
    try {
      await api.del(`/api/v1/locks/${encodeURIComponent(l.id)}`);
    } catch (x) { status.textContent = `Not lifted: ${x.message}`; return; }
    refresh();
  }
  mount(...[h("div", { class: "bar" }, h("h1", { text: "Locks" }), h("span", { class: "spacer" }), status),
    canLock(me) ? createForm(refresh) : null, list, canLock(me) ? lockdownForm(refresh) : null].filter(Boolean));
  refresh();
  return () => {};
}
