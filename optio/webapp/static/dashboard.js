// optio dashboard: live run state over Socket.IO, controls over the HTTP API, recent runs
// (history.js). Updates are coalesced to one render per animation frame, and the DOM is written
// only where a value changed, so high event rates stay smooth.
(function () {
  "use strict";

  const ui = window.optioUi;
  const { fmt, fmt1, fmtRate, clock, duration, setText } = ui;

  const MAX_X = Number(document.body.dataset.maxX);
  const MAX_Y = Number(document.body.dataset.maxY);
  const MAX_WEIGHT = Number(document.body.dataset.maxWeight);
  const MAX_DEADLINE_S = Number(document.body.dataset.maxDeadline);
  const RATE_WINDOW_MS = 10000; // throughput is measured over this trailing window
  const CHART_SPAN_MS = 5 * 60 * 1000;
  const CHART_MIN_SPAN_MS = 60 * 1000;
  // why a run is held back (its heldBackBy), for the badge's tooltip
  const HELD_BACK_BY = {
    workers: "The workers are behind: jobs wait in the broker, the schedule slides",
    cap: "OPTIO_MAX_OUTSTANDING jobs wait in the broker: the cap holds the schedule back",
    scheduler: "The scheduler is behind: ticks reserve or publish slower than the schedule",
  };

  const $ = (id) => document.getElementById(id);

  let state = null; // latest run state
  const lastSeq = new Map(); // runId -> highest seq shown (the last few runs)
  let fromSocket = false; // a socket event has arrived: ignore slower HTTP answers without seq
  let busy = false; // an API request is in flight
  let inputsFilled = false;
  let frame = 0;
  let socket = null;
  let samples = []; // [active ms, processed] of the current run, for the measured throughput
  let series = []; // [ms, jobs/min] points of the chart
  let seriesRun = null;
  let active = null; // the cards of the active runs (active.js)

  // ---- helpers -------------------------------------------------------------------------

  function setAttr(el, name, value) {
    if (el.getAttribute(name) !== String(value)) el.setAttribute(name, value);
  }

  function parseCount(text) {
    const clean = String(text).replace(/[\s,_'’]/g, "");
    return /^\d+$/.test(clean) ? Number(clean) : NaN;
  }
  function parseRate(text) {
    const clean = String(text).replace(/[\s,_'’]/g, "");
    return /^(\d+\.?\d*|\.\d+)$/.test(clean) ? Number(clean) : NaN;
  }

  // ---- state ---------------------------------------------------------------------------

  // Whether `next` is older than what was shown: by seq within a run (every change of a run
  // raises it), else an HTTP read loses to the live feed once that has spoken.
  function stale(next, source) {
    const seen = lastSeq.get(next.runId);
    if (typeof next.seq === "number" && seen !== undefined) return next.seq < seen;
    return source === "http" && fromSocket;
  }

  function accept(next, source) {
    if (!next || typeof next !== "object") return;
    if (stale(next, source)) return;
    if (source === "socket") fromSocket = true;
    if (typeof next.seq === "number" && next.runId) {
      lastSeq.delete(next.runId); // re-inserted last: the map keeps the most recent runs
      lastSeq.set(next.runId, next.seq);
      if (lastSeq.size > 50) lastSeq.delete(lastSeq.keys().next().value);
    }
    const previous = state;
    if (!previous || previous.runId !== next.runId) {
      samples = [];
    }
    state = next;
    if (active) active.offer(next);
    if (state.status === "running" || (state.running && !state.status)) {
      samples.push([ui.activeMs(state, Date.now()), state.processed]);
    }
    // the table of runs is read again when a run starts, pauses, ends, is retried...; not per event
    if (
      previous &&
      (previous.runId !== next.runId ||
        previous.status !== next.status ||
        previous.retried !== next.retried)
    ) {
      history.refresh();
    }
    if (!inputsFilled) {
      inputsFilled = true;
      if (state.xTotal > 0 && document.activeElement !== $("x") && document.activeElement !== $("y")) {
        $("x").value = state.xTotal;
        // a deadline run's rate is computed (833.39…): Y keeps its default then
        if (!state.deadline) $("y").value = state.yMinute;
      }
    }
    schedule();
  }

  // Jobs per minute over the trailing window, or the run's average once it has ended. Both
  // count active time only: a pause neither lowers the rate nor moves the window.
  function throughput(now) {
    if (!state || !state.startedAt) return null;
    const active = ui.activeMs(state, now);
    const average = ui.averageRate(state, now);
    if (!state.running) return average;
    // keep one sample at or before the window's start as the baseline
    while (samples.length > 1 && samples[1][0] <= active - RATE_WINDOW_MS) samples.shift();
    const base = samples[0];
    if (!base || active - base[0] < RATE_WINDOW_MS / 2 || active < RATE_WINDOW_MS) {
      return average; // a young run or a fresh page: the average since the start is better
    }
    return ((state.processed - base[1]) * 60000) / (active - base[0]);
  }

  // ---- rendering -----------------------------------------------------------------------

  function schedule() {
    if (!frame) frame = requestAnimationFrame(render);
  }

  // Links to the shown run's outcomes (the export) and its page.
  let linked = null;
  function linkResults(runId) {
    if (runId === linked) return;
    linked = runId || null;
    $("results-links").hidden = !linked;
    if (!linked) return;
    const path = `/api/runs/${encodeURIComponent(linked)}/results`;
    $("results-jsonl").href = `${path}?format=jsonl`;
    $("results-csv").href = `${path}?format=csv`;
    $("run-page").href = `/runs/${encodeURIComponent(linked)}`;
  }

  function render() {
    frame = 0;
    const s = state || { running: false, xTotal: 0, yMinute: 0, enqueued: 0, processed: 0, failed: 0, status: "idle" };
    const now = Date.now();
    const total = s.xTotal || 0;
    const pct = total ? Math.floor((s.processed / total) * 1000) / 10 : 0;
    const status = s.status || (s.running ? "running" : "idle");
    const paused = status === "paused";

    setText($("run-id"), s.runId || "—");
    linkResults(s.runId);
    setText($("status"), status);
    setAttr($("status"), "data-status", status);
    const webhook = s.webhook ? `webhook ${s.webhook}` : "";
    setText($("webhook"), webhook);
    setAttr($("webhook"), "data-webhook", s.webhook || "");
    $("webhook").hidden = !webhook;
    setText($("started"), clock(s.startedAt));
    setText($("finished"), clock(s.finishedAt));
    setText($("elapsed"), s.startedAt ? duration(ui.activeMs(s, now)) : "—");
    const pausedFor = (s.pausedMs || 0) + (s.pausedAt ? Math.max(0, (s.finishedAt || now) - s.pausedAt) : 0);
    $("paused-for-wrap").hidden = !(s.startedAt && pausedFor > 0);
    setText($("paused-for"), duration(pausedFor));

    setText($("percent"), fmt1.format(pct));
    setText($("processed-big"), fmt.format(s.processed));
    setText($("total-big"), fmt.format(total));
    setText($("enqueued"), fmt.format(s.enqueued));
    setText($("processed"), fmt.format(s.processed));
    for (const el of document.querySelectorAll(".x-total")) setText(el, fmt.format(total));
    setText($("failed"), fmt.format(s.failed || 0));
    setText($("y-minute"), s.yMinute ? fmtRate(s.yMinute) : "—");
    setText($("rate-now"), s.running && !paused ? fmtRate(s.rateEnqueued || 0) : "—");
    const heldBack = $("held-back");
    heldBack.hidden = !(s.running && !paused && s.heldBack);
    setText(heldBack, s.heldBackBy ? `held back: ${s.heldBackBy}` : "held back");
    setAttr(heldBack, "title", HELD_BACK_BY[s.heldBackBy] || "Enqueuing is behind the schedule");
    const throttled = s.running && s.throttled > 0 && s.rateNow < s.yMinute;
    $("throttled").hidden = !throttled;
    setText($("rate-effective"), throttled ? fmtRate(s.rateNow) : "—");
    setAttr(document.body, "data-status", status);
    bar("enqueued", s.enqueued, total);
    bar("processed", s.processed, total);

    const rate = throughput(now);
    setText($("throughput"), rate == null ? "—" : fmtRate(rate));
    let eta = "—";
    if (paused) {
      eta = "paused";
    } else if (s.running) {
      const left = total - s.processed;
      const perMin = rate && rate > 0 ? rate : s.yMinute;
      eta = left <= 0 ? "any moment" : perMin > 0 ? duration((left / perMin) * 60000) : "—";
    } else if (status === "completed") {
      eta = "done";
    }
    setText($("eta"), eta);
    const title = s.running ? `${paused ? "Paused · " : ""}${fmt1.format(pct)}% · optio` : "optio";
    if (document.title !== title) document.title = title;

    history.update(state, now);
    controls();
  }

  function bar(name, value, total) {
    const fraction = total ? Math.min(1, value / total) : 0;
    const el = $(`bar-${name}`);
    const transform = `scaleX(${fraction})`;
    if (el.style.transform !== transform) el.style.transform = transform;
    const wrap = $(`bar-${name}-wrap`);
    setAttr(wrap, "aria-valuemax", total);
    setAttr(wrap, "aria-valuenow", value);
  }

  // ---- inputs and buttons --------------------------------------------------------------

  function checkX() {
    const x = parseCount($("x").value);
    if (!Number.isInteger(x) || x < 1) return [null, "Enter a whole number of jobs, at least 1"];
    if (x > MAX_X) return [null, `At most ${fmt.format(MAX_X)} jobs`];
    return [x, ""];
  }
  function checkY() {
    const y = parseRate($("y").value);
    if (!(y > 0)) return [null, "Enter a rate above 0 jobs per minute"];
    if (y > MAX_Y) return [null, `At most ${fmt.format(MAX_Y)} jobs per minute`];
    return [y, ""];
  }

  // The optional weight of a new run: [weight or null when not given, error].
  function checkWeight() {
    const text = $("weight").value.trim();
    if (!text) return [null, ""];
    const weight = parseRate(text);
    if (!(weight > 0)) return [null, "Enter a weight above 0 (0.5 is fine), or leave it empty"];
    if (weight > MAX_WEIGHT) return [null, `At most ${fmt.format(MAX_WEIGHT)}`];
    return [weight, ""];
  }

  // A local date and time of a datetime-local input as ISO 8601 with this computer's offset
  // ("2026-12-05T06:00:00+01:00"), or null when it is not a time.
  function isoWithOffset(local) {
    const at = new Date(local);
    if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?$/.test(local) || isNaN(at)) return null;
    const minutes = -at.getTimezoneOffset(); // the offset on that date (summer time included)
    const sign = minutes < 0 ? "-" : "+";
    const hh = String(Math.floor(Math.abs(minutes) / 60)).padStart(2, "0");
    const mm = String(Math.abs(minutes) % 60).padStart(2, "0");
    const seconds = local.length === 16 ? `${local}:00` : local;
    return [`${seconds}${sign}${hh}:${mm}`, at.getTime()];
  }

  // The optional deadline of a new run, sent instead of y: seconds from now (a number) or an
  // ISO 8601 time with a timezone; [deadline or null when not given, error, field at fault].
  function checkDeadline() {
    const seconds = $("deadline").value.trim();
    const at = $("deadline-at").value;
    if (seconds && at) return [null, "Give seconds from now or a date and time, not both", "deadline"];
    if (seconds) {
      const value = parseRate(seconds);
      if (!(value > 0)) return [null, "Enter seconds from now above 0, or leave it empty", "deadline"];
      if (value > MAX_DEADLINE_S) {
        return [null, `At most ${fmt.format(MAX_DEADLINE_S)} seconds from now`, "deadline"];
      }
      return [value, "", "deadline"];
    }
    if (at) {
      const parsed = isoWithOffset(at);
      if (!parsed) return [null, "Enter a date and time", "deadline-at"];
      if (parsed[1] <= Date.now()) return [null, "This time has passed: pick a later one", "deadline-at"];
      return [parsed[0], "", "deadline-at"];
    }
    return [null, "", null];
  }

  function showFieldError(id, message) {
    const input = $(id);
    setText($(`${id}-error`), input.dataset.touched ? message : "");
    setAttr(input, "aria-invalid", Boolean(input.dataset.touched && message));
  }

  function controls() {
    const [x, xError] = checkX();
    const [y, yError] = checkY();
    const [, weightError] = checkWeight();
    const [deadline, deadlineError, deadlineField] = checkDeadline();
    const byDeadline = deadline !== null;
    showFieldError("x", xError);
    showFieldError("y", yError);
    showFieldError("weight", weightError);
    const deadlineTouched = $("deadline").dataset.touched || $("deadline-at").dataset.touched;
    setText($("deadline-error"), deadlineTouched ? deadlineError : "");
    for (const id of ["deadline", "deadline-at"]) {
      setAttr($(id), "aria-invalid", Boolean(deadlineTouched && deadlineError && id === deadlineField));
    }
    // Y is not sent with a deadline: the field stays for Update rate, dimmed for Start
    $("y").classList.toggle("unused", byDeadline);
    const running = Boolean(state && state.running);
    const changed = running && ((y !== null && y !== state.yMinute) || (x !== null && x !== state.xTotal));
    // several runs may be active at once: Start is there while one runs, for another beside it
    $("start").disabled =
      busy || x === null || Boolean(weightError || deadlineError) || (!byDeadline && y === null);
    setText($("start"), running ? "Start another" : "Start");
    const status = state && state.status;
    $("stop").disabled = busy || !running;
    $("pause").disabled = busy || status !== "running";
    $("resume").disabled = busy || status !== "paused";
    $("update").disabled = busy || !running || y === null || x === null || !changed;
    history.controls();
    if (active) active.controls();
  }

  let messageTimer = 0;
  function message(text, kind) {
    clearTimeout(messageTimer);
    const box = $("message");
    box.dataset.kind = kind;
    setText($("message-text"), text);
    box.hidden = false;
    if (kind === "info") messageTimer = setTimeout(() => (box.hidden = true), 4000);
  }
  function clearMessage() {
    clearTimeout(messageTimer);
    $("message").hidden = true;
  }

  // An optional API token (OPTIO_API_TOKEN on the server), asked for only when the server wants one.
  const token = ui.token;
  function askForToken() {
    $("token-field").hidden = false;
    $("token").focus();
  }
  $("token").value = token();
  if (token()) $("token-field").hidden = false;
  $("token").addEventListener("change", () => {
    ui.setToken($("token").value);
    if (socket && !socket.connected) socket.connect();
    refresh();
    history.refresh();
  });

  async function call(method, path, body, what) {
    busy = true;
    clearMessage();
    controls();
    try {
      const answer = await ui.request(method, path, body);
      if (!answer.ok) {
        message(`Could not ${what}: ${answer.reason}`, "error");
        if (answer.status === 401) askForToken();
        if (answer.status) {
          refresh(); // our view may be stale: fetch the truth
          history.refresh();
        }
        return null;
      }
      return answer.data;
    } finally {
      busy = false;
      controls();
    }
  }

  const history = window.optioHistory({
    call,
    accept: (next) => accept(next, "http-action"),
    message,
    askForToken,
    // a finished run's failed jobs can be retried while no run is active
    canRetry: () => !busy, // a completed run's failed jobs run again beside the active runs
  });

  active = window.optioActive({
    call,
    accept: (next) => accept(next, "http-action"),
    message,
    busy: () => busy,
  });

  // The shown run's own control (several runs may be active: the unnamed ones answer 409 then).
  function runPath(action) {
    const id = state && state.runId;
    if (!id) return action ? `/api/${action}` : "/api/run";
    const path = `/api/runs/${encodeURIComponent(id)}`;
    return action ? `${path}/${action}` : path;
  }

  async function refresh() {
    try {
      const response = await fetch("/api/status", { headers: ui.headers(false) });
      if (response.status === 401) askForToken();
      if (response.ok) {
        const fresh = await response.json();
        // an answer is at least as new as the events before it
        fromSocket = false;
        accept(fresh, "http");
      }
    } catch (_) {
      // the connection indicator already tells that the server is away
    }
  }

  $("run-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const [x] = checkX();
    const [y] = checkY();
    const [weight, weightError] = checkWeight();
    const [deadline, deadlineError] = checkDeadline();
    if (x === null || weightError || deadlineError || (deadline === null && y === null)) return;
    const body = deadline === null ? { x, y } : { x, deadline }; // exactly one of them
    if (weight !== null) body.weight = weight;
    const started = await call("POST", "/api/run", body, "start the run");
    if (started) {
      accept(started, "http-action");
      const pace = started.deadline
        ? `by ${clock(started.deadline)}`
        : `at ${fmtRate(started.yMinute)}/min`;
      message(`Started run ${started.runId}: ${fmt.format(started.xTotal)} jobs ${pace}`, "info");
    }
  });

  $("update").addEventListener("click", async () => {
    const [x] = checkX();
    const [y] = checkY();
    const body = { y };
    if (x !== null && state && x !== state.xTotal) body.x = x;
    const updated = await call("PUT", runPath(), body, "update the run");
    if (updated) {
      accept(updated, "http-action");
      message(`Now ${fmtRate(updated.yMinute)} jobs/min, ${fmt.format(updated.xTotal)} jobs`, "info");
    }
  });

  $("pause").addEventListener("click", async () => {
    const paused = await call("POST", runPath("pause"), undefined, "pause the run");
    if (paused) {
      accept(paused, "http-action");
      message(`Paused run ${paused.runId} at ${fmt.format(paused.processed)} processed`, "info");
    }
  });

  $("resume").addEventListener("click", async () => {
    const resumed = await call("POST", runPath("resume"), undefined, "resume the run");
    if (resumed) {
      accept(resumed, "http-action");
      message(`Resumed run ${resumed.runId}`, "info");
    }
  });

  $("stop").addEventListener("click", async () => {
    const stopped = await call("POST", runPath("stop"), undefined, "stop the run");
    if (stopped) {
      accept(stopped, "http-action");
      message(`Stopped run ${stopped.runId} at ${fmt.format(stopped.processed)} processed`, "info");
    }
  });

  $("message-close").addEventListener("click", clearMessage);
  for (const id of ["x", "y", "weight", "deadline", "deadline-at"]) {
    $(id).addEventListener("input", () => {
      $(id).dataset.touched = "1";
      controls();
    });
    $(id).addEventListener("blur", () => {
      $(id).dataset.touched = "1";
      controls();
    });
  }

  // ---- chart ---------------------------------------------------------------------------

  function sampleChart() {
    if (!state || !state.running) return;
    if (state.status === "paused") {
      drawChart(); // no points while paused, but the axes follow the run's target
      return;
    }
    if (seriesRun !== state.runId) {
      seriesRun = state.runId;
      series = [];
    }
    const now = Date.now();
    // [time, measured, effective]: the effective rate is y unless throttles cut it
    series.push([now, throughput(now) || 0, state.rateNow ?? state.yMinute]);
    while (series.length && series[0][0] < now - CHART_SPAN_MS) series.shift();
    drawChart();
  }

  function niceMax(v) {
    if (v <= 0) return 10;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function drawChart() {
    const canvas = $("chart");
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height) return;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const css = getComputedStyle(document.body);
    const line = css.getPropertyValue("--accent").trim() || "#2563eb";
    const muted = css.getPropertyValue("--muted").trim() || "#6b7280";
    const grid = css.getPropertyValue("--grid").trim() || "#e5e7eb";
    const target = state && state.yMinute ? state.yMinute : 0;
    const top = niceMax(Math.max(target, ...series.map(([, v]) => v)) * 1.1);
    const effective = css.getPropertyValue("--effective").trim() || "#d97706";
    const left = 8;
    const right = width - 8;
    const bottom = height - 18;
    const upper = 14;
    // the time axis grows with the run from one minute up to five
    const end = series.length ? series[series.length - 1][0] : Date.now();
    const first = series.length ? series[0][0] : end;
    const span = Math.min(CHART_SPAN_MS, Math.max(CHART_MIN_SPAN_MS, end - first));
    const start = end - span;
    const xAt = (t) => left + ((t - start) / span) * (right - left);
    const yAt = (v) => bottom - (v / top) * (bottom - upper);

    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = muted;
    ctx.strokeStyle = grid;
    ctx.lineWidth = 1;
    for (const f of [0, 0.5, 1]) {
      const y = Math.round(yAt(top * f)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(right, y);
      ctx.stroke();
      if (f) ctx.fillText(fmt.format(top * f), left + 2, y - 3);
    }
    ctx.textAlign = "right";
    ctx.fillText("now", right, height - 4);
    ctx.textAlign = "left";
    ctx.fillText(`−${Math.round(span / 60000)} min`, left, height - 4);

    if (target) {
      ctx.save();
      ctx.setLineDash([4, 4]);
      ctx.strokeStyle = muted;
      ctx.beginPath();
      ctx.moveTo(left, yAt(target));
      ctx.lineTo(right, yAt(target));
      ctx.stroke();
      ctx.restore();
    }
    if (series.length < 2) return;
    if (series.some(([, , e]) => e < target)) {
      // the effective rate, stepped: it changes at throttles and once per window after them
      ctx.beginPath();
      series.forEach(([t, , e], i) => {
        if (i) ctx.lineTo(xAt(t), yAt(series[i - 1][2]));
        (i ? ctx.lineTo : ctx.moveTo).call(ctx, xAt(t), yAt(e));
      });
      ctx.strokeStyle = effective;
      ctx.lineWidth = 1.5;
      ctx.stroke();
    }
    ctx.beginPath();
    series.forEach(([t, v], i) => (i ? ctx.lineTo(xAt(t), yAt(v)) : ctx.moveTo(xAt(t), yAt(v))));
    ctx.strokeStyle = line;
    ctx.lineWidth = 2;
    ctx.stroke();
    ctx.lineTo(xAt(series[series.length - 1][0]), bottom);
    ctx.lineTo(xAt(series[0][0]), bottom);
    ctx.closePath();
    ctx.globalAlpha = 0.12;
    ctx.fillStyle = line;
    ctx.fill();
    ctx.globalAlpha = 1;
  }

  // ---- connection ----------------------------------------------------------------------

  function connection(kind, text) {
    setAttr($("conn"), "data-state", kind);
    setText($("conn-text"), text);
  }

  function connect() {
    if (typeof window.io !== "function") {
      // the server could not serve the socket.io client: read the state once a second instead
      connection("polling", "No live feed: polling");
      message(
        "No live feed: the server has no socket.io client (/vendor/socket.io.min.js), so this " +
          "page reads /api/status once a second instead.",
        "info",
      );
      setInterval(() => {
        refresh();
        active.refresh();
      }, 1000);
      return null;
    }
    const socket = window.io({
      reconnectionDelay: 500,
      reconnectionDelayMax: 3000,
      auth: (send) => send(token() ? { token: token() } : {}),
    });
    socket.on("connect", () => connection("connected", "Live"));
    socket.on("progress", (data) => accept(data, "socket"));
    // the active runs, coalesced by the server; a run not listed has ended
    socket.on("runs", (data) => data && active.update(data.runs, data.current));
    socket.on("disconnect", (reason) => {
      if (reason === "io client disconnect") {
        connection("disconnected", "Disconnected");
      } else {
        connection("reconnecting", "Reconnecting…");
        if (reason === "io server disconnect") socket.connect();
      }
    });
    socket.on("connect_error", () => {
      if (socket.active) {
        connection("reconnecting", "Reconnecting…");
      } else {
        // the server refused us: with OPTIO_PROTECT_READS it wants the API token
        connection("disconnected", "Refused");
        message("The server refused the live feed: enter the API token to connect.", "error");
        askForToken();
      }
    });
    socket.io.on("reconnect_attempt", (n) => connection("reconnecting", `Reconnecting… (try ${n})`));
    socket.io.on("reconnect_failed", () => connection("disconnected", "Disconnected"));
    return socket;
  }

  socket = connect();
  window.optio = { socket, state: () => state, history, active };
  refresh();
  history.refresh();
  setInterval(() => {
    sampleChart();
    schedule(); // elapsed time and ETA move without events too
  }, 1000);
  window.addEventListener("resize", drawChart);
  drawChart();
  controls();
})();
