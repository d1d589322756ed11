// One session: metadata, its recordings with a verify badge each, and
// replay in asciinema-player from the segmented index (the player fetches
// segments as it plays or seeks: a large recording is never loaded whole).
// Speed, idle cap and typed input are controls; markers are chapters;
// `#/session/ID?recording=NAME&t=SECONDS` opens the player at that offset
// of the recording (seconds as recorded; the idle cap is mapped).
import { h, mount, clear } from "./dom.js";
import * as api from "./api.js";
import { timeCell, bytes } from "./time.js";
import { evidenceLink } from "./search.js";

function meta(s) {
  const row = (k, v) => [h("dt", { text: k }), h("dd", {}, v)];
  return h("dl", { class: "meta card", id: "meta" },
    row("User", s.user), row("From", h("span", { class: "mono", text: s.source })),
    row("Target", s.target || "—"), row("Login", s.login || "—"), row("Kind", s.kind),
    row("Started", timeCell(s.started_ms, h)), row("Ended", s.live ? "still running" : timeCell(s.ended_ms, h)),
    row("End", s.end_reason || "—"), row("Bytes ↑/↓", `${bytes(s.bytes_up)} / ${bytes(s.bytes_down)}`),
    row("Session", h("span", { class: "mono", text: s.id })));
}

async function badge(name, el) {
  try {
    const v = await api.get(`/api/v1/recordings/${encodeURIComponent(name)}/verify`);
    el.className = `badge ${v.ok ? "ok" : "bad"}`;
    el.textContent = v.ok ? `verified · ${v.signed_checkpoints} signed checkpoints` : `FAILED: ${v.problem || "altered"}`;
    el.title = JSON.stringify(v, null, 1);
  } catch (x) {
    el.className = "badge bad";
    el.textContent = `not verified: ${x.message}`;
  }
}

// Recording seconds → timeline seconds under the index's shortened pauses.
function shown(index, raw) {
  let shift = 0;
  for (const [at, s] of index.cuts || []) { if (at <= raw) shift = s; else break; }
  return Math.max(0, Math.min(index.duration, raw - shift));
}
function recorded(index, t) {
  let shift = 0;
  for (const [at, s] of index.cuts || []) { if (at - s <= t) shift = s; else break; }
  return t + shift;
}

const fmt = (t) => {
  const s = Math.floor(t % 60), m = Math.floor(t / 60) % 60, hr = Math.floor(t / 3600);
  return `${hr ? `${hr}:` : ""}${String(m).padStart(hr ? 2 : 1, "0")}:${String(s).padStart(2, "0")}`;
};

// The replay panel of one recording; `opts`: { t (recording seconds), speed, idle, input }.
function replay(name, box, opts) {
  const o = { speed: 1, idle: 2, input: false, ...opts };
  let player = null, index = null, gen = 0;
  const el = h("div", { class: "player", id: "player" });
  const chapters = h("ol", { class: "chapters", id: "chapters" });
  const info = h("span", { class: "muted", id: "replay-info" });
  const select = (id, label, values, cur, on) => h("label", { class: "ctl" }, label + " ",
    h("select", { id, onchange: (e) => on(e.target.value) },
      values.map(([v, t]) => h("option", { value: String(v), selected: String(v) === String(cur), text: t }))));
  const reopen = (changes) => {
    const at = player ? recorded(index, player.getCurrentTime() || 0) : o.t;
    Object.assign(o, changes, { t: at });
    load();
  };
  const controls = h("div", { class: "controls bar" },
    select("speed", "Speed", [[0.5, "0.5×"], [1, "1×"], [2, "2×"], [4, "4×"], [8, "8×"]], o.speed, (v) => reopen({ speed: Number(v) })),
    select("idle", "Pauses", [[0, "as recorded"], [0.5, "≤ 0.5 s"], [2, "≤ 2 s"], [5, "≤ 5 s"]], o.idle, (v) => reopen({ idle: Number(v) })),
    h("label", { class: "ctl" }, h("input", { type: "checkbox", id: "show-input", checked: o.input,
      onchange: (e) => reopen({ input: e.target.checked }) }), " Show typed input"),
    h("span", { class: "spacer" }), info);
  clear(box).append(h("h2", {}, "Replay ", h("span", { class: "mono", text: name })), controls,
    h("div", { class: "replay-view" }, el, h("div", { class: "side card" }, h("h3", { text: "Chapters" }), chapters)));

  async function load() {
    const my = ++gen;
    const q = new URLSearchParams();
    if (o.idle > 0) q.set("idle", String(o.idle));
    if (o.input) q.set("input", "1");
    const url = `/api/v1/recordings/${encodeURIComponent(name)}/segments?${q}`;
    const started = performance.now();
    info.textContent = "loading…";
    try {
      index = await api.get(url);
    } catch (x) {
      info.textContent = `cannot replay: ${x.message}`;
      return;
    }
    if (my !== gen) return;
    if (player) player.dispose();
    clear(el);
    const startAt = o.t ? shown(index, o.t) : 0;
    // eslint-disable-next-line no-undef
    player = AsciinemaPlayer.create({ url, format: "segmented" }, el,
      { fit: "width", autoPlay: true, speed: o.speed, startAt });
    player.addEventListener("playing", () => {
      if (my === gen && !el.dataset.startMs) el.dataset.startMs = String(Math.round(performance.now() - started));
    });
    info.textContent = `${fmt(index.duration)} · ${index.events} events · ${bytes(index.bytes)} · ${index.segments.length} segment(s)`;
    clear(chapters).append(...(index.markers.length ? index.markers.map(([t, label]) =>
      h("li", {}, h("button", { class: "link chapter", "data-t": String(t), onclick: () => { player.seek(t); player.play(); } },
        h("span", { class: "mono muted", text: fmt(t) + " " }), h("span", { text: label }))))
      : [h("li", { class: "muted", text: "No markers." })]));
  }
  load();
  return { dispose: () => { gen++; if (player) player.dispose(); } };
}

// Channels, forwards, file operations and audit events of the session
// (GET /sessions/{id}/activity). Every value came from a peer or a user:
// all of it goes in as text.
const table = (id, cols, rows, empty) => rows.length
  ? h("table", { id }, h("thead", {}, h("tr", {}, cols.map((c) => h("th", { text: c })))), h("tbody", {}, rows))
  : h("p", { class: "muted", id, text: empty });
const td = (text, cls) => h("td", { class: cls, text: text === null || text === undefined || text === "" ? "—" : String(text) });
const num = (n) => (typeof n === "number" ? bytes(n) : "—");

function activity(a) {
  const channels = (a.channels || []).map((c) => h("tr", { "data-recording": c.recording },
    td(c.channel, "num"), td(c.kind), td(c.command, "mono command"), h("td", {}, timeCell(c.started_ms, h)),
    td(c.recording, "mono")));
  const forwards = (a.forwards || []).map((f) => h("tr", {},
    td(f.kind), td(f.destination, "mono destination"), td(f.requested, "mono"),
    h("td", {}, timeCell(f.opened ? Date.parse(f.opened) : null, h)), td(num(f.bytes_up), "num"), td(num(f.bytes_down), "num"),
    td(f.closed ? f.reason : "open", "reason")));
  const files = (a.files || []).flatMap((r) => [
    ...r.ops.map((o) => h("tr", {}, td(r.recording, "mono"), td(o.op, "op"), td(o.path, "mono path"),
      td(typeof o.bytes === "number" ? bytes(o.bytes) : null, "num"), td(o.text, "mono muted"))),
    r.more ? h("tr", {}, h("td", { colspan: "5", class: "muted", text: `${r.more} more operations not listed` })) : null,
  ]).filter(Boolean);
  const audit = (a.audit || []).map((e) => h("tr", {},
    td(e.seq, "num"), h("td", {}, timeCell(Date.parse(e.time), h)), td(e.kind, "mono"), td(e.actor), td(e.subject),
    td(JSON.stringify(e.detail), "mono detail")));
  return [
    h("h2", { text: "Channels" }),
    table("channels", ["#", "Kind", "Command", "Started", "Recording"], channels, "No channels."),
    h("h2", { text: "Forwards" }),
    table("forwards", ["Kind", "Destination", "Asked for", "Opened", "Bytes ↑", "Bytes ↓", "End"], forwards, "No forwards."),
    h("h2", { text: "File operations" }),
    table("files", ["Recording", "Operation", "Path", "Bytes", "Marker"], files, "No file operations."),
    h("h2", { text: "Audit events" }),
    table("session-audit", ["Seq", "Time", "Kind", "Actor", "Subject", "Detail"], audit, "No audit events."),
    a.audit_truncated ? h("p", { class: "muted", text: "Only the first 2000 events are shown; the audit page lists them all." }) : null,
  ].filter(Boolean);
}

export function detailPage(id, me, params = new URLSearchParams()) {
  const box = h("div", {}, h("p", { class: "muted", text: "Loading…" }));
  mount(h("div", { class: "bar" }, h("a", { href: "#/sessions", text: "← Sessions" })),
    h("h1", {}, "Session ", h("span", { class: "mono", text: id })), box);
  let player = null;
  const t = Number(params.get("t"));
  (async () => {
    try {
      const s = await api.get(`/api/v1/sessions/${encodeURIComponent(id)}`);
      const playerBox = h("div", { id: "player-box" });
      const open = (name, extra) => {
        if (player) player.dispose();
        player = replay(name, playerBox, extra);
      };
      const recs = (s.recordings || []).map((r) => {
        const b = h("span", { class: "badge wait", text: "verifying…" });
        // Still being written: signed when the channel ends.
        if (s.live && r.state === "open") b.textContent = "recording · signed at the end";
        else badge(r.name, b);
        return h("tr", { "data-name": r.name },
          h("td", { class: "mono", text: r.name }), h("td", { text: r.kind }),
          h("td", {}, timeCell(r.started_ms, h)), h("td", { class: "num", text: String(r.events) }),
          h("td", { class: "num", text: bytes(r.cast_bytes) }), h("td", {}, b),
          h("td", {}, h("button", { class: "replay", onclick: () => open(r.name, {}), text: "Replay" }),
            s.live && r.state === "open" ? h("a", { class: "button live-link", href: `#/live/${encodeURIComponent(id)}?recording=${encodeURIComponent(r.name)}`, text: "Watch live" }) : null));
      });
      clear(box).append(...[meta(s),
        s.live ? h("p", { class: "going-live" }, h("span", { class: "badge live", text: "live" }), " This session is still running. ",
          h("a", { class: "button", id: "go-live", href: `#/live/${encodeURIComponent(id)}`, text: "Watch live" })) : null,
        s.live ? null : h("p", { class: "evidence-bar" }, evidenceLink(id),
          h("span", { class: "muted", text: " recordings, chain, signed trailer, audit key, audit slice and verify report in one tar; `portcullis verify` checks it offline" })),
        h("h2", { text: "Recordings" }),
        recs.length ? h("table", { id: "recordings" },
          h("thead", {}, h("tr", {}, ["Recording", "Kind", "Started", "Events", "Size", "Integrity", ""].map((c) => h("th", { text: c })))),
          h("tbody", {}, recs)) : h("p", { class: "muted", text: "No recordings." }),
        h("div", { id: "activity" }, h("p", { class: "muted", text: "Loading activity…" })),
        playerBox].filter(Boolean));
      api.get(`/api/v1/sessions/${encodeURIComponent(id)}/activity`)
        .then((a) => clear(box.querySelector("#activity")).append(...activity(a)))
        .catch((x) => clear(box.querySelector("#activity")).append(h("p", { class: "error", text: `activity: ${x.message}` })));
      // A link to an offset (a search hit) opens the player there.
      const want = params.get("recording");
      const rec = (s.recordings || []).find((r) => r.name === want) || (params.has("t") ? (s.recordings || [])[0] : null);
      if (rec) open(rec.name, { t: Number.isFinite(t) && t > 0 ? t : 0 });
    } catch (x) {
      clear(box).append(h("p", { class: "error", text: x.message }));
    }
  })();
  void me;
  return () => { if (player) player.dispose(); };
}
