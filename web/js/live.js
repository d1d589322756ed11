// Live view: follows one recording of a running session as it is written.
// The stream is newline-delimited JSON from GET /api/v1/sessions/ID/live,
// read with fetch (it carries the CSRF header, which EventSource cannot),
// and drawn by asciinema-player through a small driver of our own. The
// server filters the output (castfile::term) and the player's terminal
// draws text as text. Read-only: nothing typed here goes anywhere.
import { h, mount } from "./dom.js";

const now = () => performance.timeOrigin + performance.now();

// A player driver (asciinema-player's custom driver interface): `onInfo`
// hears about the start, markers and the end.
function streamDriver(url, csrf, onInfo) {
  return ({ dispatch }) => {
    let ctrl = null;
    let timing = { time: 0, rate: 0, sampledAt: now() };
    const setTime = (t, rate) => { timing = { time: t, rate, sampledAt: now() }; dispatch("timing", timing); };
    const apply = (m) => {
      if (m.type === "start") {
        dispatch("reset", { size: { cols: m.cols || 80, rows: m.rows || 24 } });
        dispatch("playing");
        onInfo({ type: "start", ...m });
      } else if (m.type === "end") {
        setTime(timing.time, 0);
        onInfo(m);
        dispatch("ended", { message: m.reason });
      } else if (m.o !== undefined) {
        dispatch("output", m.o);
        setTime(m.t, 1);
      } else if (m.r !== undefined) {
        const [cols, rows] = m.r.split("x").map((n) => parseInt(n, 10));
        if (cols > 0 && rows > 0) dispatch("resize", { cols, rows });
      } else if (m.m !== undefined) {
        onInfo({ type: "marker", t: m.t, label: m.m });
      }
    };
    const run = async () => {
      try {
        const r = await fetch(url, { headers: { "X-CSRF-Token": csrf, "Accept": "application/x-ndjson" },
          credentials: "same-origin", cache: "no-store", signal: ctrl.signal });
        if (!r.ok) {
          let msg = `${r.status} ${r.statusText}`;
          try { msg = (await r.json()).error || msg; } catch (_) { /* not JSON */ }
          if (r.status === 401) window.dispatchEvent(new CustomEvent("signed-out"));
          throw new Error(msg);
        }
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let nl;
          while ((nl = buf.indexOf("\n")) >= 0) {
            const text = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (text) apply(JSON.parse(text));
          }
        }
      } catch (x) {
        if (x.name !== "AbortError") onInfo({ type: "error", message: x.message });
      }
    };
    return {
      play() {
        if (ctrl) return true;
        ctrl = new AbortController();
        dispatch("play");
        run();
        return true;
      },
      stop() { if (ctrl) ctrl.abort(); },
      getTiming() { return timing; },
    };
  };
}

export function livePage(id, recording, me) {
  const q = recording ? `?recording=${encodeURIComponent(recording)}` : "";
  const url = `/api/v1/sessions/${encodeURIComponent(id)}/live${q}`;
  const status = h("span", { class: "badge wait", id: "live-status", text: "connecting…" });
  const marks = h("ol", { class: "chapters", id: "live-markers" });
  const el = h("div", { class: "player live", id: "live-player" });
  mount(
    h("div", { class: "bar" },
      h("a", { href: `#/session/${encodeURIComponent(id)}`, text: "← Session" }),
      h("h1", {}, "Live: ", h("span", { class: "mono", text: id })),
      h("span", { class: "spacer" }), status),
    h("p", { class: "muted", text: "Read-only: the session's output as it is recorded. Nothing typed here reaches the session." }),
    el,
    h("h2", { text: "Markers" }), marks);
  const onInfo = (m) => {
    if (m.type === "start") {
      status.className = "badge live";
      status.textContent = `live · ${m.recording}`;
    } else if (m.type === "marker") {
      marks.append(h("li", {}, h("span", { class: "mono muted", text: `${m.t.toFixed(1)}s ` }), h("span", { text: m.label })));
    } else if (m.type === "end") {
      status.className = "badge wait";
      status.textContent = `ended: ${m.reason}`;
      status.id = "live-ended";
    } else if (m.type === "error") {
      status.className = "badge bad";
      status.textContent = `not watching: ${m.message}`;
    }
  };
  // eslint-disable-next-line no-undef
  const player = AsciinemaPlayer.create(streamDriver(url, me.csrf, onInfo), el,
    { fit: "width", autoPlay: true, controls: false, cols: 80, rows: 24 });
  return () => player.dispose();
}
