#!/usr/bin/env node
// Method 2 of the testing guide: print optio's live `progress` events in a terminal.
//
//   npm ci                                   # once: installs socket.io-client
//   node test-websocket-cli.js [SERVER_URL]  # default $OPTIO_URL or http://localhost:3000
//
// Set OPTIO_API_TOKEN when the server protects reads. Ctrl-C quits (exit code 0).
"use strict";

let io;
try {
  ({ io } = require("socket.io-client"));
} catch (err) {
  console.error("socket.io-client is not installed: run `npm ci` (or `npm install`) in this folder.");
  process.exit(2);
}

const url = (process.argv[2] || process.env.OPTIO_URL || "http://localhost:3000").replace(/\/+$/, "");
const token = process.env.OPTIO_API_TOKEN;

function stamp() {
  return new Date().toISOString().slice(11, 23);
}

console.log(`[${stamp()}] Connecting to ${url} ...`);
const socket = io(url, {
  reconnectionDelay: 500,
  reconnectionDelayMax: 3000,
  auth: token ? { token } : {},
});

socket.on("connect", () => {
  console.log(`[${stamp()}] ✅ Connected! (id ${socket.id})`);
});

// Pub/sub and reconnects can deliver a state late: one older (lower seq) than the last one
// shown for the same run is skipped, so the output never goes backwards.
const lastSeq = new Map();

socket.on("progress", (data) => {
  const last = lastSeq.get(data.runId);
  if (data.runId && Number.isInteger(data.seq) && last !== undefined && data.seq < last) {
    console.log(`[${stamp()}] (ignored an older state, seq ${data.seq} < ${last})`);
    return;
  }
  if (data.runId && Number.isInteger(data.seq)) lastSeq.set(data.runId, data.seq);
  // a paused run has not ended ("running": true): say that it is paused
  const paused = data.status === "paused" ? " PAUSED" : "";
  console.log(`[${stamp()}] 📊 Progress${paused}:`, JSON.stringify(data));
});

socket.on("disconnect", (reason) => {
  console.log(`[${stamp()}] ⚠️  Disconnected: ${reason}`);
});

socket.on("connect_error", (err) => {
  if (socket.active) {
    console.error(`[${stamp()}] ❌ Connection error: ${err.message} (retrying; is the server up?)`);
  } else {
    console.error(`[${stamp()}] ❌ The server refused the connection: ${err.message} (set OPTIO_API_TOKEN?)`);
    process.exit(1);
  }
});

function quit() {
  socket.close();
  console.log(`[${stamp()}] Bye.`);
  process.exit(0);
}
process.on("SIGINT", quit);
process.on("SIGTERM", quit);
