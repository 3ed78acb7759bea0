// optio · WebSocket test client (test-websocket.html): logs every `progress` event.
// The page works served by optio and opened from disk (file://). The server to connect to
// comes from the Server field or ?server=, so it is checked before anything uses it.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const fromFile = location.protocol === "file:";
  const params = new URLSearchParams(location.search);
  $("server").value = params.get("server") || (fromFile ? "http://localhost:3000" : location.origin);
  let socket = null;
  let count = 0;

  function stamp() {
    const d = new Date();
    return d.toLocaleTimeString(undefined, { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
  }

  function log(kind, text) {
    const box = $("log");
    const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
    const line = document.createElement("div");
    line.className = "entry " + kind;
    const time = document.createElement("span");
    time.className = "time";
    time.textContent = "[" + stamp() + "] ";
    line.append(time, text);
    box.append(line);
    while (box.childElementCount > 2000) box.firstElementChild.remove();
    if (atBottom) box.scrollTop = box.scrollHeight;
  }

  function status(state, text) {
    $("status").dataset.state = state;
    $("status").textContent = text;
    $("connect").disabled = state === "connected" || state === "connecting";
    $("disconnect").disabled = !(state === "connected" || state === "connecting");
  }

  function hint(text) {
    $("hint").textContent = text || "";
    $("hint").hidden = !text;
  }

  // Only http: and https: servers: a data:, javascript: or scheme-relative (//host) address
  // names code, not a server. Returns the server's origin, or null after saying why.
  function checkServer(value) {
    let url = null;
    try {
      url = new URL(value.trim());
    } catch (_) {
      url = null;
    }
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
      hint("Refused server address " + JSON.stringify(value.slice(0, 200)) + ": only http:// " +
           "and https:// addresses are accepted, such as http://localhost:3000. Nothing was loaded.");
      status("error", "Not connected");
      return null;
    }
    return url.origin;
  }

  // The socket.io browser client: served, from this page's own origin only; opened from disk,
  // from the chosen server's /vendor/ once the user agrees to run that server's code.
  function loadClient(server) {
    if (typeof window.io === "function") return Promise.resolve();
    const src = (fromFile ? server : location.origin) + "/vendor/socket.io.min.js";
    if (fromFile && !window.confirm("Load and run the socket.io client from " + src + "?\n" +
                                    "Only do this for a server you trust.")) {
      return Promise.reject(new Error("did not load " + src + ": not confirmed"));
    }
    return new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = src;
      script.onload = () => resolve();
      script.onerror = () => {
        script.remove();
        reject(new Error("could not load " + script.src + ": is the server running?"));
      };
      document.head.append(script);
    });
  }

  async function connect() {
    hint("");
    const server = checkServer($("server").value);
    if (!server) return;
    status("connecting", "Connecting…");
    try {
      await loadClient(server);
    } catch (err) {
      log("error", "❌ " + err.message);
      status("error", "Not connected");
      return;
    }
    if (socket) socket.close();
    socket = window.io(server, { reconnectionDelayMax: 3000 });
    socket.on("connect", () => {
      hint("");
      status("connected", "Connected");
      log("connect", "✅ Connected to " + server + " (id " + socket.id + ")");
    });
    socket.on("disconnect", (reason) => {
      log("disconnect", "⚠️ Disconnected: " + reason);
      if (reason === "io client disconnect") status("disconnected", "Disconnected");
      else status("connecting", "Reconnecting…");
    });
    socket.on("connect_error", (err) => {
      log("error", "❌ Connection error: " + err.message);
      status("connecting", "Reconnecting…");
      if (fromFile) {
        hint("Opened as a local file, this page sends the origin 'null'. The server accepts it " +
             "only when OPTIO_CORS_ORIGINS lists null, e.g. " +
             "OPTIO_CORS_ORIGINS=http://localhost:3000,http://127.0.0.1:3000,null. " +
             "Or open " + server + "/test-websocket.html instead.");
      }
    });
    socket.on("progress", (data) => {
      count += 1;
      log("progress", "📊 Progress #" + count + ": " + JSON.stringify(data));
    });
  }

  const initial = checkServer($("server").value);
  if (fromFile && initial) $("dashboard").href = initial + "/";

  $("connect").addEventListener("click", connect);
  $("disconnect").addEventListener("click", () => {
    if (socket) socket.disconnect();
    socket = null;
    status("disconnected", "Disconnected");
  });
  $("clear").addEventListener("click", () => {
    $("log").textContent = "";
    count = 0;
  });
  $("server").addEventListener("keydown", (event) => {
    if (event.key === "Enter") connect();
  });
})();
