// The investigation and control pages (search, audit log, locks, access
// requests, people): their nav entries and hash routes, `#/page?query`.
import { searchPage } from "./search.js";
import { auditPage } from "./audit.js";
import { locksPage } from "./locks.js";
import { requestsPage } from "./requests.js";
import { peoplePage } from "./people.js";

export const NAV = [
  ["#/search", "Search", "nav-search"],
  ["#/audit", "Audit log", "nav-audit"],
  ["#/locks", "Locks", "nav-locks"],
  ["#/requests", "Access requests", "nav-requests"],
  ["#/people", "Users & targets", "nav-people"],
];

const PAGES = {
  "/search": searchPage,
  "/audit": auditPage,
  "/locks": locksPage,
  "/requests": requestsPage,
  "/people": peoplePage,
};

// Adds the nav links once (after any already in the page).
export function addNav(nav, h) {
  for (const [href, label, id] of NAV) {
    if (!document.getElementById(id)) nav.append(h("a", { href, id, text: label }));
  }
}

// The page for this hash and its stop function, or null when not ours.
export function adminRoute(hash, me) {
  const [path, qs] = hash.replace(/^#/, "").split("?");
  const page = PAGES[path];
  return page ? page(me, new URLSearchParams(qs || "")) || (() => {}) : null;
}
