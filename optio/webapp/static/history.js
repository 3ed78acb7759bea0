// The dashboard's table of recent runs (GET /api/runs). It is read on load and whenever the
// run on screen changes id or status, never per progress event; between reads the row of the
// run on screen follows its live state. Every value is written as text, never as HTML.
(function () {
  "use strict";

  const ui = window.optioUi;
  const LIMIT = 20;
  const COLUMN_ORDER = ["run", "status", "processed", "failed", "rate", "duration", "started", "actions"];

  // hooks: call(method, path, body, what) -> data|null (the dashboard's API helper),
  // accept(state), message(text, kind), canRetry() -> bool, askForToken().
  window.optioHistory = function history(hooks) {
    const body = document.getElementById("history-body");
    const note = document.getElementById("history-note");
    const rows = new Map(); // runId -> {run, cells, retry}
    let loading = false;
    let again = false;

    function showNote(text) {
      note.hidden = !text;
      ui.setText(note, text);
    }

    async function refresh() {
      if (loading) {
        again = true; // read once more when this read is in: it may predate the change
        return;
      }
      loading = true;
      try {
        const answer = await ui.request("GET", `/api/runs?limit=${LIMIT}`);
        if (answer.ok && answer.data && Array.isArray(answer.data.runs)) {
          showNote("");
          build(answer.data.runs);
        } else {
          if (answer.status === 401) hooks.askForToken();
          showNote(`Could not read the recent runs: ${answer.reason || "unexpected answer"}`);
        }
      } finally {
        loading = false;
        if (again) {
          again = false;
          refresh();
        }
      }
    }

    function cell(tag, className) {
      const el = document.createElement(tag);
      if (className) el.className = className;
      return el;
    }

    function build(runs) {
      rows.clear();
      const fresh = [];
      for (const run of runs) {
        if (!run || typeof run.runId !== "string") continue;
        const tr = document.createElement("tr");
        const cells = {
          run: cell("th"),
          status: cell("td"),
          processed: cell("td", "num"),
          failed: cell("td", "num"),
          rate: cell("td", "num"),
          duration: cell("td", "num"),
          started: cell("td"),
          actions: cell("td", "actions"),
        };
        cells.run.scope = "row";
        const link = document.createElement("a");
        link.href = `/runs/${encodeURIComponent(run.runId)}`;
        link.className = "run-id";
        link.textContent = run.runId;
        cells.run.append(link);
        cells.badge = cell("span", "badge");
        cells.webhook = cell("span", "webhook");
        cells.status.append(cells.badge, " ", cells.webhook);
        cells.time = cell("time");
        cells.started.append(cells.time);
        tr.append(...COLUMN_ORDER.map((name) => cells[name]));
        const row = { run, cells, retry: null };
        if (run.status === "completed" && run.failed > 0) row.retry = retryButton(run);
        if (row.retry) cells.actions.append(row.retry);
        rows.set(run.runId, row);
        fill(row, Date.now());
        fresh.push(tr);
      }
      if (!fresh.length) {
        const tr = document.createElement("tr");
        tr.className = "empty";
        const td = cell("td");
        td.colSpan = COLUMN_ORDER.length;
        td.textContent = "No runs yet.";
        tr.append(td);
        fresh.push(tr);
      }
      body.replaceChildren(...fresh);
      controls();
    }

    function fill(row, now) {
      const { run, cells } = row;
      const status = String(run.status || "");
      ui.setText(cells.badge, status);
      if (cells.badge.dataset.status !== status) cells.badge.dataset.status = status;
      const webhook = run.webhook ? `webhook ${run.webhook}` : "";
      ui.setText(cells.webhook, webhook);
      cells.webhook.hidden = !webhook;
      cells.webhook.dataset.webhook = run.webhook || "";
      ui.setText(cells.processed, `${ui.fmt.format(run.processed || 0)} / ${ui.fmt.format(run.xTotal || 0)}`);
      ui.setText(cells.failed, ui.fmt.format(run.failed || 0));
      cells.failed.classList.toggle("has-failed", run.failed > 0);
      ui.setText(cells.rate, run.yMinute ? `${ui.fmtRate(run.yMinute)}/min` : "—");
      ui.setText(cells.duration, ui.duration(ui.activeMs(run, now)));
      ui.setText(cells.time, ui.clock(run.startedAt));
      if (run.startedAt) cells.time.dateTime = new Date(run.startedAt).toISOString();
    }

    function retryButton(run) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "small";
      button.textContent = "Retry failed";
      const jobs = run.failed === 1 ? "job" : "jobs";
      button.setAttribute("aria-label", `Retry the ${ui.fmt.format(run.failed)} failed ${jobs} of run ${run.runId}`);
      button.addEventListener("click", async () => {
        const path = `/api/runs/${encodeURIComponent(run.runId)}/retry-failed`;
        const state = await hooks.call("POST", path, undefined, "retry the failed jobs");
        if (state) {
          hooks.accept(state);
          hooks.message(`Retrying ${ui.fmt.format(run.failed)} failed ${jobs} of run ${run.runId}`, "info");
        }
      });
      return button;
    }

    // The run on screen moved: its row (when listed) shows the live figures.
    function update(state, now) {
      const row = state && rows.get(state.runId);
      if (!row) return;
      if (state.seq != null && row.run.seq != null && state.seq < row.run.seq) return;
      row.run = { ...row.run, ...state };
      fill(row, now);
      // no failed jobs left to retry (e.g. a retry so short that its start and end reached us as
      // one coalesced state, so no status change asked for a new read of the table)
      if (row.retry && !(row.run.status === "completed" && row.run.failed > 0)) {
        row.retry.remove();
        row.retry = null;
      }
    }

    function controls() {
      const allowed = hooks.canRetry();
      for (const row of rows.values()) {
        if (row.retry && row.retry.disabled === allowed) row.retry.disabled = !allowed;
      }
    }

    return { refresh, update, controls };
  };
})();
