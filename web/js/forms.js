// Small form helpers shared by the investigation pages: labelled fields,
// and time inputs in the viewer's zone sent as UTC instants.
import { h } from "./dom.js";

export function field(id, label, input) {
  return h("div", { class: "field" }, h("label", { for: id, text: label }), input);
}

export function input(id, value, attrs = {}) {
  return h("input", { id, name: id, value: value || "", ...attrs });
}

// `datetime-local` shows the viewer's zone; the URL and the API get UTC.
export function timeInput(id, iso) {
  let local = "";
  if (iso) {
    const d = new Date(iso);
    if (!Number.isNaN(d.getTime())) {
      const p = (n) => String(n).padStart(2, "0");
      local = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
    }
  }
  return h("input", { id, name: id, type: "datetime-local", value: local });
}

export function isoOf(el) {
  if (!el.value) return "";
  const d = new Date(el.value);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}

// Only the non-empty values, as a query string.
export function query(values) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(values)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  return q.toString();
}
