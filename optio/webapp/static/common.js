// Helpers shared by the dashboard and the run page: number and time formats, a run's active
// time, the API token kept in this tab, and one JSON request.
(function () {
  "use strict";

  const fmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  const fmt1 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
  const fmtRate = (v) => (v >= 100 ? fmt : fmt1).format(v);

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

  // Milliseconds the run has spent not paused, up to its end or `now` (null before it starts).
  function activeMs(s, now) {
    if (!s || !s.startedAt) return null;
    const end = s.finishedAt || now;
    const pausedNow = s.pausedAt ? Math.max(0, end - s.pausedAt) : 0;
    return Math.max(0, end - s.startedAt - (s.pausedMs || 0) - pausedNow);
  }

  // The run's average jobs/min over its active time, or null.
  function averageRate(s, now) {
    const active = activeMs(s, now);
    return active ? (s.processed * 60000) / Math.max(1000, active) : null;
  }

  // An optional API token (OPTIO_API_TOKEN on the server), kept in this tab only.
  const TOKEN_KEY = "optio-token";
  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }
  function setToken(value) {
    sessionStorage.setItem(TOKEN_KEY, value.trim());
  }
  function headers(json) {
    const h = json ? { "Content-Type": "application/json" } : {};
    if (token()) h.Authorization = `Bearer ${token()}`;
    return h;
  }

  // One JSON request. Resolves to {ok, status, data, reason}: `reason` says what went wrong in
  // words (the server's {"error"} when it sent one); status 0 when the server did not answer.
  async function request(method, path, body) {
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: headers(body !== undefined),
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      return { ok: false, status: 0, data: null, reason: `the server did not answer (${err.message})` };
    }
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    const reason = response.ok ? "" : (data && data.error) || `${response.status} ${response.statusText}`;
    return { ok: response.ok, status: response.status, data, reason };
  }

  // Writes text (never HTML) into an element, only when it changed.
  const shown = new WeakMap();
  function setText(el, text) {
    if (shown.get(el) !== text) {
      shown.set(el, text);
      el.textContent = text;
    }
  }

  window.optioUi = {
    fmt, fmt1, fmtRate, clock, duration, activeMs, averageRate, token, setToken, headers, request,
    setText,
  };
})();
