// Read-only views of users, groups, targets and grants. The API gives no
// secret (no password hash, credential or TOTP secret); neither does this.
import { h, mount, clear } from "./dom.js";
import * as api from "./api.js";
import { sortableTable } from "./table.js";
import { timeCell } from "./time.js";

const list = (v) => (v && v.length ? v.join(", ") : "—");

const TABLES = [
  ["users", "Users", "/api/v1/users", [
    { key: "name", label: "Name", value: (u) => u.name, cell: (u) => h("strong", { text: u.name }) },
    { key: "pw", label: "Password set", value: (u) => (u.has_password ? "yes" : "no") },
    { key: "keys", label: "Keys", num: true, value: (u) => u.key_count },
  ], (u) => u.name],
  ["groups", "Groups", "/api/v1/groups", [
    { key: "name", label: "Group", value: (g) => g.name, cell: (g) => h("strong", { text: g.name }) },
    { key: "members", label: "Members", value: (g) => list(g.members) },
  ], (g) => g.name],
  ["targets", "Targets", "/api/v1/targets", [
    { key: "name", label: "Name", value: (t) => t.name, cell: (t) => h("strong", { text: t.name }) },
    { key: "host", label: "Host", value: (t) => `${t.host}:${t.port}`, cell: (t) => h("span", { class: "mono", text: `${t.host}:${t.port}` }) },
    { key: "fp", label: "Host key", value: (t) => t.fingerprint || "", cell: (t) => h("span", { class: "mono", text: t.fingerprint || "" }) },
  ], (t) => t.name],
  ["credentials", "Stored credentials (metadata only)", "/api/v1/credentials", [
    { key: "target", label: "Target", value: (c) => c.target },
    { key: "login", label: "Login", value: (c) => c.login },
    { key: "kind", label: "Kind", value: (c) => c.kind },
    { key: "updated", label: "Updated", value: (c) => c.updated_ms, cell: (c) => timeCell(c.updated_ms, h) },
  ], (c) => `${c.target}/${c.login}`],
  ["grants", "Grants", "/api/v1/grants", [
    { key: "subject", label: "Who", value: (g) => `${g.subject_kind} ${g.subject}` },
    { key: "target", label: "Target", value: (g) => g.target },
    { key: "logins", label: "Logins", value: (g) => list(g.logins) },
    { key: "summary", label: "Allows", value: (g) => g.summary },
    { key: "until", label: "Valid until", value: (g) => g.valid_until_ms, cell: (g) => timeCell(g.valid_until_ms, h) },
    { key: "origin", label: "Origin", value: (g) => g.origin || "" },
  ], (g) => g.id],
];

export function peoplePage(me) {
  void me;
  const boxes = TABLES.map(([id, title]) => [id, title, h("div", { id: `people-${id}` }, h("p", { class: "muted", text: "Loading…" }))]);
  mount(h("h1", { text: "Users, groups, targets and grants" }),
    ...boxes.flatMap(([, title, box]) => [h("h2", { text: title }), box]));
  TABLES.forEach(([, , path, cols, key], i) => {
    const box = boxes[i][2];
    const sort = { key: cols[0].key, dir: "asc" };
    let rows = [];
    const render = () => clear(box).append(rows.length
      ? sortableTable(cols, rows.map((r) => ({ ...r, id: key(r) })), sort, (st) => { Object.assign(sort, st); render(); })
      : h("p", { class: "muted", text: "None." }));
    api.get(path).then((r) => { rows = r; render(); })
      .catch((x) => clear(box).append(h("p", { class: "error", text: x.message })));
  });
  return () => {};
}
