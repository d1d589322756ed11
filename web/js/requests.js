// Access requests: every request with its state; an admin approves or
// denies pending ones — never their own (the server refuses it too).
import { h, mount, clear } from "./dom.js";
import * as api from "./api.js";
import { sortableTable } from "./table.js";
import { timeCell } from "./time.js";

function duration(s) {
  if (s >= 86400 && s % 86400 === 0) return `${s / 86400} d`;
  if (s >= 3600 && s % 3600 === 0) return `${s / 3600} h`;
  if (s >= 60 && s % 60 === 0) return `${s / 60} min`;
  return `${s} s`;
}

function columns(me, decide) {
  const cols = [
    { key: "user", label: "User", value: (q) => q.user, cell: (q) => h("strong", { text: q.user }) },
    { key: "target", label: "Target", value: (q) => `${q.login}@${q.target}` },
    { key: "duration", label: "For", num: true, value: (q) => q.duration_secs, cell: (q) => duration(q.duration_secs) },
    { key: "reason", label: "Reason", value: (q) => q.reason },
    { key: "requested", label: "Requested", value: (q) => q.requested_ms, cell: (q) => timeCell(q.requested_ms, h) },
    { key: "state", label: "State", value: (q) => q.state,
      cell: (q) => h("span", { class: `badge ${q.state === "approved" ? "ok" : q.state === "denied" ? "bad" : "wait"}`, text: q.state }) },
    { key: "decided", label: "Decided by", value: (q) => q.decided_by || "", cell: (q) => q.decided_by || "" },
  ];
  if (me.role === "admin") {
    cols.push({ key: "actions", label: "", value: () => "", cell: (q) => {
      if (q.state !== "pending") return "";
      if (q.user === me.user) return h("span", { class: "muted own", text: "your own request" });
      return h("span", { class: "decide" },
        h("button", { class: "approve", "data-id": q.id, onclick: () => decide(q, "approve"), text: "Approve" }), " ",
        h("button", { class: "danger deny", "data-id": q.id, onclick: () => decide(q, "deny"), text: "Deny" }));
    } });
  }
  return cols;
}

export function requestsPage(me) {
  const list = h("div", { id: "requests" });
  const status = h("span", { class: "muted", id: "requests-status" });
  const sort = { key: "requested", dir: "desc" };
  let rows = [];
  const render = () => clear(list).append(rows.length
    ? sortableTable(columns(me, decide), rows, sort, (st) => { Object.assign(sort, st); render(); })
    : h("p", { class: "muted", text: "No access requests." }));
  const refresh = async () => {
    try {
      rows = await api.get("/api/v1/requests");
      status.textContent = `${rows.filter((q) => q.state === "pending").length} pending`;
      render();
    } catch (x) { status.textContent = x.message; }
  };
  async function decide(q, how) {
    try {
      await api.post(`/api/v1/requests/${encodeURIComponent(q.id)}/${how}`, {});
    } catch (x) { status.textContent = `Not decided: ${x.message}`; return; }
    refresh();
  }
  mount(h("div", { class: "bar" }, h("h1", { text: "Access requests" }), h("span", { class: "spacer" }), status), list);
  refresh();
  return () => {};
}
