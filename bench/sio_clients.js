#!/usr/bin/env node
// Many socket.io-client clients in one Node.js process, recording when each first sees a state.
//
//   node bench/sio_clients.js COUNT URL [URL ...]
//
// Connects COUNT clients over WebSocket, spread in turn over the URLs (one web process each),
// prints `READY n` and then, for every line `dump` read on stdin, one JSON line: per client,
// the URL's index and the CLOCK_MONOTONIC time (seconds) at which it first saw each `xTotal`
// value >= MARKER_BASE (the benchmark's markers) since the previous dump. EOF on stdin
// disconnects everyone and exits.
//
// One process drives every client (about 24 µs of CPU per event received, measured at 1,000
// clients), so that the clients weigh little next to the web process they measure.
// Like a browser, socket.io-client (through the `ws` package) offers permessage-deflate; the
// dump says which extensions each connection got.
"use strict";

const { io } = require("socket.io-client");
const readline = require("readline");

// Values of xTotal at or above this are latency markers written by the benchmark (bench/latency.py).
const MARKER_BASE = 1000000000;
// Connections being opened at once (the server accepts them one by one).
const CONNECT_AT_ONCE = 50;
const CONNECT_TIMEOUT_MS = 300000;

// process.hrtime is libuv's uv_hrtime: CLOCK_MONOTONIC on Linux, the clock of Python's
// time.monotonic(), which the benchmark notes when it writes a marker.
function now() {
  return Number(process.hrtime.bigint()) / 1e9;
}

class Client {
  constructor(url, index) {
    this.url = index;
    this.firstSeen = new Map();
    this.events = 0;
    this.socket = io(url, {
      transports: ["websocket"],
      forceNew: true, // one connection per client, not one shared Manager per URL
      reconnection: false,
      timeout: CONNECT_TIMEOUT_MS,
    });
    this.socket.on("progress", (state) => {
      const t = now();
      this.events += 1;
      const x = state.xTotal || 0;
      if (x >= MARKER_BASE && !this.firstSeen.has(x)) this.firstSeen.set(x, t);
    });
  }

  connected() {
    return new Promise((resolve, reject) => {
      if (this.socket.connected) return resolve();
      this.socket.once("connect", resolve);
      this.socket.once("connect_error", reject);
    });
  }

  extensions() {
    const transport = this.socket.io.engine && this.socket.io.engine.transport;
    return (transport && transport.ws && transport.ws.extensions) || "";
  }

  take() {
    const seen = [...this.firstSeen];
    this.firstSeen.clear();
    return seen;
  }
}

async function connectAll(count, urls) {
  const clients = [];
  let next = 0;
  async function opener() {
    while (next < count) {
      const i = next++;
      const client = new Client(urls[i % urls.length], i % urls.length);
      clients[i] = client;
      await client.connected();
    }
  }
  await Promise.all(Array.from({ length: Math.min(CONNECT_AT_ONCE, count) }, opener));
  return clients;
}

function dump(clients) {
  const extensions = {};
  for (const c of clients) {
    const ext = c.extensions() || "(none)";
    extensions[ext] = (extensions[ext] || 0) + 1;
  }
  return {
    connected: clients.filter((c) => c.socket.connected).length,
    events: clients.reduce((sum, c) => sum + c.events, 0),
    extensions,
    clients: clients.map((c) => ({ url: c.url, first_seen: c.take() })),
  };
}

async function main() {
  const count = parseInt(process.argv[2], 10);
  const urls = process.argv.slice(3);
  if (!(count > 0) || urls.length === 0) {
    console.error("usage: node bench/sio_clients.js COUNT URL [URL ...]");
    process.exit(2);
  }
  let clients;
  try {
    clients = await connectAll(count, urls);
  } catch (err) {
    console.log(`FAILED ${err.message}`);
    process.exit(1);
  }
  console.log(`READY ${clients.length}`);
  const lines = readline.createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    if (line.trim() === "dump") process.stdout.write(JSON.stringify(dump(clients)) + "\n");
  });
  lines.on("close", () => {
    for (const c of clients) c.socket.disconnect();
    setTimeout(() => process.exit(0), 200);
  });
}

main();
