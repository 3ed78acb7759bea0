// A run's page: its state and first errors from GET /api/runs/<id>, its live states over
// Socket.IO (connected with ?run=<id>: this run's states, whichever run clients are shown by
// default), and a button that retries its failed jobs. The errors are read again over HTTP when
// the run's failures or status change; without the live feed (no socket.io client, or the
// connection is down) the state is read every second while the run is active. Text only.
(function () {
  "use strict";

  const ui = window.optioUi;
  const { fmt, fmtRate, clock, duration, setText } = ui;
  const $ = (id) => document.getElementById(id);
  const RUN_ID = document.body.dataset.runId;
  const POLL_MS = 1000;
  const ERRORS_EVERY_MS = 1000; // most reads of the errors while live states bring failures

  let run = null; // the run's latest state
  let busy = false;
  let timer = 0;
  let socket = null; // the live feed of this run, when the socket.io client is there
  let errorsTimer = 0;
  let errorsReadAt = 0;

  const live = () => Boolean(socket && socket.connected);

  function message(text, kind) {
    const box = $("message");
    box.dataset.kind = kind;
    setText($("message-text"), text);
    box.hidden = false;
  }
  $("message-close").addEventListener("click", () => ($("message").hidden = true));

  function askForToken() {
    $("token-field").hidden = false;
  }
  $("token").value = ui.token();
  if (ui.token()) $("token-field").hidden = false;
  $("token").addEventListener("change", () => {
    ui.setToken($("token").value);
    if (socket && !socket.connected) socket.connect();
    load();
  });

  async function load() {
    clearTimeout(timer);
    errorsReadAt = Date.now();
    const answer = await ui.request("GET", `/api/runs/${encodeURIComponent(RUN_ID)}`);
    if (answer.ok && answer.data) {
      $("load-error").hidden = true;
      if (!run || answer.data.seq == null || run.seq == null || answer.data.seq >= run.seq) {
        run = answer.data;
        render();
      } else if (Array.isArray(answer.data.errors)) {
        run = { ...run, errors: answer.data.errors }; // the live state is newer: its errors only
        render();
      }
    } else {
      if (answer.status === 401) askForToken();
      $("load-error").hidden = false;
      setText($("load-error"), `Could not read run ${RUN_ID}: ${answer.reason}`);
      if (!run) {
        setText($("status"), answer.status === 404 ? "not found" : "unknown");
        $("errors-body").replaceChildren(emptyRow("—"));
      }
    }
    // without the live feed an active run is read again, and a server that is away may come
    // back; a finished run is read again only after a retry, an unknown one after a new token
    const again = answer.ok ? Boolean(run && run.running) : answer.status === 0 || answer.status >= 500;
    if (again && !live()) timer = setTimeout(load, POLL_MS);
    controls();
  }

  // A live state of this run (the `progress` event of the room ?run=<id> put us in). The
  // states carry no errors: those of the last read stay, read again when failures or the
  // status change (at most once per ERRORS_EVERY_MS).
  function take(state) {
    if (!state || typeof state !== "object" || state.runId !== RUN_ID) return;
    if (run && typeof state.seq === "number" && typeof run.seq === "number" && state.seq < run.seq) return;
    const previous = run;
    // a live state carries no errors and no webhook error: keep those of the last read, and
    // read them again when the failures, the status or the webhook outcome change
    run = { ...state };
    if (!Array.isArray(state.errors)) run.errors = previous ? previous.errors : [];
    if (previous && previous.webhook === state.webhook && !("webhookError" in state)) {
      run.webhookError = previous.webhookError;
    }
    $("load-error").hidden = true;
    render();
    controls();
    if (
      !previous ||
      previous.failed !== run.failed ||
      previous.status !== run.status ||
      previous.webhook !== run.webhook
    ) {
      readErrors();
    }
  }

  function readErrors() {
    if (errorsTimer) return;
    const wait = Math.max(0, errorsReadAt + ERRORS_EVERY_MS - Date.now());
    errorsTimer = setTimeout(() => {
      errorsTimer = 0;
      load();
    }, wait);
  }

  function connect() {
    if (typeof window.io !== "function") return null; // no socket.io client: reads alone
    const feed = window.io({
      query: { run: RUN_ID },
      reconnectionDelay: 500,
      reconnectionDelayMax: 3000,
      auth: (send) => send(ui.token() ? { token: ui.token() } : {}),
    });
    feed.on("progress", take);
    feed.on("connect", () => clearTimeout(timer)); // the feed brings the state from now on
    feed.on("disconnect", (reason) => {
      if (reason === "io server disconnect") feed.connect();
      load(); // read (and poll while it is active) until the feed is back
    });
    feed.on("connect_error", () => {
      if (!feed.active) askForToken(); // refused: with OPTIO_PROTECT_READS it wants the token
    });
    return feed;
  }

  function render() {
    const now = Date.now();
    const status = String(run.status || "");
    setText($("status"), status);
    $("status").dataset.status = status;
    const webhook = run.webhook ? `webhook ${run.webhook}` : "";
    setText($("webhook"), webhook);
    $("webhook").dataset.webhook = run.webhook || "";
    $("webhook").hidden = !webhook;
    const webhookError = run.webhook === "failed" && run.webhookError ? `Webhook: ${run.webhookError}` : "";
    setText($("webhook-error"), webhookError);
    $("webhook-error").hidden = !webhookError;
    setText($("started"), clock(run.startedAt));
    setText($("finished"), clock(run.finishedAt));
    setText($("duration"), duration(ui.activeMs(run, now)));
    const pausedFor = (run.pausedMs || 0) + (run.pausedAt ? Math.max(0, (run.finishedAt || now) - run.pausedAt) : 0);
    $("paused-for-wrap").hidden = !(pausedFor > 0);
    setText($("paused-for"), duration(pausedFor));
    setText($("processed"), fmt.format(run.processed || 0));
    setText($("x-total"), fmt.format(run.xTotal || 0));
    setText($("failed"), fmt.format(run.failed || 0));
    setText($("y-minute"), run.yMinute ? fmtRate(run.yMinute) : "—");
    const rate = ui.averageRate(run, now);
    setText($("throughput"), rate == null ? "—" : fmtRate(rate));
    setText($("retried"), fmt.format(run.retried || 0));
    renderErrors(Array.isArray(run.errors) ? run.errors : []);
  }

  function renderErrors(errors) {
    const rows = errors.map((e) => {
      const tr = document.createElement("tr");
      const job = document.createElement("td");
      job.className = "num";
      job.textContent = String(e && e.job);
      const error = document.createElement("td");
      error.className = "error-text";
      error.textContent = String(e && e.error);
      tr.append(job, error);
      return tr;
    });
    if (!rows.length) rows.push(emptyRow(run && run.failed > 0 ? "The errors are no longer kept." : "No errors."));
    $("errors-body").replaceChildren(...rows);
  }

  function emptyRow(text) {
    const tr = document.createElement("tr");
    tr.className = "empty";
    const td = document.createElement("td");
    td.colSpan = 2;
    td.textContent = text;
    tr.append(td);
    return tr;
  }

  function controls() {
    // a completed run's failed jobs run again beside whatever runs are active
    const can = Boolean(run && run.status === "completed" && run.failed > 0);
    $("retry").disabled = busy || !can;
    let hint = "";
    if (run && run.failed > 0 && run.status !== "completed" && !run.running) {
      hint = "Only a completed run's failed jobs can be retried.";
    }
    setText($("retry-hint"), hint);
  }

  $("retry").addEventListener("click", async () => {
    busy = true;
    controls();
    const failed = run ? run.failed : 0;
    try {
      const answer = await ui.request("POST", `/api/runs/${encodeURIComponent(RUN_ID)}/retry-failed`);
      if (answer.ok) {
        const jobs = failed === 1 ? "job" : "jobs";
        message(`Retrying ${fmt.format(failed)} failed ${jobs} of run ${RUN_ID}`, "info");
      } else {
        if (answer.status === 401) askForToken();
        message(`Could not retry the failed jobs: ${answer.reason}`, "error");
      }
    } finally {
      busy = false;
      load();
    }
  });

  // The downloads are plain links; with a token in this tab (the server protects reads) the
  // file is fetched with it instead, then saved from memory.
  for (const link of document.querySelectorAll("a.download")) {
    link.addEventListener("click", async (event) => {
      if (!ui.token()) return;
      event.preventDefault();
      let response;
      try {
        response = await fetch(link.href, { headers: ui.headers(false) });
      } catch (err) {
        message(`Could not download the results: the server did not answer (${err.message})`, "error");
        return;
      }
      if (!response.ok) {
        if (response.status === 401) askForToken();
        let reason = `${response.status} ${response.statusText}`;
        try {
          reason = (await response.json()).error || reason;
        } catch (_) {
          // not JSON: the status says it
        }
        message(`Could not download the results: ${reason}`, "error");
        return;
      }
      const url = URL.createObjectURL(await response.blob());
      const save = document.createElement("a");
      save.href = url;
      save.download = link.getAttribute("download") || "";
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    });
  }

  socket = connect();
  window.optioRun = { state: () => run, socket };
  setInterval(() => run && run.running && render(), 1000); // the duration moves without reads
  load();
})();
