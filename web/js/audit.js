// The audit log: filters (kind, actor, subject, session, time), pages of
// the hash chain oldest first, and a JSON-lines export of the same filter.
import { h, mount, clear } from "./dom.js";
import * as api from "./api.js";
import { sortableTable } from "./table.js";
import { timeCell } from "./time.js";
import { field, input, timeInput, isoOf, query } from "./forms.js";

const ms = (iso) => (iso ? String(new Date(iso).getTime()) : "");

function columns() {
  return [
    { key: "seq", label: "Seq", num: true, value: (e) => e.seq },
    { key: "time", label: "Time", value: (e) => e.time, cell: (e) => timeCell(Date.parse(e.time), h) },
    { key: "kind", label: "Kind", value: (e) => e.kind, cell: (e) => h("span", { class: "kind", text: e.kind }) },
    { key: "actor", label: "Actor", value: (e) => e.actor },
    { key: "source", label: "Source", value: (e) => e.source, cell: (e) => h("span", { class: "mono", text: e.source }) },
    { key: "subject", label: "Subject", value: (e) => e.subject },
    { key: "session", label: "Session", value: (e) => e.session || "",
      cell: (e) => (e.session ? h("a", { class: "mono", href: `#/session/${encodeURIComponent(e.session)}`, text: e.session }) : "") },
    { key: "detail", label: "Detail", value: (e) => JSON.stringify(e.detail),
      cell: (e) => h("code", { class: "detail", text: JSON.stringify(e.detail) }) },
  ];
}

export function auditPage(me, params) {
  void me;
  const kind = input("kind", params.get("kind"), { placeholder: "e.g. session, lock.created" });
  const actor = input("actor", params.get("actor"));
  const subject = input("subject", params.get("subject"));
  const session = input("session", params.get("session"));
  const since = timeInput("since", params.get("since"));
  const until = timeInput("until", params.get("until"));
  const form = h("form", { class: "card filters", id: "audit-form" },
    field("kind", "Kind (or prefix)", kind), field("actor", "Actor (user)", actor), field("subject", "Subject", subject),
    field("session", "Session", session), field("since", "From", since), field("until", "until", until),
    h("div", { class: "field" }, h("button", { type: "submit", text: "Filter" })));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = `#/audit?${query({ kind: kind.value.trim(), actor: actor.value.trim(), subject: subject.value.trim(),
      session: session.value.trim(), since: isoOf(since), until: isoOf(until) })}`;
  });
  const filter = {
    kind: params.get("kind"), actor: params.get("actor"), subject: params.get("subject"),
    session: params.get("session"), since_ms: ms(params.get("since")), until_ms: ms(params.get("until")),
  };
  const exportLink = h("a", { class: "button secondary", id: "audit-export", download: "portcullis-audit.jsonl",
    href: `/api/v1/audit/export?${query(filter)}`, text: "Export JSON lines" });
  const status = h("span", { class: "muted", id: "audit-status" });
  const table = h("div", { id: "audit-events" });
  const more = h("button", { class: "secondary", id: "audit-more", hidden: true, text: "Next page" });
  mount(h("div", { class: "bar" }, h("h1", { text: "Audit log" }), h("span", { class: "spacer" }), exportLink),
    form, h("p", {}, status), table, h("p", {}, more));
  const sort = { key: "seq", dir: "asc" };
  let events = [];
  let next = null;
  const render = () => clear(table).append(events.length
    ? sortableTable(columns(), events.map((e) => ({ ...e, id: String(e.seq) })), sort, (st) => { Object.assign(sort, st); render(); })
    : h("p", { class: "muted", text: "No events." }));
  const load = async () => {
    try {
      const r = await api.get(`/api/v1/audit?${query({ ...filter, limit: 200, after: next })}`);
      events = events.concat(r.events);
      next = r.next;
      more.hidden = !next;
      status.textContent = `${events.length} event(s), oldest first`;
      render();
    } catch (x) {
      status.textContent = "";
      clear(table).append(h("p", { class: "error", text: x.message }));
    }
  };
  more.addEventListener("click", load);
  load();
  return () => {};
}
