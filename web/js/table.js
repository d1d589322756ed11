// A table whose columns sort on click (the choice kept across refreshes).
import { h } from "./dom.js";

// columns: [{ key, label, value(row) -> sortable, cell(row) -> Node|string, num }]
export function sortableTable(columns, rows, state, onSort) {
  const sorted = [...rows];
  const col = columns.find((c) => c.key === state.key);
  if (col) {
    const dir = state.dir === "asc" ? 1 : -1;
    sorted.sort((a, b) => {
      const x = col.value(a), y = col.value(b);
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * dir;
    });
  }
  const head = h("tr", {}, columns.map((c) => h("th", {
    scope: "col",
    "aria-sort": c.key === state.key ? (state.dir === "asc" ? "ascending" : "descending") : undefined,
    "data-key": c.key,
    onclick: () => {
      const dir = state.key === c.key && state.dir === "asc" ? "desc" : "asc";
      onSort({ key: c.key, dir });
    },
    text: c.label,
  })));
  const body = sorted.map((r) => h("tr", { "data-id": r.id }, columns.map((c) =>
    h("td", { class: c.num ? "num" : undefined }, c.cell ? c.cell(r) : String(c.value(r) ?? "")))));
  return h("table", {}, h("thead", {}, head), h("tbody", {}, body));
}
