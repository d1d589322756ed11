// Same-origin requests with the session cookie; state-changing ones carry
// the console session's CSRF token in a header.

let csrf = null;
export function setCsrf(t) { csrf = t; }

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function call(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (method !== "GET" && method !== "HEAD" && csrf) headers["X-CSRF-Token"] = csrf;
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  let data = null;
  try { data = await r.json(); } catch (_) { data = null; }
  if (!r.ok) {
    const e = new ApiError(r.status, (data && data.error) || `${r.status} ${r.statusText}`);
    if (r.status === 401) window.dispatchEvent(new CustomEvent("signed-out"));
    throw e;
  }
  return data;
}

export const get = (p) => call("GET", p);
export const post = (p, b) => call("POST", p, b);
export const del = (p) => call("DELETE", p);
