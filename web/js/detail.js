// One session: metadata, its recordings with a verify badge each, and
// replay in asciinema-player streaming the cast from the download route.
import { h, mount, clear } from "./dom.js";
import * as api from "./api.js";
import { timeCell, bytes } from "./time.js";

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

function replay(name, box) {
  clear(box);
  const el = h("div", { class: "player", id: "player" });
  box.append(el);
  // eslint-disable-next-line no-undef
  return AsciinemaPlayer.create(`/api/v1/recordings/${encodeURIComponent(name)}/cast`, el,
    { fit: "width", idleTimeLimit: 2, autoPlay: true, speed: 1 });
}

export function detailPage(id, me) {
  const box = h("div", {}, h("p", { class: "muted", text: "Loading…" }));
  mount(h("div", { class: "bar" }, h("a", { href: "#/sessions", text: "← Sessions" })),
    h("h1", {}, "Session ", h("span", { class: "mono", text: id })), box);
  let player = null;
  (async () => {
    try {
      const s = await api.get(`/api/v1/sessions/${encodeURIComponent(id)}`);
      const playerBox = h("div", { id: "player-box" });
      const recs = (s.recordings || []).map((r) => {
        const b = h("span", { class: "badge wait", text: "verifying…" });
        badge(r.name, b);
        return h("tr", { "data-name": r.name },
          h("td", { class: "mono", text: r.name }), h("td", { text: r.kind }),
          h("td", {}, timeCell(r.started_ms, h)), h("td", { class: "num", text: String(r.events) }),
          h("td", { class: "num", text: bytes(r.cast_bytes) }), h("td", {}, b),
          h("td", {}, h("button", { class: "replay", onclick: () => {
            if (player) player.dispose();
            player = replay(r.name, playerBox);
          }, text: "Replay" })));
      });
      clear(box).append(meta(s), h("h2", { text: "Recordings" }),
        recs.length ? h("table", { id: "recordings" },
          h("thead", {}, h("tr", {}, ["Recording", "Kind", "Started", "Events", "Size", "Integrity", ""].map((t) => h("th", { text: t })))),
          h("tbody", {}, recs)) : h("p", { class: "muted", text: "No recordings." }),
        playerBox);
    } catch (x) {
      clear(box).append(h("p", { class: "error", text: x.message }));
    }
  })();
  void me;
  return () => { if (player) player.dispose(); };
}
