// Live sessions (refreshed every 2 s) and all recorded ones, paged,
// sorted and filtered by the server (user, target, kind, time range);
// watch live, or terminate with a reason for responders and admins.
import { h, mount, clear } from "./dom.js";
import * as api from "./api.js";
import { sortableTable } from "./table.js";
import { timeCell, since, bytes } from "./time.js";
import { lockMenu } from "./locks.js";

const POLL_MS = 2000;
const canKill = (me) => me.role === "responder" || me.role === "admin";

function link(s) {
  return h("a", { href: `#/session/${encodeURIComponent(s.id)}`, class: "mono", text: s.id });
}

function columns(me, live, onKill, onLocked) {
  const cols = [
    { key: "user", label: "User", value: (s) => s.user, cell: (s) => h("strong", { text: s.user }) },
    { key: "source", label: "From", value: (s) => s.source, cell: (s) => h("span", { class: "mono", text: s.source }) },
    { key: "target", label: "Target", value: (s) => s.target || "" },
    { key: "login", label: "Login", value: (s) => s.login || "" },
    { key: "kind", label: "Kind", value: (s) => s.kind, cell: (s) => h("span", { class: "kind", text: s.kind }) },
    { key: "started", label: live ? "Since" : "Started", value: (s) => s.started_ms,
      cell: (s) => h("span", {}, timeCell(s.started_ms, h), live ? h("span", { class: "muted", text: ` (${since(s.started_ms)})` }) : null) },
    { key: "bytes", label: "Bytes ↑/↓", num: true, value: (s) => (s.bytes_up || 0) + (s.bytes_down || 0),
      cell: (s) => `${bytes(s.bytes_up)} / ${bytes(s.bytes_down)}` },
  ];
  if (!live) {
    cols.push({ key: "ended", label: "Ended", value: (s) => s.ended_ms, cell: (s) => timeCell(s.ended_ms, h) });
    cols.push({ key: "reason", label: "End", value: (s) => s.end_reason || "" });
  }
  cols.push({ key: "id", label: "Session", value: (s) => s.id, cell: link });
  if (live) {
    cols.push({ key: "watch", label: "", value: () => "",
      cell: (s) => h("a", { class: "button watch", "data-id": s.id, href: `#/live/${encodeURIComponent(s.id)}`, text: "Watch" }) });
  }
  if (live && canKill(me)) {
    cols.push({ key: "actions", label: "", value: () => "",
      cell: (s) => h("span", { class: "row-actions" },
        h("button", { class: "danger terminate", "data-id": s.id, onclick: () => onKill(s), text: "Terminate" }),
        lockMenu(s, me, onLocked)) });
  }
  return cols;
}

function killDialog(s, done) {
  const reason = h("textarea", { id: "reason", rows: 3, required: true });
  const err = h("div", { class: "error", role: "alert" });
  const dlg = h("dialog", { id: "terminate-dialog" },
    h("h2", {}, "Terminate session of ", h("strong", { text: s.user })),
    h("p", { class: "muted", text: `${s.target || "(no target)"} · ${s.kind} · ${s.id}` }),
    h("label", { for: "reason", text: "Reason (shown to the user and audited)" }), reason, err,
    h("div", { class: "actions" },
      h("button", { class: "secondary", type: "button", onclick: () => { dlg.close(); dlg.remove(); }, text: "Cancel" }),
      h("button", { class: "danger", id: "confirm-terminate", type: "button", text: "Terminate",
        onclick: async () => {
          if (!reason.value.trim()) { err.textContent = "A reason is required."; return; }
          try {
            await api.post(`/api/v1/sessions/${encodeURIComponent(s.id)}/terminate`, { reason: reason.value.trim() });
            dlg.close(); dlg.remove(); done();
          } catch (x) { err.textContent = x.message; }
        } })));
  document.body.append(dlg);
  dlg.showModal();
  reason.focus();
}

const PAGE = 100;
const SERVER_SORT = ["user", "target", "kind", "started", "ended", "bytes"];

// The filter bar of the recorded sessions; `onChange` gets the query.
function filters(onChange) {
  const user = h("input", { id: "f-user", placeholder: "user", autocomplete: "off" });
  const target = h("input", { id: "f-target", placeholder: "target", autocomplete: "off" });
  const kind = h("select", { id: "f-kind" }, [["", "any kind"], ["target", "target"], ["connection", "connection"]]
    .map(([v, t]) => h("option", { value: v, text: t })));
  const since = h("input", { id: "f-since", type: "datetime-local", title: "started at or after (your time zone)" });
  const until = h("input", { id: "f-until", type: "datetime-local", title: "started at or before (your time zone)" });
  let timer = null;
  const changed = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const q = {};
      if (user.value.trim()) q.user = user.value.trim();
      if (target.value.trim()) q.target = target.value.trim();
      if (kind.value) q.kind = kind.value;
      if (since.value) q.since_ms = new Date(since.value).getTime();
      if (until.value) q.until_ms = new Date(until.value).getTime();
      onChange(q);
    }, 250);
  };
  for (const el of [user, target, kind, since, until]) el.addEventListener("input", changed);
  return h("div", { class: "filters bar", id: "filters" }, user, target, kind,
    h("label", { class: "ctl", text: "from" }), since, h("label", { class: "ctl", text: "to" }), until);
}

export function sessionsPage(me) {
  const sort = { live: { key: "started", dir: "desc" }, recent: { key: "started", dir: "desc" } };
  const liveBox = h("div", { id: "live" });
  const recentBox = h("div", { id: "recent" });
  const status = h("span", { class: "muted", id: "updated" });
  const pageInfo = h("span", { class: "muted", id: "page-info" });
  let query = {}, offset = 0;
  const prev = h("button", { class: "secondary", id: "page-prev", text: "← Newer", onclick: () => { offset = Math.max(0, offset - PAGE); refresh(); } });
  const next = h("button", { class: "secondary", id: "page-next", text: "Older →", onclick: () => { offset += PAGE; refresh(); } });
  mount(
    h("div", { class: "bar" }, h("h1", { text: "Live sessions" }), h("span", { class: "spacer" }), status),
    liveBox,
    h("div", { class: "bar" }, h("h2", { text: "Recorded sessions" }), h("span", { class: "spacer" }), pageInfo, prev, next),
    filters((q) => { query = q; offset = 0; refresh(); }),
    recentBox,
  );
  let data = null;
  const render = () => {
    if (!data) return;
    const t0 = performance.now();
    const recentById = new Map(data.recent.map((r) => [r.id, r]));
    const live = data.live.map((l) => ({ ...recentById.get(l.id), ...l }));
    clear(liveBox).append(live.length
      ? sortableTable(columns(me, true, (s) => killDialog(s, refresh), refresh), live, sort.live, (st) => { sort.live = st; render(); })
      : h("p", { class: "muted", id: "no-live", text: "No live sessions." }));
    // Live ones are in the table above until they end.
    const recent = data.recent.filter((r) => !r.live);
    clear(recentBox).append(recent.length
      ? sortableTable(columns(me, false), recent, sort.recent, (st) => {
        if (!SERVER_SORT.includes(st.key)) return;
        sort.recent = st; offset = 0; refresh();
      })
      : h("p", { class: "muted", id: "no-recent", text: "No sessions match." }));
    const total = data.total ?? recent.length;
    pageInfo.textContent = total ? `${offset + 1}–${offset + data.recent.length} of ${total}` : "";
    prev.disabled = offset === 0;
    next.disabled = offset + data.recent.length >= total;
    recentBox.dataset.renderMs = String(Math.round(performance.now() - t0));
    recentBox.dataset.total = String(total);
  };
  let stopped = false;
  const refresh = async () => {
    const q = new URLSearchParams({ limit: String(PAGE), offset: String(offset), sort: sort.recent.key, dir: sort.recent.dir, ...query });
    try {
      const t0 = performance.now();
      const got = await api.get(`/api/v1/sessions?${q}`);
      if (stopped) return;
      data = got;
      status.textContent = `Updated ${new Date().toLocaleTimeString()}`;
      render();
      recentBox.dataset.loadMs = String(Math.round(performance.now() - t0));
    } catch (x) {
      status.textContent = `Not updated: ${x.message}`;
    }
  };
  refresh();
  const timer = setInterval(() => { if (!stopped && !document.querySelector("dialog[open]")) refresh(); }, POLL_MS);
  return () => { stopped = true; clearInterval(timer); };
}
