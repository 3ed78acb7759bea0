// The dashboard's active runs, side by side, when several run at once: a card each with its
// bar, rates, ETA, deadline and its own pause/resume/stop (POST /api/runs/<id>/...). Fed by the
// `runs` event (or GET /api/runs?active=1 when polling) and by the live state of the run on
// screen. Every value is written as text, never as HTML.
(function () {
  "use strict";

  const ui = window.optioUi;
  const { fmt, fmt1, fmtRate, clock, duration, setText } = ui;

  // hooks: call(method, path, body, what) -> data|null (the dashboard's API helper),
  // message(text, kind), busy() -> bool.
  window.optioActive = function active(hooks) {
    const section = document.getElementById("active-runs");
    const list = document.getElementById("active-list");
    const count = document.getElementById("active-count");
    const states = new Map(); // runId -> latest state of an active run
    const cards = new Map(); // runId -> {root, fields, buttons}
    let current = null; // the run clients are shown by default (the main panel's)

    function el(tag, cls, text) {
      const node = document.createElement(tag);
      if (cls) node.className = cls;
      if (text !== undefined) node.textContent = text;
      return node;
    }

    function newer(state) {
      const held = states.get(state.runId);
      return !held || typeof state.seq !== "number" || state.seq >= held.seq;
    }

    // The list of active runs (a `runs` event): runs not in it have ended.
    function update(runs, currentId) {
      if (!Array.isArray(runs)) return;
      if (currentId !== undefined) current = currentId;
      const ids = new Set();
      for (const state of runs) {
        if (!state || typeof state.runId !== "string") continue;
        ids.add(state.runId);
        if (newer(state)) states.set(state.runId, state);
      }
      for (const id of [...states.keys()]) if (!ids.has(id)) states.delete(id);
      render(runs.map((s) => s && s.runId).filter((id) => states.has(id)));
    }

    // A live state of one run (the main panel's): its card follows it between lists.
    function offer(state) {
      if (!state || !states.has(state.runId) || !newer(state)) return;
      states.set(state.runId, state);
      if (!state.running) {
        states.delete(state.runId); // ended: the next list confirms it
        render([...states.keys()]);
        return;
      }
      fill(state.runId);
    }

    function makeCard(runId) {
      const root = el("article", "run-card");
      root.dataset.run = runId;
      const head = el("div", "run-card-head");
      const link = el("a", "", runId);
      link.href = `/runs/${encodeURIComponent(runId)}`;
      const badge = el("span", "badge");
      head.append(link, badge);
      const bar = el("div", "bar");
      bar.setAttribute("role", "progressbar");
      bar.setAttribute("aria-label", `Processed, run ${runId}`);
      const fillBar = el("div", "fill processed");
      bar.append(fillBar);
      const counts = el("div", "counts");
      const processed = el("span", "done");
      const enqueued = el("span", "queued muted");
      counts.append(processed, enqueued);
      const facts = el("dl", "facts");
      const fields = { badge, fillBar, bar, processed, enqueued };
      for (const [key, label] of [
        ["rate", "Rate"],
        ["share", "Share"],
        ["eta", "ETA"],
        ["failed", "Failed"],
        ["deadline", "Deadline"],
      ]) {
        const dt = el("dt", "", label);
        const dd = el("dd", key);
        facts.append(dt, dd);
        fields[key] = dd;
        fields[`${key}Label`] = dt;
      }
      const buttons = el("div", "run-card-buttons");
      const make = (action, label, cls) => {
        const button = el("button", cls || "", label);
        button.type = "button";
        button.dataset.action = action;
        button.addEventListener("click", () => control(runId, action));
        buttons.append(button);
        return button;
      };
      fields.pause = make("pause", "Pause");
      fields.resume = make("resume", "Resume");
      fields.stop = make("stop", "Stop", "danger");
      root.append(head, bar, counts, facts, buttons);
      return { root, fields };
    }

    function show(fields, key, text) {
      const hidden = text == null;
      fields[key].hidden = hidden;
      fields[`${key}Label`].hidden = hidden;
      if (!hidden) setText(fields[key], text);
    }

    function fill(runId) {
      const card = cards.get(runId);
      const s = states.get(runId);
      if (!card || !s) return;
      const f = card.fields;
      const status = s.status || (s.running ? "running" : "idle");
      const total = s.xTotal || 0;
      const pct = total ? Math.floor((s.processed / total) * 1000) / 10 : 0;
      setText(f.badge, status);
      f.badge.dataset.status = status;
      card.root.dataset.status = status;
      card.root.dataset.current = String(runId === current);
      const transform = `scaleX(${total ? Math.min(1, s.processed / total) : 0})`;
      if (f.fillBar.style.transform !== transform) f.fillBar.style.transform = transform;
      f.bar.setAttribute("aria-valuemax", total);
      f.bar.setAttribute("aria-valuenow", s.processed);
      setText(f.processed, `${fmt.format(s.processed)} / ${fmt.format(total)} (${fmt1.format(pct)}%)`);
      setText(f.enqueued, `enqueued ${fmt.format(s.enqueued)}`);
      const rate = s.rateNow ?? s.yMinute;
      const target = rate !== s.yMinute ? ` of ${fmtRate(s.yMinute)}` : "";
      show(f, "rate", `${fmtRate(rate)}/min${target}`);
      show(f, "share", s.shareRate != null ? `${fmtRate(s.shareRate)}/min (ceiling)` : null);
      let eta = "—";
      if (status === "paused") eta = "paused";
      else if (s.projectedFinish) eta = clock(s.projectedFinish);
      else if (rate > 0) eta = duration(((total - s.processed) / rate) * 60000);
      show(f, "eta", eta);
      show(f, "failed", fmt.format(s.failed || 0));
      if (s.deadline) {
        const onTrack = s.onTrack === false ? "behind" : "on track";
        show(f, "deadline", `${clock(s.deadline)} · ${onTrack}`);
        f.deadline.dataset.onTrack = String(s.onTrack !== false);
        f.deadline.classList.add("on-track");
      } else {
        show(f, "deadline", null);
      }
      controls();
    }

    function render(order) {
      for (const [id, card] of cards) {
        if (!states.has(id)) {
          card.root.remove();
          cards.delete(id);
        }
      }
      order.forEach((id, i) => {
        let card = cards.get(id);
        if (!card) {
          card = makeCard(id);
          cards.set(id, card);
        }
        if (list.children[i] !== card.root) list.insertBefore(card.root, list.children[i] || null);
        fill(id);
      });
      // one run: the main panel shows it, as before several could run at once
      section.hidden = states.size < 2;
      setText(count, states.size ? `${states.size} at once` : "");
    }

    function controls() {
      const busy = hooks.busy();
      for (const [id, card] of cards) {
        const status = (states.get(id) || {}).status;
        card.fields.pause.disabled = busy || status !== "running";
        card.fields.resume.disabled = busy || status !== "paused";
        card.fields.stop.disabled = busy || !(status === "running" || status === "paused");
      }
    }

    const DONE = { pause: "Paused", resume: "Resumed", stop: "Stopped" };
    async function control(runId, action) {
      const path = `/api/runs/${encodeURIComponent(runId)}/${action}`;
      const done = await hooks.call("POST", path, undefined, `${action} run ${runId}`);
      if (done) {
        hooks.accept(done);
        offer(done);
        hooks.message(`${DONE[action]} run ${done.runId} at ${fmt.format(done.processed)} processed`, "info");
      }
    }

    async function refresh() {
      const answer = await ui.request("GET", "/api/runs?active=1");
      if (answer.ok && answer.data) update(answer.data.runs);
    }

    return { update, offer, controls, refresh };
  };
})();
