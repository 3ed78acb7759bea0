// optio dashboard: live run state over Socket.IO, controls over the HTTP API.
// Updates are coalesced to one render per animation frame, and the DOM is written only
// where a value changed, so high event rates stay smooth.
(function () {
  "use strict";

  const MAX_X = Number(document.body.dataset.maxX);
  const MAX_Y = Number(document.body.dataset.maxY);
  const RATE_WINDOW_MS = 10000; // throughput is measured over this trailing window
  const CHART_SPAN_MS = 5 * 60 * 1000;
  const CHART_MIN_SPAN_MS = 60 * 1000;

  const $ = (id) => document.getElementById(id);
  const fmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  const fmt1 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
  const fmtRate = (v) => (v >= 100 ? fmt : fmt1).format(v);

  let state = null; // latest run state
  let fromSocket = false; // a socket event has arrived: ignore slower HTTP answers
  let busy = false; // an API request is in flight
  let inputsFilled = false;
  let frame = 0;
  let socket = null;
  let samples = []; // [ms, processed] of the current run, for the measured throughput
  let series = []; // [ms, jobs/min] points of the chart
  let seriesRun = null;

  // ---- helpers -------------------------------------------------------------------------

  const shown = new Map();
  function setText(el, text) {
    if (shown.get(el) !== text) {
      shown.set(el, text);
      el.textContent = text;
    }
  }
  function setAttr(el, name, value) {
    if (el.getAttribute(name) !== String(value)) el.setAttribute(name, value);
  }

  function clock(ms) {
    if (!ms) return "—";
    const d = new Date(ms);
    const time = d.toLocaleTimeString();
    return d.toDateString() === new Date().toDateString() ? time : `${d.toLocaleDateString()} ${time}`;
  }

  function duration(ms) {
    if (ms == null || !isFinite(ms)) return "—";
    let s = Math.max(0, Math.round(ms / 1000));
    const h = Math.floor(s / 3600);
    s -= h * 3600;
    const m = Math.floor(s / 60);
    s -= m * 60;
    if (h) return `${h} h ${String(m).padStart(2, "0")} min`;
    if (m) return `${m} min ${String(s).padStart(2, "0")} s`;
    return `${s} s`;
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

  function accept(next, source) {
    if (!next || typeof next !== "object") return;
    if (source === "socket") {
      fromSocket = true;
    } else if (source === "http" && fromSocket) {
      return; // the live feed is already ahead of this read
    } else if (state && next.runId === state.runId && next.status === state.status &&
               next.processed < state.processed) {
      return; // an answer older than the events already shown
    }
    if (!state || state.runId !== next.runId) {
      samples = [];
    }
    state = next;
    if (state.running) {
      const now = Date.now();
      samples.push([now, state.processed]);
    }
    if (!inputsFilled) {
      inputsFilled = true;
      if (state.xTotal > 0 && document.activeElement !== $("x") && document.activeElement !== $("y")) {
        $("x").value = state.xTotal;
        $("y").value = state.yMinute;
      }
    }
    schedule();
  }

  // Jobs per minute over the trailing window, or the run's average once it has ended.
  function throughput(now) {
    if (!state || !state.startedAt) return null;
    const sinceStart = (state.finishedAt || now) - state.startedAt;
    const average = sinceStart > 0 ? (state.processed * 60000) / Math.max(1000, sinceStart) : null;
    if (!state.running) return average;
    // keep one sample at or before the window's start as the baseline
    while (samples.length > 1 && samples[1][0] <= now - RATE_WINDOW_MS) samples.shift();
    const base = samples[0];
    if (!base || now - base[0] < RATE_WINDOW_MS / 2 || sinceStart < RATE_WINDOW_MS) {
      return average; // a young run or a fresh page: the average since the start is better
    }
    return ((state.processed - base[1]) * 60000) / (now - base[0]);
  }

  // ---- rendering -----------------------------------------------------------------------

  function schedule() {
    if (!frame) frame = requestAnimationFrame(render);
  }

  function render() {
    frame = 0;
    const s = state || { running: false, xTotal: 0, yMinute: 0, enqueued: 0, processed: 0, failed: 0, status: "idle" };
    const now = Date.now();
    const total = s.xTotal || 0;
    const pct = total ? Math.floor((s.processed / total) * 1000) / 10 : 0;
    const status = s.status || (s.running ? "running" : "idle");

    setText($("run-id"), s.runId || "—");
    setText($("status"), status);
    setAttr($("status"), "data-status", status);
    setText($("started"), clock(s.startedAt));
    setText($("finished"), clock(s.finishedAt));
    setText($("elapsed"), s.startedAt ? duration((s.finishedAt || now) - s.startedAt) : "—");

    setText($("percent"), fmt1.format(pct));
    setText($("processed-big"), fmt.format(s.processed));
    setText($("total-big"), fmt.format(total));
    setText($("enqueued"), fmt.format(s.enqueued));
    setText($("processed"), fmt.format(s.processed));
    for (const el of document.querySelectorAll(".x-total")) setText(el, fmt.format(total));
    setText($("failed"), fmt.format(s.failed || 0));
    setText($("y-minute"), s.yMinute ? fmtRate(s.yMinute) : "—");
    setText($("rate-now"), s.running ? fmtRate(s.rateEnqueued || 0) : "—");
    $("held-back").hidden = !(s.running && s.heldBack);
    bar("enqueued", s.enqueued, total);
    bar("processed", s.processed, total);

    const rate = throughput(now);
    setText($("throughput"), rate == null ? "—" : fmtRate(rate));
    let eta = "—";
    if (s.running) {
      const left = total - s.processed;
      const perMin = rate && rate > 0 ? rate : s.yMinute;
      eta = left <= 0 ? "any moment" : perMin > 0 ? duration((left / perMin) * 60000) : "—";
    } else if (status === "completed") {
      eta = "done";
    }
    setText($("eta"), eta);
    const title = s.running ? `${fmt1.format(pct)}% · optio` : "optio";
    if (document.title !== title) document.title = title;

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

  function showFieldError(id, message) {
    const input = $(id);
    setText($(`${id}-error`), input.dataset.touched ? message : "");
    setAttr(input, "aria-invalid", Boolean(input.dataset.touched && message));
  }

  function controls() {
    const [x, xError] = checkX();
    const [y, yError] = checkY();
    showFieldError("x", xError);
    showFieldError("y", yError);
    const running = Boolean(state && state.running);
    const changed = running && ((y !== null && y !== state.yMinute) || (x !== null && x !== state.xTotal));
    $("start").disabled = busy || running || x === null || y === null;
    $("stop").disabled = busy || !running;
    $("update").disabled = busy || !running || y === null || x === null || !changed;
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
  const TOKEN_KEY = "optio-token";
  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }
  function askForToken() {
    $("token-field").hidden = false;
    $("token").focus();
  }
  $("token").value = token();
  if (token()) $("token-field").hidden = false;
  $("token").addEventListener("change", () => {
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    if (socket && !socket.connected) socket.connect();
    refresh();
  });

  function headers(json) {
    const h = json ? { "Content-Type": "application/json" } : {};
    if (token()) h.Authorization = `Bearer ${token()}`;
    return h;
  }

  async function call(method, path, body, what) {
    busy = true;
    clearMessage();
    controls();
    try {
      const response = await fetch(path, {
        method,
        headers: headers(body !== undefined),
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      let data = null;
      try {
        data = await response.json();
      } catch (_) {
        data = null;
      }
      if (!response.ok) {
        const reason = (data && data.error) || `${response.status} ${response.statusText}`;
        message(`Could not ${what}: ${reason}`, "error");
        if (response.status === 401) askForToken();
        refresh(); // our view may be stale: fetch the truth
        return null;
      }
      return data;
    } catch (err) {
      message(`Could not ${what}: the server did not answer (${err.message})`, "error");
      return null;
    } finally {
      busy = false;
      controls();
    }
  }

  async function refresh() {
    try {
      const response = await fetch("/api/status", { headers: headers(false) });
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
    if (x === null || y === null) return;
    const started = await call("POST", "/api/run", { x, y }, "start the run");
    if (started) {
      accept(started, "http-action");
      message(`Started run ${started.runId}: ${fmt.format(x)} jobs at ${fmtRate(y)}/min`, "info");
    }
  });

  $("update").addEventListener("click", async () => {
    const [x] = checkX();
    const [y] = checkY();
    const body = { y };
    if (x !== null && state && x !== state.xTotal) body.x = x;
    const updated = await call("PUT", "/api/run", body, "update the run");
    if (updated) {
      accept(updated, "http-action");
      message(`Now ${fmtRate(updated.yMinute)} jobs/min, ${fmt.format(updated.xTotal)} jobs`, "info");
    }
  });

  $("stop").addEventListener("click", async () => {
    const stopped = await call("POST", "/api/stop", undefined, "stop the run");
    if (stopped) {
      accept(stopped, "http-action");
      message(`Stopped run ${stopped.runId} at ${fmt.format(stopped.processed)} processed`, "info");
    }
  });

  $("message-close").addEventListener("click", clearMessage);
  for (const id of ["x", "y"]) {
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
    if (seriesRun !== state.runId) {
      seriesRun = state.runId;
      series = [];
    }
    const now = Date.now();
    series.push([now, throughput(now) || 0]);
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
      setInterval(refresh, 1000);
      return null;
    }
    const socket = window.io({
      reconnectionDelay: 500,
      reconnectionDelayMax: 3000,
      auth: (send) => send(token() ? { token: token() } : {}),
    });
    socket.on("connect", () => connection("connected", "Live"));
    socket.on("progress", (data) => accept(data, "socket"));
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
  window.optio = { socket, state: () => state };
  refresh();
  setInterval(() => {
    sampleChart();
    schedule(); // elapsed time and ETA move without events too
  }, 1000);
  window.addEventListener("resize", drawChart);
  drawChart();
  controls();
})();
