// Search across every recording (typed and printed text), filtered by
// user, target and time; each hit opens the session at its offset.
import { h, mount, clear } from "./dom.js";
import * as api from "./api.js";
import { sortableTable } from "./table.js";
import { timeCell } from "./time.js";
import { field, input, timeInput, isoOf, query } from "./forms.js";

// The session detail at the hit: `#/session/ID?t=SECONDS`.
export function hitLink(hit) {
  const t = Math.max(0, Math.floor(hit.offset * 10) / 10);
  return `#/session/${encodeURIComponent(hit.session)}?t=${t}`;
}

// The session's evidence bundle (recordings, chain, signed trailer, key,
// audit slice, verify report), checked offline by `portcullis verify`.
export function evidenceLink(session) {
  return h("a", { class: "evidence", href: `/api/v1/sessions/${encodeURIComponent(session)}/evidence`,
    download: `portcullis-evidence-${session}.tar`, title: "Download the evidence bundle", text: "Evidence" });
}

function columns() {
  return [
    { key: "session", label: "Session", value: (x) => x.session,
      cell: (x) => h("a", { class: "mono hit", href: hitLink(x), text: x.session }) },
    { key: "user", label: "User", value: (x) => x.user, cell: (x) => h("strong", { text: x.user }) },
    { key: "target", label: "Target", value: (x) => `${x.login}@${x.target}` },
    { key: "started", label: "Session started", value: (x) => x.session_started_ms,
      cell: (x) => timeCell(x.session_started_ms, h) },
    { key: "offset", label: "At", num: true, value: (x) => x.offset, cell: (x) => `+${x.offset.toFixed(1)} s` },
    { key: "kind", label: "Kind", value: (x) => x.kind, cell: (x) => h("span", { class: `kind ${x.kind}`, text: x.kind }) },
    { key: "excerpt", label: "Text", value: (x) => x.excerpt,
      cell: (x) => h("span", { class: "mono excerpt", text: x.excerpt }) },
    { key: "evidence", label: "", value: () => "", cell: (x) => evidenceLink(x.session) },
  ];
}

export function searchPage(me, params) {
  void me;
  const q = input("q", params.get("q"), { placeholder: "text typed or printed", required: true, autofocus: true });
  const user = input("user", params.get("user"));
  const target = input("target", params.get("target"));
  const since = timeInput("since", params.get("since"));
  const until = timeInput("until", params.get("until"));
  const form = h("form", { class: "card filters", id: "search-form" },
    field("q", "Text", q), field("user", "User", user), field("target", "Target", target),
    field("since", "Sessions from", since), field("until", "until", until),
    h("div", { class: "field" }, h("button", { type: "submit", text: "Search" })));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = `#/search?${query({ q: q.value, user: user.value.trim(), target: target.value.trim(),
      since: isoOf(since), until: isoOf(until) })}`;
  });
  const status = h("p", { class: "muted", id: "search-status" });
  const results = h("div", { id: "search-results" });
  mount(h("h1", { text: "Search recordings" }), form, status, results);
  const sort = { key: "started", dir: "desc" };
  if (!params.get("q")) {
    status.textContent = "Exact text, as typed or as it appeared on screen.";
    return () => {};
  }
  let hits = [];
  const render = () => clear(results).append(hits.length
    ? sortableTable(columns(), hits.map((x, i) => ({ ...x, id: `${x.recording}:${i}` })), sort,
      (st) => { Object.assign(sort, st); render(); })
    : h("p", { class: "muted", id: "no-hits", text: "No match." }));
  status.textContent = "Searching…";
  (async () => {
    try {
      const r = await api.get(`/api/v1/search?${query({ q: params.get("q"), user: params.get("user"),
        target: params.get("target"), since: params.get("since"), until: params.get("until") })}`);
      hits = r.hits;
      status.textContent = `${r.hits.length} match(es) in ${r.scanned} recording(s) opened, ${r.elapsed_ms} ms`
        + (r.truncated ? " — first results only; narrow the filters" : "");
      render();
    } catch (x) {
      status.textContent = "";
      clear(results).append(h("p", { class: "error", text: x.message }));
    }
  })();
  return () => {};
}
